#!/usr/bin/env bash
# pre/post × record/none REST trigger throughput (wrk keepalive, 10 s), 3 alternating rounds.
set -u
out=/tmp/rec-bench.txt
for round in 4 5 6; do
  for bin in pre post; do
    case $bin in pre) B=/work/target-pre/release/pusher-local;; post) B=/work/main/target/release/pusher-local;; esac
    for rec in record; do
      d=$(mktemp -d); cd $d
      args=(--no-config --port 0 --ready-file $d/ready.json -q)
      [ $rec = record ] && args+=(--record bench)
      $B "${args[@]}" > $d/log 2>&1 & pid=$!
      for i in $(seq 1 100); do [ -f $d/ready.json ] && break; sleep 0.1; done
      port=$(python3 -c "import json;print(json.load(open('$d/ready.json'))['http_port'])")
      rps=$(PORT=$port SERVER_PID=$pid /work/main/bench/trigger-wrk.sh keepalive 10 2>&1 | awk '/Requests\/sec/ {print $2}')
      echo "$round $bin $rec $rps" | tee -a $out
      kill -TERM $pid; wait $pid 2>/dev/null; cd /; rm -rf $d
    done
  done
done
