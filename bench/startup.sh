#!/usr/bin/env bash
# Time from exec to accepting connections, over repeated starts of the release binary.
#
#   bench/startup.sh [RUNS]        (default 30)
#   TLS=fresh bench/startup.sh     each run makes the local CA anew (a first start)
#
# Each run starts `target/release/pusher-local --port P` (P a free loopback port, no config file,
# an empty working directory so no .env is read), connects to 127.0.0.1:P in a tight loop until
# the connection is accepted, and stops the server. Prints the median, minimum and maximum in ms.
# The TLS folder (--tls-dir) is a temporary one: made by a first start before the timed runs
# (TLS=kept, the default: the CA exists, as on every start but the first), or empty for each run
# (TLS=fresh). Build first: cargo build --release; PUSHER_LOCAL_BIN times another binary.
set -euo pipefail

RUNS="${1:-30}"
BIN="${PUSHER_LOCAL_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/pusher-local}"
TLS="${TLS:-kept}"
case "$TLS" in kept|fresh) ;; *) echo "TLS is kept or fresh" >&2; exit 2 ;; esac
[ -x "$BIN" ] || { echo "$BIN not found: cargo build --release" >&2; exit 1; }
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 1000 ] || { echo "RUNS between 1 and 1000" >&2; exit 2; }

python3 - "$BIN" "$RUNS" "$TLS" <<'EOF'
import os, shutil, socket, statistics, subprocess, sys, tempfile, time

binary, runs, tls = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

times = []
with tempfile.TemporaryDirectory() as cwd:
    tls_dir = os.path.join(cwd, "tls")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHER_")}
    env["PUSHER_LOCAL_TLS_DIR"] = tls_dir
    if tls == "kept":
        subprocess.run([binary, "tls"], cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
    for _ in range(runs):
        if tls == "fresh":
            shutil.rmtree(tls_dir, ignore_errors=True)
        port = free_port()
        start = time.perf_counter()
        server = subprocess.Popen([binary, "--port", str(port)], cwd=cwd, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = start + 5
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.perf_counter() > deadline or server.poll() is not None:
                        sys.exit(f"pusher-local did not accept on port {port} within 5 s")
            times.append((time.perf_counter() - start) * 1000)
        finally:
            server.terminate()
            server.wait(timeout=10)

print(f"exec to accepting (TLS folder {tls}): median {statistics.median(times):.1f} ms, "
      f"min {min(times):.1f} ms, max {max(times):.1f} ms ({runs} runs)")
EOF
