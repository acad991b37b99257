#!/usr/bin/env bash
# Load test: bare axum vs JwtAuthLayer (memory, Redis, remote JWK Set; cached and not), a plain
# jsonwebtoken middleware (alone and with one Redis GET per request), and two peer crates from
# crates.io, for several token shapes, all in one run on this machine.
#
#   scripts/bench.sh                                  # 3 rounds, 3 s per measurement
#   ROUNDS=9 DURATION=3 scripts/bench.sh              # what docs/performance.md reports
#   ONLY='HS256/layer-redis' ROUNDS=5 scripts/bench.sh  # a subset (extended regex on names)
#   ONLY='large|rotating|claims|authorizer|axum-jwt' ROUNDS=1 DURATION=1 scripts/bench.sh
#
# Environment:
#   ROUNDS (3), DURATION (seconds per measurement, 3), CONNS (wrk connections, 32),
#   ONLY (extended regex on case names; bare always runs), CARGO_TARGET_DIR (honoured: the
#   binaries are wherever cargo says it built them).
#
# Cases (ALG is HS256 or ES256; "cached" is the layer's verified-token cache, 16 MiB):
#   bare                               axum "hello", no auth (the baseline of every pair)
#   bare-again                         a second bare server: the method's own noise floor
#                                      (its paired ratio would be 1.00 on a quiet machine)
#   noop-layer, ext-layer              a layer doing nothing / only the layer's one insert
#   ALG/plain-jsonwebtoken             a hand-written jsonwebtoken middleware (the usual way)
#   ALG/naive-redis-get                that plus one Redis GET per request (revocation check)
#   ALG/layer-memory                   JwtAuthLayer, memory store, no cache
#   ALG/layer-memory-cached            the same with the cache
#   ALG/layer-redis-cached             JwtAuthLayer with the Redis store, cached
#   ALG/layer-postgres-cached          JwtAuthLayer with the PostgreSQL store (cache fed by
#                                      LISTEN/NOTIFY), cached (goal >= 0.85); these cases also
#                                      run benches/propagation.rs: a revocation from instance A
#                                      to B, Redis and PostgreSQL side by side, 200 trials
#   ALG/layer-memory-cached-claims     cached layer; the handler takes the Claims extractor
#   ALG/jwt-authorizer                 peer: jwt-authorizer's layer on the same router
#   ALG/axum-jwt-auth                  peer: axum-jwt-auth's Claims extractor in the handler
#   ALG/<plain-jsonwebtoken|layer-memory|layer-memory-cached|jwt-authorizer|axum-jwt-auth>-large
#                                      a ~2 KB token: the usual claims and 40 custom ones
#   ALG/<plain-jsonwebtoken|layer-memory|layer-memory-cached>-rotating
#                                      1,000 tokens of 1,000 users, round-robin per request
#                                      (all fit the cache: the cache under key variety)
#   opaque/layer-introspection-cached  an opaque token through the layer with RFC 7662
#                                      introspection (in-process endpoint; cached after the
#                                      first request; goal >= 0.9)
#   HS256/layer-remote-jwks-cached, ES256/layer-remote-jwks, ES256/layer-remote-jwks-cached
#                                      the layer with its key from a JWK Set (in-memory fetch)
# Token shapes: default (one token, ~250 B for HS256), large, rotating; every server mints the
# same claims for a shape (benches/peers/src/shapes.rs, shared by both binaries), and the
# script checks that the token lengths agree. For a rotating case wrk gets a Lua script (-s)
# that picks the next of the 1,000 tokens per request.
#
# Servers: examples/bench_server.rs (one Tokio worker; MODE, ALG, CACHE, TOKEN_SHAPE, HANDLER)
# and, for the peers, benches/peers (its own crate and Cargo.lock, built into <target>/peers;
# peers_server takes MODE jwt-authorizer or axum-jwt-auth, ALG, TOKEN_SHAPE). The peers are the
# newest releases: jwt-authorizer 0.15.0 and axum-jwt-auth 0.7.0. jwt-authorizer has no release
# for axum 0.8 (0.15 depends on axum 0.7); its tower layer is generic over http 1 and is put in
# front of the same axum 0.8 router, with axum 0.7 only converting its error responses. Each
# uses the jsonwebtoken its release depends on, with that one's crypto: jwt-authorizer 9 (ring),
# axum-jwt-auth 10 (RustCrypto, which it turns on); tower-token-auth and the plain middleware
# use jsonwebtoken 11 with aws-lc-rs. Both peers take the keys directly (from_secret /
# from_ec_pem_text, LocalDecoder), so no JWKS server is needed; no case is skipped. Both check
# the same key, iss, aud and exp as the plain middleware. The peers are not run for the
# rotating shape (nor with a cache: they have none).
#
# One server per case runs for the whole script, pinned to core 0; wrk runs on core 1 (-t1
# -c32), as the reference figures in the issue were measured. Only the server being measured
# has load; the others sit idle.
#
# On this 2-core VM the speed of the machine drifts by +-20 % within seconds, so every case is
# measured beside a run of bare axum (before it in odd rounds, after it in even ones), and its
# ratio to bare is the median over the rounds of (case / that bare run). That bare run sends
# the very requests of the case
# (its token, or its Lua script), so the pair differs only in the authentication; bare's runs
# are reported per token shape (bare, bare@large, bare@rotating). That "paired" ratio is the
# figure for the goals against bare; the ratio of the medians is printed beside it. The order
# of the cases rotates from round to round. Every server is warmed up (1 s) before the first
# round. Each figure in the table is the median over the rounds.
#
# Summary: each case's paired ratio (in the table); per algorithm and token shape the uncached
# layer against the best of plain-jsonwebtoken / jwt-authorizer / axum-jwt-auth (ratio of the
# medians, and of the paired ratios); the cached layer against bare (goal >= 0.97); the Claims
# extractor case against bare (goal >= 0.95); the rest as information.
#
# Only 127.0.0.1 is used. Needs wrk, python3, redis-server for the Redis cases and postgresql for
# the PostgreSQL ones (installed from apt when missing); jq is used when present.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-3}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-32}"
ONLY="${ONLY:-}"

