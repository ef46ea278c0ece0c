#!/usr/bin/env bash
# Slow consumers (issue 16): delivery latency of healthy subscribers with and without stalled
# ones, how the stalled ones are closed, and the server's peak memory meanwhile.
#
#   bench/stalled.sh [-r RUNS] [-o DIR] [-n STALLED] [-e EVENTS] [-R RATE] [-p PAYLOAD] [-s SUBSCRIBERS] [-f FILL]
#
# Defaults: 3 runs of each kind, 10 stalled, 1000 subscribers, 4000 events at 200/s (20 s of
# publishing) with 512 bytes of payload, plus 6000 filler events of 4 KiB at 1000/s on a channel
# only the stalled sockets join; results in bench/results/$(date +%F)-stalled. Each run starts a
# fresh release server (bench/server-lib.sh) and runs
#   load --subscribers 1000 --events 4000 --rate 200 --payload 512 --concurrency 16 \
#        --stall-fill 6000 --stalled 0|10 --pid PID --json
# alternating without and with the stalled clients (without first; the filler is published in
# both, reaching nobody without them). A run takes ~25 s (connecting, 20 s of events, the drain).
#
# Why these numbers: 1000 x 200 = 200k deliveries/s, well under the server's fan-out capacity
# (~0.5M/s to 1000 subscribers on a quiet 2-core machine), so the latency is delivery, not
# backlog. A stalled socket is closed once 4096 frames wait in its outbox after the kernel
# buffers are full (~3 MB on loopback): ~9000 events of 512 bytes, more than a 30 s run can fan
# out to 1000 subscribers without saturating, hence the filler (see examples/load.rs's doc).
# 16 publishers: a handful cannot keep the pace when each request waits for its fan-out.
# The measured events must outlast the filler (EVENTS/RATE > FILL/1000 + a few seconds): a
# stalled socket that has not overflowed when the drain starts reads everything and stays open.
#
# Writes DIR/runs.jsonl (one load report per line, with "run", "stalled_clients" and
# "exit_status" added) and DIR/table.txt, and prints the table: median (min..max) over the runs
# of p50/p99/max latency, deliveries, the stalled sockets' endings, the server's RSS peak, and
# the ratio of the p99 medians with/without.
# Build first: cargo build --release --examples --bin pusher-local (CARGO_TARGET_DIR is honoured).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${PUSHER_LOCAL_BIN:-$TARGET/release/pusher-local}"
LOAD="${LOAD_BIN:-$TARGET/release/examples/load}"
RUNS=3 OUT="" STALLED=10 EVENTS=4000 RATE=200 PAYLOAD=512 SUBSCRIBERS=1000 FILL=6000
while getopts "r:o:n:e:R:p:s:f:h" opt; do
    case "$opt" in
        r) RUNS="$OPTARG" ;; o) OUT="$OPTARG" ;; n) STALLED="$OPTARG" ;; e) EVENTS="$OPTARG" ;;
        R) RATE="$OPTARG" ;; p) PAYLOAD="$OPTARG" ;; s) SUBSCRIBERS="$OPTARG" ;; f) FILL="$OPTARG" ;;
        *) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
OUT="${OUT:-$ROOT/bench/results/$(date +%F)-stalled}"
[ -x "$BIN" ] || { echo "$BIN not found: cargo build --release --bin pusher-local" >&2; exit 1; }
[ -x "$LOAD" ] || { echo "$LOAD not found: cargo build --release --examples" >&2; exit 1; }
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 20 ] || { echo "-r between 1 and 20" >&2; exit 2; }
# shellcheck source=bench/server-lib.sh
. "$ROOT/bench/server-lib.sh"
raise_nofile $((SUBSCRIBERS + STALLED + 256))

mkdir -p "$OUT"
RAW="$OUT/runs.jsonl"
: >"$RAW"
work="$(mktemp -d)"
trap 'stop_server; rm -rf "$work"' EXIT

for run in $(seq 1 "$RUNS"); do
    for stalled in 0 "$STALLED"; do
        start_server "$work"
        echo "run $run/$RUNS, $stalled stalled: server pid $SERVER_PID on port $SERVER_PORT" >&2
        status=0
        timeout 150 "$LOAD" --url "$SERVER_URL" --subscribers "$SUBSCRIBERS" --events "$EVENTS" --rate "$RATE" \
            --payload "$PAYLOAD" --concurrency 16 --stall-fill "$FILL" --stalled "$stalled" --pid "$SERVER_PID" --timeout 60 --json \
            >"$work/load.json" 2>"$work/load.err" || status=$?
        stop_server
        if [ -s "$work/load.json" ]; then
            python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); r.update(run=int(sys.argv[2]), stalled_clients=int(sys.argv[3]), exit_status=int(sys.argv[4])); print(json.dumps(r))' \
                "$work/load.json" "$run" "$stalled" "$status" >>"$RAW"
        else
            echo "  load failed (exit $status): $(tail -3 "$work/load.err")" >&2
        fi
    done
done

python3 - "$RAW" "$STALLED" <<'PY' | tee "$OUT/table.txt"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def span(values, fmt="{:.2f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return (fmt + " (" + fmt + ".." + fmt + ")").format(statistics.median(values), min(values), max(values))
print(f"{'stalled':>7}  {'runs':>4}  {'p50 ms':<22} {'p99 ms':<22} {'max ms':<24} {'deliveries':<14} {'RSS peak MB':<22} stalled endings")
medians = {}
for stalled in sorted({r["stalled_clients"] for r in rows}):
    runs = [r for r in rows if r["stalled_clients"] == stalled]
    medians[stalled] = statistics.median(r["latency_ms_p99"] for r in runs)
    delivered = f"{min(r['deliveries'] for r in runs)}/{runs[0]['expected']}"
    ends = "-"
    if stalled:
        s = [r["stalled"] for r in runs]
        ends = "4100: {}, other: {}, no close frame: {}, open: {}, still held by server: {}".format(
            sum(x["close_4100"] for x in s), sum(x["close_other"] for x in s), sum(x["no_close_frame"] for x in s),
            sum(x["still_open"] for x in s), sum(x["server_still_listed"] or 0 for x in s))
    print(f"{stalled:>7}  {len(runs):>4}  {span([r['latency_ms_p50'] for r in runs]):<22} "
          f"{span([r['latency_ms_p99'] for r in runs]):<22} {span([r['latency_ms_max'] for r in runs]):<24} "
          f"{delivered:<14} {span([r['rss_peak_mb'] for r in runs], '{:.0f}'):<22} {ends}")
if len(medians) == 2 and medians.get(0):
    other = [k for k in medians if k][0]
    ratio = medians[other] / medians[0]
    print(f"p99 with {other} stalled / without: {ratio:.2f} ({'within' if ratio <= 1.10 else 'NOT within'} 10%)")
PY
echo "raw: $RAW" >&2
