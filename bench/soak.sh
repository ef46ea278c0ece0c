#!/usr/bin/env bash
# Soak (issue 16): C live connections with churn for D minutes against a fresh release server,
# events published meanwhile, the server's RSS and open fds sampled every 10 s.
#
#   bench/soak.sh [-c CONNECTIONS] [-d MINUTES] [-R RATE] [-k CHANNELS] [-o DIR]
#
# Defaults: 10000 connections, 10 minutes of churn, 200 events/s, 200 channels (every 10th a
# presence channel), results in bench/results/$(date +%F)-soak. Runs examples/soak.rs (see its doc
# comment): each connection stays 1-20 s, then another takes its place; after the churn the
# connections are held 30 s without churn, then all closed, and sampled again 10 s later. Takes
# D minutes + ~1 minute, and exits by itself (soak has its own deadline; this script a `timeout`).
#
# Writes DIR/soak.csv (t_s,live_clients,server_connections,rss_mb,fds,events_sent,errors,phase)
# and DIR/soak.txt (the table and verdict), and prints both. Exit status: soak's (0 pass, 1 fail,
# 3 overstayed). Build first: cargo build --release --examples --bin pusher-local
# (CARGO_TARGET_DIR is honoured).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${PUSHER_LOCAL_BIN:-$TARGET/release/pusher-local}"
SOAK="${SOAK_BIN:-$TARGET/release/examples/soak}"
CONNECTIONS=10000 MINUTES=10 RATE=200 CHANNELS=200 OUT=""
while getopts "c:d:R:k:o:h" opt; do
    case "$opt" in
        c) CONNECTIONS="$OPTARG" ;; d) MINUTES="$OPTARG" ;; R) RATE="$OPTARG" ;; k) CHANNELS="$OPTARG" ;;
        o) OUT="$OPTARG" ;;
        *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
OUT="${OUT:-$ROOT/bench/results/$(date +%F)-soak}"
[ -x "$BIN" ] || { echo "$BIN not found: cargo build --release --bin pusher-local" >&2; exit 1; }
[ -x "$SOAK" ] || { echo "$SOAK not found: cargo build --release --examples" >&2; exit 1; }
# shellcheck source=bench/server-lib.sh
. "$ROOT/bench/server-lib.sh"
raise_nofile $((CONNECTIONS + 512))

mkdir -p "$OUT"
work="$(mktemp -d)"
trap 'stop_server; rm -rf "$work"' EXIT
start_server "$work"
echo "pusher-local pid $SERVER_PID on port $SERVER_PORT; $CONNECTIONS connections, $MINUTES min of churn" >&2
deadline=$(python3 -c "print(int(float('$MINUTES') * 60 + 240))")
status=0
timeout "$deadline" "$SOAK" --url "$SERVER_URL" --pid "$SERVER_PID" --connections "$CONNECTIONS" \
    --minutes "$MINUTES" --rate "$RATE" --channels "$CHANNELS" --csv "$OUT/soak.csv" >"$work/soak.out" || status=$?
stop_server
{
    column -s, -t <"$OUT/soak.csv"
    grep -E '^(totals|RSS|fds|verdict)' "$work/soak.out" || true
    [ "$status" -le 1 ] || echo "soak exited with $status"
} | tee "$OUT/soak.txt"
exit "$status"