# name mode alg cache shape handler
ALL_CASES=(
  "bare bare HS256 1 default hello"
  "bare-again bare HS256 1 default hello"
  "noop-layer noop HS256 1 default hello"
  "ext-layer ext HS256 1 default hello"
)
for alg in HS256 ES256; do
  ALL_CASES+=(
    "$alg/plain-jsonwebtoken plain $alg 0 default hello"
    "$alg/naive-redis-get naive $alg 0 default hello"
    "$alg/layer-memory layer $alg 0 default hello"
    "$alg/layer-memory-cached layer $alg 1 default hello"
    "$alg/layer-redis-cached redis $alg 1 default hello"
    "$alg/layer-postgres-cached postgres $alg 1 default hello"
    "$alg/layer-memory-cached-claims layer $alg 1 default claims"
    "$alg/jwt-authorizer jwt-authorizer $alg 0 default hello"
    "$alg/axum-jwt-auth axum-jwt-auth $alg 0 default hello"
    "$alg/plain-jsonwebtoken-large plain $alg 0 large hello"
    "$alg/layer-memory-large layer $alg 0 large hello"
    "$alg/layer-memory-cached-large layer $alg 1 large hello"
    "$alg/jwt-authorizer-large jwt-authorizer $alg 0 large hello"
    "$alg/axum-jwt-auth-large axum-jwt-auth $alg 0 large hello"
    "$alg/plain-jsonwebtoken-rotating plain $alg 0 rotating hello"
    "$alg/layer-memory-rotating layer $alg 0 rotating hello"
    "$alg/layer-memory-cached-rotating layer $alg 1 rotating hello"
  )
done
ALL_CASES+=(
  "opaque/layer-introspection-cached introspect opaque 1 default hello"
  "HS256/layer-remote-jwks-cached remote HS256 1 default hello"
  "ES256/layer-remote-jwks remote ES256 0 default hello"
  "ES256/layer-remote-jwks-cached remote ES256 1 default hello"
)

is_peer() { [ "$1" = jwt-authorizer ] || [ "$1" = axum-jwt-auth ]; }
CASES=()
want_peers=0 want_redis=0 want_pg=0
for c in "${ALL_CASES[@]}"; do
  read -r name mode _ <<<"$c"
  # bare is always measured: every case is paired with it.
  [ -z "$ONLY" ] || [ "$name" = bare ] || [[ $name =~ $ONLY ]] || continue
  CASES+=("$c")
  if is_peer "$mode"; then want_peers=1; fi
  if [ "$mode" = naive ] || [ "$mode" = redis ]; then want_redis=1; fi
  if [ "$mode" = postgres ]; then want_pg=1; fi
