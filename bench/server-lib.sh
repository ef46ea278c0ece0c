# Sourced by bench/stalled.sh and bench/soak.sh: start and stop a fresh release pusher-local on
# 127.0.0.1 with a port the kernel picks (--port 0), read back from its --ready-file.
#
#   start_server DIR      sets SERVER_PID, SERVER_PORT and SERVER_URL; the server's stderr goes
#                         to DIR/server.log
#   stop_server           SIGTERM, then SIGKILL after 10 s
#
# BIN is the server binary (set by the caller). The server runs with no config file and a fixed
# app (id 1, key app-key, secret app-secret), quiet (-q) so logging costs nothing, in DIR (an
# empty working directory, so no .env is read) without the caller's PUSHER_* variables.

SERVER_PID=""

start_server() {
    local dir="$1" ready="$1/ready.json" i
    rm -f "$ready"
    # An empty working directory (no .env) and no PUSHER_* variables: only the flags count.
    (cd "$dir" && for v in $(compgen -e | grep '^PUSHER'); do unset "$v"; done && exec "$BIN" --no-config --app-id 1 --key app-key --secret app-secret -q \
        --host 127.0.0.1 --port 0 --ready-file "$ready" >"$dir/server.out" 2>"$dir/server.log") &
    SERVER_PID=$!
    for i in $(seq 1 100); do
        [ -s "$ready" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "pusher-local exited: $(tail -5 "$dir/server.log")" >&2; return 1; }
        sleep 0.1
    done
    [ -s "$ready" ] || { echo "pusher-local not ready within 10 s" >&2; stop_server; return 1; }
    SERVER_PORT="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http_port"])' "$ready")"
    local pid
    pid="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$ready")"
    [ "$pid" = "$SERVER_PID" ] || { echo "ready file pid $pid is not the server started ($SERVER_PID)" >&2; }
    SERVER_PID="$pid"
    SERVER_URL="http://127.0.0.1:$SERVER_PORT"
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || { SERVER_PID=""; return 0; }
        sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# Raise the open-file limit as far as allowed (65536, or the hard limit when lower); fails when
# fewer than $1 descriptors remain possible.
raise_nofile() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    local now
    now="$(ulimit -n)"
    if [ "$now" != unlimited ] && [ "$now" -lt "$1" ]; then
        echo "ulimit -n is $now (hard limit $(ulimit -Hn)); $1 needed" >&2
        return 1
    fi
}
