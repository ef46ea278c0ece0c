#!/usr/bin/env bash
# REST trigger throughput with and without HTTP keep-alive, measured with wrk (Debian: apt-get
# install wrk) against any Pusher-compatible server on this machine.
#
#   bench/trigger-wrk.sh [keepalive|close] [SECONDS]
#
# Environment: HOST (127.0.0.1), PORT (6001), APP_ID (1), APP_KEY (app-key), APP_SECRET
# (app-secret), CONNS (16 concurrent connections), THREADS (1 wrk thread), SERVER_PID (when
# set, the server's CPU time over the run is read from /proc and printed per request; several
# PIDs separated by spaces are summed, e.g. "$(pgrep -d' ' nginx)").
#
# Every request is the same signed POST /apps/ID/events (one ~100-byte event to a channel nobody
# subscribes to), signed once as the official SDKs sign it (auth_key, auth_timestamp,
# auth_version, body_md5, sorted; HMAC-SHA256), so the run must stay inside the 600 s signature
# window. `close` adds `Connection: close`, i.e. one TCP connection per request, the way sockudo
# and soketi serve every REST call; `keepalive` lets the connections live. Prints wrk's summary;
# a run whose responses are not all 2xx says so ("Non-2xx or 3xx responses").
set -euo pipefail

MODE="${1:-keepalive}"
SECONDS_="${2:-10}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-6001}"
APP_ID="${APP_ID:-1}"
APP_KEY="${APP_KEY:-app-key}"
APP_SECRET="${APP_SECRET:-app-secret}"
CONNS="${CONNS:-16}"
THREADS="${THREADS:-1}"

case "$MODE" in keepalive|close) ;; *) echo "usage: $0 [keepalive|close] [SECONDS]" >&2; exit 2 ;; esac
case "$HOST" in 127.0.0.1|::1|localhost) ;; *) echo "loopback only (HOST=$HOST)" >&2; exit 2 ;; esac
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
[ "$SECONDS_" -le 300 ] || { echo "at most 300 s (the signature window is 600 s)" >&2; exit 2; }

script="$(mktemp --suffix=.lua)"
trap 'rm -f "$script"' EXIT
python3 - "$APP_ID" "$APP_KEY" "$APP_SECRET" "$MODE" >"$script" <<'EOF'
import hashlib, hmac, json, sys, time
app_id, key, secret, mode = sys.argv[1:5]
body = json.dumps({"name": "bench", "channel": "bench-rest",
                   "data": json.dumps({"pad": "x" * 80})}, separators=(",", ":"))
path = f"/apps/{app_id}/events"
query = (f"auth_key={key}&auth_timestamp={int(time.time())}&auth_version=1.0"
         f"&body_md5={hashlib.md5(body.encode()).hexdigest()}")
signature = hmac.new(secret.encode(), f"POST\n{path}\n{query}".encode(), hashlib.sha256).hexdigest()
print('wrk.method = "POST"')
print(f'wrk.path = "{path}?{query}&auth_signature={signature}"')
print(f"wrk.body = {json.dumps(body)}")
print('wrk.headers["Content-Type"] = "application/json"')
if mode == "close":
    print('wrk.headers["Connection"] = "close"')
EOF

# utime + stime of the processes, in clock ticks.
cpu_ticks() { local p; for p in "$@"; do cat "/proc/$p/stat"; done | awk '{t += $14 + $15} END {print t}'; }

echo "POST /apps/$APP_ID/events on $HOST:$PORT, $MODE, $CONNS connections, ${SECONDS_}s"
# shellcheck disable=SC2086  # a list of PIDs
[ -n "${SERVER_PID:-}" ] && before="$(cpu_ticks $SERVER_PID)"
out="$(wrk -t "$THREADS" -c "$CONNS" -d "${SECONDS_}s" --latency -s "$script" "http://$HOST:$PORT")"
echo "$out"
if [ -n "${SERVER_PID:-}" ]; then
  # shellcheck disable=SC2086
  after="$(cpu_ticks $SERVER_PID)"
  requests="$(echo "$out" | awk '/requests in/{print $1}')"
  awk -v t="$((after - before))" -v hz="$(getconf CLK_TCK)" -v n="$requests" -v s="$SECONDS_" 'BEGIN {
    printf "Server CPU: %.2f s (%.0f%% of one core), %.1f us per request\n", t / hz, 100 * t / hz / s, 1e6 * t / hz / n }'
fi