done
((${#CASES[@]} > 1)) || { echo "ONLY matched no case" >&2; exit 1; }

need=()
command -v wrk >/dev/null || need+=(wrk)
((want_redis == 0)) || command -v redis-server >/dev/null || need+=(redis-server)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
((want_pg == 0)) || [ -x "$PG_BIN/postgres" ] || need+=(postgresql)
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}"
fi

json_field() { # field: the value of a top-level string field of the JSON object on stdin
  if command -v jq >/dev/null; then
    jq -r --arg f "$1" '.[$f]'
  else
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
  fi
}
executable() { # target: the executable of the compiler-artifact for target, from cargo's JSON
  if command -v jq >/dev/null; then
    jq -r --arg t "$1" 'select(.reason == "compiler-artifact" and .target.name == $t
      and .executable != null) | .executable'
  else
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] \
            and m.get("executable"):
        print(m["executable"])' "$1"
  fi | tail -n 1
}
build() { # target cargo-args...: builds, prints the path of the target's executable
  local bin
  bin=$(cargo build --release --message-format=json-render-diagnostics "${@:2}" | executable "$1")
  [ -n "$bin" ] && [ -x "$bin" ] || { echo "cargo did not report an executable for $1" >&2; exit 1; }
  echo "$bin"
}

BIN_FEATURES=()
((want_pg == 0)) || BIN_FEATURES=(--features postgres)
BIN=$(build bench_server --example bench_server "${BIN_FEATURES[@]}")
PEERS_BIN=""
if ((want_peers)); then
  # Its own target dir under the main one (wherever CARGO_TARGET_DIR or cargo's config puts it).
  TARGET=$(cargo metadata --format-version 1 --no-deps | json_field target_directory)
  PEERS_BIN=$(CARGO_TARGET_DIR="$TARGET/peers" build peers_server --locked \
    --manifest-path benches/peers/Cargo.toml)
fi
echo "bench_server: $BIN${PEERS_BIN:+; peers_server: $PEERS_BIN}" >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
WORK=$(mktemp -d)
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if ((want_redis)); then
  RPORT=$(free_port)
  redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/dev/null &
  PIDS+=($!)
  for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export REDIS_URL="redis://127.0.0.1:$RPORT/"
fi

if ((want_pg)); then
  # A throwaway cluster in $WORK, as the postgres user when we are root (PostgreSQL refuses
  # to run as root), trust authentication on 127.0.0.1 only.
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  PGPORT=$(free_port)
  AS_PG=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$WORK"
    AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env)
  fi
  "${AS_PG[@]}" "$PG_BIN/initdb" --auth=trust --username=postgres --no-locale -D "$WORK/pg" >/dev/null
  "${AS_PG[@]}" "$PG_BIN/postgres" -D "$WORK/pg" -p "$PGPORT" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$WORK" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    psql -h 127.0.0.1 -p "$PGPORT" -U postgres -XAtqc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
fi

