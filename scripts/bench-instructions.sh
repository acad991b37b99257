#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: deterministic where wrk on this
# 2-core VM drifts by +-15 % (the same binary and requests give the same count to a few
# instructions, whatever else the machine does).
#
#   scripts/bench-instructions.sh                 # the default cases, 3,000 requests each
#   N=10000 scripts/bench-instructions.sh
#   CASES='bare:HS256:1:hello layer:HS256:1:claims' scripts/bench-instructions.sh
#
# Each case runs examples/bench_server.rs (MODE:ALG:CACHE:HANDLER, see its header) under
# callgrind; a Python client sends 200 warm-up requests over one keep-alive connection, the
# counters are zeroed, it sends N more, and the counters are dumped. Only the server's user
# space is counted (all its threads), not the kernel's socket work: the ratios here overstate
# what a layer costs in throughput, where the kernel's share of each request is the larger.
# Only 127.0.0.1 is used. Needs valgrind and python3 (valgrind is installed from apt when
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-3000}"
CASES="${CASES:-bare:HS256:1:hello noop:HS256:1:hello ext:HS256:1:hello layer:HS256:1:hello layer:HS256:1:claims layer:ES256:1:hello layer:HS256:0:hello plain:HS256:0:hello}"
if ! command -v valgrind >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq valgrind
fi

# The executable cargo reports for the example (CARGO_TARGET_DIR honoured).
BIN=$(cargo build --release --example bench_server --message-format=json-render-diagnostics |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "bench_server" \
            and m.get("executable"):
        print(m["executable"])')
[ -x "$BIN" ] || { echo "cargo did not report the bench_server executable" >&2; exit 1; }

WORK=$(mktemp -d)
PID=""
cleanup() {
  [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/client.py" <<'PY'
import http.client, sys
port, token, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    conn.request("GET", "/", headers={"Authorization": "Bearer " + token})
    res = conn.getresponse()
    body = res.read()
    if res.status != 200:
        sys.exit(f"HTTP {res.status}: {body!r}")
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A IR
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'); $N requests per case; valgrind $(valgrind --version)"
printf '%-28s %14s %10s\n' case "instr/request" "/ bare"
for case in $CASES; do
  IFS=: read -r mode alg cache handler <<<"$case"
  dir="$WORK/$mode-$alg-$cache-$handler"
  mkdir -p "$dir"
  port=$(free_port)
  MODE=$mode ALG=$alg CACHE=$cache HANDLER=$handler BIND=127.0.0.1:$port \
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$BIN" >"$dir/stdout" 2>"$dir/stderr" &
  PID=$!
  for _ in $(seq 600); do grep -q READY "$dir/stdout" 2>/dev/null && break; sleep 0.1; done
  grep -q READY "$dir/stdout" || { echo "server for $case did not start:" >&2; cat "$dir/stderr" >&2; exit 1; }
  token=$(sed -n 's/^TOKEN //p' "$dir/stdout")
  python3 "$WORK/client.py" "$port" "$token" 200
  callgrind_control -z "$PID" >/dev/null 2>&1
  python3 "$WORK/client.py" "$port" "$token" "$N"
  callgrind_control -d "$PID" >/dev/null 2>&1
  kill "$PID"; wait "$PID" 2>/dev/null || true
  PID=""
  # The dump after zeroing holds exactly the N requests.
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dir/cg.out.1")
  IR[$case]=$((ir / N))
  ratio="-"
  [ -z "${IR[bare:HS256:1:hello]:-}" ] || ratio=$(awk -v a="${IR[$case]}" -v b="${IR[bare:HS256:1:hello]}" 'BEGIN { printf "%.3f", a / b }')
  printf '%-28s %14s %10s\n' "$case" "${IR[$case]}" "$ratio"
done
