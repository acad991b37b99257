#!/usr/bin/env bash
# Load test: bare axum vs JwtAuthLayer (memory, Redis) vs a plain jsonwebtoken middleware vs
# that middleware with one Redis GET per request, all in one run on this machine.
#
#   scripts/bench.sh                      # 3 rounds x 11 cases x 5 s
#   ROUNDS=5 DURATION=10 scripts/bench.sh
#
# Cases are interleaved round by round and each figure is the median over the rounds: on a
# 2-core machine a single 10 s run of one case varies by +-10 %.
#
# The server runs on core 0 (one Tokio worker), wrk on core 1 (-t1 -c32), as the reference
# figures in the issue were measured. Prints requests/s, p50 and p99 per case and the ratios.
# Only 127.0.0.1 is used. Needs wrk and redis-server (installed from apt when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-32}"
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v redis-server >/dev/null || need+=(redis-server)
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}"
fi

cargo build --release --example bench_server >&2
BIN=target/release/examples/bench_server

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/dev/null &
RPID=$!
SPID=""
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; kill "$RPID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
export REDIS_URL="redis://127.0.0.1:$RPORT/"

declare -A RPS P50 P99 ALL_RPS ALL_P50 ALL_P99
run_case() { # name mode alg cache
  local name=$1 mode=$2 alg=$3 cache=$4 port out token
  port=$(free_port)
  out=$(mktemp)
  MODE=$mode ALG=$alg CACHE=$cache BIND=127.0.0.1:$port taskset -c 0 "$BIN" >"$out" 2>/dev/null &
  SPID=$!
  for _ in $(seq 100); do grep -q READY "$out" && break; sleep 0.05; done
  token=$(sed -n 's/^TOKEN //p' "$out")
  # Warm up (first sight of the token, connections), then measure.
  taskset -c 1 wrk -t1 -c"$CONNS" -d1s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/" >/dev/null
  local res
  res=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$port/")
  local non2xx
  non2xx=$(echo "$res" | sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p')
  if [ -n "$non2xx" ]; then echo "case $name: $non2xx non-2xx responses" >&2; exit 1; fi
  ALL_RPS[$name]+="$(echo "$res" | awk '/Requests\/sec/ {print $2}') "
  ALL_P50[$name]+="$(echo "$res" | awk '$1=="50%" {print $2}') "
  ALL_P99[$name]+="$(echo "$res" | awk '$1=="99%" {print $2}') "
  kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=""
  rm -f "$out"
}

# Median of numbers; values with a unit (us, ms, s) are converted to ms.
median() {
  tr ' ' '\n' | grep -v '^$' | awk '
    { v=$1; u=0
      if (v ~ /us$/) { sub(/us$/,"",v); v=v/1000; u=1 }
      else if (v ~ /ms$/) { sub(/ms$/,"",v); u=1 }
      else if (v ~ /s$/) { sub(/s$/,"",v); v=v*1000; u=1 }
      print v, u }' | sort -n | awk '
    { a[NR]=$1; u=$2 }
    END { m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2
          if (u) printf "%.2fms", m; else printf "%.2f", m }'
}

CASES=(
  "bare bare HS256 1"
  "noop-layer noop HS256 1"
  "HS256/plain-jsonwebtoken plain HS256 0"
  "HS256/naive-redis-get naive HS256 0"
  "HS256/layer-memory layer HS256 0"
  "HS256/layer-memory-cached layer HS256 1"
  "HS256/layer-redis-cached redis HS256 1"
  "ES256/plain-jsonwebtoken plain ES256 0"
  "ES256/naive-redis-get naive ES256 0"
  "ES256/layer-memory layer ES256 0"
  "ES256/layer-memory-cached layer ES256 1"
  "ES256/layer-redis-cached redis ES256 1"
)
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  for c in "${CASES[@]}"; do
    # shellcheck disable=SC2086
    run_case $c
  done
done
for c in "${CASES[@]}"; do
  name=${c%% *}
  RPS[$name]=$(echo "${ALL_RPS[$name]}" | median)
  P50[$name]=$(echo "${ALL_P50[$name]}" | median)
  P99[$name]=$(echo "${ALL_P99[$name]}" | median)
  printf '%-28s %10s req/s   p50 %-9s p99 %-9s (req/s per round: %s)\n' "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" "${ALL_RPS[$name]% }"
done

ratio() { awk -v a="${RPS[$1]}" -v b="${RPS[$2]}" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "ratios (throughput):"
echo "  noop-layer / bare                         = $(ratio noop-layer bare)   (what any layer costs here; noise included)"
for alg in HS256 ES256; do
  echo "  $alg layer-redis-cached / bare           = $(ratio "$alg/layer-redis-cached" bare)   (goal >= 0.85)"
  echo "  $alg layer-redis-cached / plain          = $(ratio "$alg/layer-redis-cached" "$alg/plain-jsonwebtoken")   (goal >= 1.3)"
  echo "  $alg layer-redis-cached / naive-redis    = $(ratio "$alg/layer-redis-cached" "$alg/naive-redis-get")   (goal >= 2)"
  echo "  $alg layer-memory (no cache) / plain     = $(ratio "$alg/layer-memory" "$alg/plain-jsonwebtoken")"
  echo "  $alg plain / bare                        = $(ratio "$alg/plain-jsonwebtoken" bare)"
done