# wrk script for a rotating case: every request takes the next token of the file. The requests
# are formatted in init(), once wrk has set the Host header.
lua_script() { # tokens-file
  cat <<EOF
local reqs, i = {}, 0
function init(args)
  for line in io.lines("$1") do
    if #line > 0 then
      reqs[#reqs + 1] = wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. line })
    end
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
EOF
}

NAMES=()
declare -A PORT TOKEN SCRIPT SHAPE ALG TOKLEN
for c in "${CASES[@]}"; do
  read -r name mode alg cache shape handler <<<"$c"
  NAMES+=("$name")
  port=$(free_port)
  base="$WORK/$(echo "$name" | tr / _)"
  bin=$BIN
  if is_peer "$mode"; then bin=$PEERS_BIN; fi
  MODE=$mode ALG=$alg CACHE=$cache TOKEN_SHAPE=$shape HANDLER=$handler TOKENS_FILE="$base.tokens" \
    BIND=127.0.0.1:$port taskset -c 0 "$bin" >"$base.out" 2>"$base.err" &
  PIDS+=($!)
  for _ in $(seq 200); do grep -q READY "$base.out" && break; sleep 0.05; done
  grep -q READY "$base.out" || { echo "server for $name did not start:" >&2; cat "$base.err" >&2; exit 1; }
  PORT[$name]=$port
  SHAPE[$name]=$shape
  ALG[$name]=$alg
  file=$(sed -n 's/^TOKENS //p' "$base.out")
  if [ -n "$file" ]; then
    lua_script "$file" >"$base.lua"
    SCRIPT[$name]="$base.lua"
    TOKLEN[$name]=$(head -n 1 "$file" | tr -d '\n' | wc -c)
  else
    TOKEN[$name]=$(sed -n 's/^TOKEN //p' "$base.out")
    TOKLEN[$name]=${#TOKEN[$name]}
  fi
done

# Every server must have minted tokens of one length for an algorithm and shape.
declare -A LEN_OF
for name in "${NAMES[@]}"; do
  k="${ALG[$name]} ${SHAPE[$name]}"
  if [ -z "${LEN_OF[$k]:-}" ]; then
    LEN_OF[$k]="${TOKLEN[$name]} $name"
  elif [ "${LEN_OF[$k]%% *}" != "${TOKLEN[$name]}" ]; then
    echo "token lengths differ for $k: ${LEN_OF[$k]#* } ${LEN_OF[$k]%% *} B, $name ${TOKLEN[$name]} B" \
      "(bench_server and peers_server must mint the same claims)" >&2
    exit 1
  fi
done

load() { # server case seconds [--latency]: wrk on the server with the requests of the case
  local req=(-H "Authorization: Bearer ${TOKEN[$2]:-}")
  if [ -n "${SCRIPT[$2]:-}" ]; then req=(-s "${SCRIPT[$2]}"); fi
  taskset -c 1 wrk -t1 -c"$CONNS" -d"$3s" ${4:-} "${req[@]}" "http://127.0.0.1:${PORT[$1]}/"
}

# Warm up every server (first sight of the token(s), connections).
for name in "${NAMES[@]}"; do load "$name" "$name" 1 >/dev/null; done

bare_of() { # case: the row bare's runs before it are recorded under
  if [ "${SHAPE[$1]}" = default ]; then echo bare; else echo "bare@${SHAPE[$1]}"; fi
}

declare -A ALL_RPS ALL_P50 ALL_P99 ALL_PAIRED
measure() { # server case row: measures, records the figures under row, sets LAST (req/s)
  local res non2xx rps
  res=$(load "$1" "$2" "$DURATION" --latency)
  non2xx=$(echo "$res" | sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p')
  if [ -n "$non2xx" ]; then echo "case $3: $non2xx non-2xx responses" >&2; exit 1; fi
  rps=$(echo "$res" | awk '/Requests\/sec/ {print $2}')
  ALL_RPS[$3]+="$rps "
  ALL_P50[$3]+="$(echo "$res" | awk '$1=="50%" {print $2}') "
  ALL_P99[$3]+="$(echo "$res" | awk '$1=="99%" {print $2}') "
  LAST=$rps
}

OTHERS=()
ROWS=(bare)
for name in "${NAMES[@]}"; do [ "$name" = bare ] || OTHERS+=("$name"); done
for shape in large rotating; do
  for name in "${OTHERS[@]}"; do
    if [ "${SHAPE[$name]}" = "$shape" ]; then ROWS+=("bare@$shape"); break; fi
  done
done
ROWS+=("${OTHERS[@]}")
n=${#OTHERS[@]}
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  for i in $(seq 0 $((n - 1))); do
    name=${OTHERS[$(((i + round - 1) % n))]}
    # Odd rounds measure bare first, even rounds the case first, so that a bias of the second
    # run of a pair against the first cancels out over the rounds.
    if ((round % 2)); then
      measure bare "$name" "$(bare_of "$name")"
      b=$LAST
      measure "$name" "$name" "$name"
    else
      measure "$name" "$name" "$name"
      a=$LAST
      measure bare "$name" "$(bare_of "$name")"
      b=$LAST LAST=$a
    fi
    ALL_PAIRED[$name]+="$(awk -v a="$LAST" -v b="$b" 'BEGIN { printf "%.4f", a / b }') "
  done
done

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
range() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ a[NR]=$1 } END { printf "%.2f - %.2f", a[1], a[NR] }'; }

declare -A RPS PAIRED
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"
echo "ROUNDS=$ROUNDS DURATION=${DURATION}s CONNS=$CONNS; bare measured ${#OTHERS[@]}x per round"
printf '%-36s %10s %9s %9s   %s\n' case "req/s" p50 p99 "case/bare, paired: median (min - max)"
for name in "${ROWS[@]}"; do
  RPS[$name]=$(echo "${ALL_RPS[$name]}" | median)
  paired="-"
  if [ -n "${ALL_PAIRED[$name]:-}" ]; then
    PAIRED[$name]=$(echo "${ALL_PAIRED[$name]}" | median)
    paired="${PAIRED[$name]} ($(echo "${ALL_PAIRED[$name]}" | range))"
  fi
  printf '%-36s %10s %9s %9s   %s\n' "$name" "${RPS[$name]}" "$(echo "${ALL_P50[$name]}" | median)" \
    "$(echo "${ALL_P99[$name]}" | median)" "$paired"
done

has() { [ -n "${RPS[$1]:-}" ]; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
ratio() { # ratio of the medians
  if has "$1" && has "$2"; then div "${RPS[$1]}" "${RPS[$2]}"; else echo "n/a"; fi
}
paired() { echo "${PAIRED[$1]:-n/a}"; }
line() { printf '  %-52s %s\n' "$1" "$2"; }
goal() { # case goal: its paired ratio to bare against the goal
  has "$1" || return 0
  local verdict
  verdict=$(awk -v p="${PAIRED[$1]}" -v g="$2" 'BEGIN { print (p >= g) ? "met" : "NOT met" }')
  line "$1 / $(bare_of "$1")" "paired $(paired "$1")  medians $(ratio "$1" "$(bare_of "$1")")  goal >= $2: $verdict"
}
info() { # case [note]: its ratios to bare, as information
  has "$1" || return 0
  line "$1 / $(bare_of "$1")" "paired $(paired "$1")  medians $(ratio "$1" "$(bare_of "$1")")${2:+  ($2)}"
}
vs_best() { # layer-case peer-cases...: the uncached layer against the fastest of the others
  has "$1" || return 0
  local best_m="" best_p="" c
  for c in "${@:2}"; do
    has "$c" || continue
    if [ -z "$best_m" ] || awk -v a="${RPS[$c]}" -v b="${RPS[$best_m]}" 'BEGIN { exit !(a > b) }'; then best_m=$c; fi
    if [ -z "$best_p" ] || awk -v a="${PAIRED[$c]}" -v b="${PAIRED[$best_p]}" 'BEGIN { exit !(a > b) }'; then best_p=$c; fi
  done
  if [ -z "$best_m" ]; then line "$1 / best peer" "n/a (no peer case ran)"; return 0; fi
  line "$1 / best peer" "medians $(ratio "$1" "$best_m") (vs ${best_m#*/})  paired $(div "${PAIRED[$1]}" "${PAIRED[$best_p]}") (vs ${best_p#*/})"
}
section() { # title command...: the command's lines under the title, nothing when it has none
  local out
  out=$("${@:2}")
  if [ -n "$out" ]; then echo " $1"; echo "$out"; fi
}
any_layer() {
  info bare-again "bare against bare: how far from 1.00 this method reads here"
  info noop-layer "what any layer costs here"
  info ext-layer "a layer that only inserts what the layer inserts"
}
opaque() {
  goal opaque/layer-introspection-cached 0.9
}
against_peers() { # alg
  local sfx
  for sfx in "" -large -rotating; do
    vs_best "$1/layer-memory$sfx" "$1/plain-jsonwebtoken$sfx" "$1/jwt-authorizer$sfx" "$1/axum-jwt-auth$sfx"
  done
}
goals() { # alg
  local sfx
  for sfx in "" -large -rotating; do goal "$1/layer-memory-cached$sfx" 0.97; done
  goal "$1/layer-memory-cached-claims" 0.95
  goal "$1/layer-postgres-cached" 0.85
}
information() { # alg: the former goals for the Redis store, now information
  info "$1/layer-redis-cached"
  if has "$1/layer-redis-cached"; then
    line "$1/layer-redis-cached / plain-jsonwebtoken" "medians $(ratio "$1/layer-redis-cached" "$1/plain-jsonwebtoken")"
    line "$1/layer-redis-cached / naive-redis-get" "medians $(ratio "$1/layer-redis-cached" "$1/naive-redis-get")"
  fi
  info "$1/plain-jsonwebtoken"
}

echo
echo "ratios (throughput; paired = median of case / the bare run beside it)"
section "any layer:" any_layer
section "opaque tokens (introspection), goal against bare:" opaque
for alg in HS256 ES256; do
  section "$alg, the uncached layer against the fastest of plain-jsonwebtoken, jwt-authorizer, axum-jwt-auth (paired: case/bare over peer/bare):" \
    against_peers "$alg"
  section "$alg, goals against bare:" goals "$alg"
  section "$alg, information:" information "$alg"
done

# Revocation propagation between two instances, Redis and PostgreSQL side by side (goal for
# PostgreSQL: p99 <= 50 ms over 200 trials). Runs with the PostgreSQL cases; its own servers.
if ((want_pg)); then
  echo
  cargo bench --quiet --bench propagation --features postgres 2>/dev/null | grep -v '^$'
fi
