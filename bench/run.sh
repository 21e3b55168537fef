#!/usr/bin/env bash
# Benchmarks of tokenauth on PostgreSQL, as ratios measured side by side in
# one run (docs/BENCHMARKS.md explains the method and gives the figures).
#
#   bench/run.sh                  full run: 1,000 and 1,000,000 tokens, 30s per side
#   SCALE=small bench/run.sh      smoke run: 1,000 and 10,000 tokens, 4s per side
#
# Settings (environment): BENCH_PG, an admin URL of the PostgreSQL server
# (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable);
# BENCH_REDIS, the Redis of the per-token rate limit's cost (default
# redis://127.0.0.1:6379/15; the run flushes nothing, its keys expire);
# DURATION (measured time per side), WARMUP, SLICE (how long each side of
# a pair is loaded in turn); KEEP=1 keeps the bench databases.
# It builds the service from this repository, creates two databases
# (tokenauth_bench_small, tokenauth_bench_big), starts the instances on
# 127.0.0.1 ports 18081-18085, loads them from a second process on
# loopback only, prints every target with its ratio and PASS/FAIL, and
# exits 1 if a target failed. Every load is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379/15}
SCALE=${SCALE:-full}
if [ "$SCALE" = small ]; then
  BIG=10000; DURATION=${DURATION:-4s}; WARMUP=${WARMUP:-1s}
else
  BIG=1000000; DURATION=${DURATION:-30s}; WARMUP=${WARMUP:-2s}
fi
SLICE=${SLICE:-400ms}
SMALL=1000
LOGIN_DURATION=30s; LOGIN_SLICE=2s
[ "$SCALE" = small ] && LOGIN_DURATION=3s
PASSWORD='bench passphrase 2026'
LOGIN_USERS=64
WORK=$(mktemp -d /tmp/tokenauth-bench.XXXXXX)
PIDS=()
FAILED=0

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }

# db_url NAME: the URL of database NAME on the server of BENCH_PG.
db_url() { printf '%s' "$PG" | sed -E "s#^(postgres(ql)?://[^/]*/)[^?]*#\1$1#"; }

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP:-0}" != 1 ]; then
    for name in tokenauth_bench_small tokenauth_bench_big; do
      psql -q "$PG" -c "DROP DATABASE IF EXISTS $name" >/dev/null 2>&1 || true
    done
  fi
  if [ "${KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

step "machine"
say "date:       $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
say "nproc:      $(nproc)"
say "memory:     $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
say "go:         $(go version)"
say "postgres:   $(psql -Atq "$PG" -c 'SHOW server_version')"
say "load avg:   $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; anything else running skews the figures)"
say "scale:      $SCALE ($SMALL and $BIG tokens; pairs: $DURATION per side after $WARMUP, in slices of $SLICE)"

step "build"
go build -o "$WORK/" . ./bench/loadgen ./bench/onequery ./bench/seed


step "seed"
for db in small big; do
  name=tokenauth_bench_$db
  total=$SMALL; [ "$db" = big ] && total=$BIG
  psql -q "$PG" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null
  DATABASE_URL=$(db_url "$name") "$WORK/tokenauth" migrate >/dev/null
  "$WORK/seed" -db "$(db_url "$name")" -total "$total" -known "$SMALL" -secrets "$WORK/tokens-$db.txt" \
    -login-users "$LOGIN_USERS" -password "$PASSWORD"
done

# start NAME PORT DATABASE [VAR=VALUE...]: runs the service (or, for NAME
# onequery, the baseline) in the background and waits until it answers.
start() {
  local name=$1 port=$2 db=$3; shift 3
  local bin="$WORK/tokenauth" args=(serve)
  if [ "$name" = onequery ]; then bin="$WORK/onequery"; args=(); fi
  # METRICS_ADDR empty: two instances run at once, and the default is one port for both.
  env DATABASE_URL="$(db_url "tokenauth_bench_$db")" ADDR="127.0.0.1:$port" METRICS_ADDR= LOG_LEVEL=warn \
    LOGIN_IP_PER_MINUTE=1000000 "$@" "$bin" "${args[@]}" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  eval "PID_${name//-/_}=$!"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then sleep 0.3; return; fi
    sleep 0.1
  done
  say "$name did not start:"; cat "$WORK/$name.log"; exit 1
}
pid_of() { local v="PID_${1//-/_}"; printf '%s' "${!v}"; }
# stop NAME: stops an instance (SIGTERM, graceful), so that no more than
# two pools of database connections are open at once.
stop() { local pid; pid=$(pid_of "$1"); kill "$pid"; wait "$pid" 2>/dev/null || true; }

# Peak resident memory (VmHWM) of a process since it started, in MiB: each
# load runs on fresh instances, so the peak is that load's.
peak_mib() { awk '/^VmHWM:/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# field KEY: the value of KEY in loadgen's key=value output on stdin, one
# per line (summed over lines when KEY is on several).
field() { awk -v k="$1" '{for (i=1;i<=NF;i++) {split($i,kv,"="); if (kv[1]==k) {s+=kv[2]; n++}}} END {if (n) printf "%.10g\n", s}'; }

header() { printf '%-44s %12s %12s %7s %7s  %s\n' target measured baseline ratio want result; }
# row LABEL MEASURED BASELINE WANT BAD [RATIO]: prints a target and counts
# failures; the ratio is MEASURED / BASELINE unless given.
row() {
  local label=$1 a=$2 b=$3 want=$4 bad=${5:-0} ratio=${6:-} verdict
  [ -n "$ratio" ] || ratio=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')
  ratio=$(awk -v r="$ratio" 'BEGIN {printf "%.3f", r}')
  if [ "$bad" != 0 ]; then verdict="FAIL ($bad non-2xx or errors)"
  elif awk -v r="$ratio" -v w="$want" 'BEGIN {exit !(r >= w)}'; then verdict=PASS
  else verdict=FAIL; fi
  [ "${verdict:0:4}" = FAIL ] && FAILED=$((FAILED + 1))
  printf '%-44s %12.1f %12.1f %7s %7s  %s\n' "$label" "$a" "$b" "$ratio" ">=$want" "$verdict"
}

# pair LABEL WANT CONNS URL_A TOKENS_A URL_B TOKENS_B: measures A against B
# (TOKENS_x: a file of bearer tokens, or empty) with loadgen -vs, which
# loads them in turn in slices of SLICE, in the order A B B A, until each
# has been measured for DURATION. The ratio is A's throughput over B's.
# On this shared machine the speed moves within seconds; the two sides of
# a short interleaved slice see the same machine, where whole rounds of
# seconds each did not (docs/BENCHMARKS.md).
pair() {
  local label=$1 want=$2 conns=$3 ua=$4 ta=$5 ub=$6 tb=$7 out
  local fa=() fb=()
  [ -n "$ta" ] && fa=(-tokens "$ta")
  [ -n "$tb" ] && fb=(-vs-tokens "$tb")
  out=$(timeout 900 "$WORK/loadgen" -url "$ua" "${fa[@]}" -vs "$ub" "${fb[@]}" -c "$conns" \
    -d "$DURATION" -warmup "$WARMUP" -slice "$SLICE")
  printf '%s\n%s\n' "$label" "$out" >>"$WORK/loadgen.log"
  printf '%s: %s\n' "$label" "$(head -1 <<<"$out")" >>"$WORK/rounds.log"
  row "$label" "$(sed -n 2p <<<"$out" | field rps)" "$(sed -n 3p <<<"$out" | field rps)" "$want" \
    "$(($(field non2xx <<<"$out") + $(field errors <<<"$out")))" "$(head -1 <<<"$out" | field ratio)"
}

# hash_time: prints "ALONE PARALLEL", the median time of one argon2id hash
# with the service's parameters, alone and with one hash per core at once.
hash_time() { "$WORK/loadgen" -hash-time | sed -E 's/[a-z_]+=//g'; }

step "argon2id: time of one hash (nothing else loaded)"
read -r HASH PARALLEL < <(hash_time)
say "one hash alone: ${HASH}s; $(nproc) cores / ${HASH}s = $(awk -v c="$(nproc)" -v h="$HASH" 'BEGIN {printf "%.1f", c / h}') logins/s"
say "one hash while $(nproc) run at once: ${PARALLEL}s ($(awk -v c="$(nproc)" -v h="$PARALLEL" 'BEGIN {printf "%.1f", c / h}') logins/s)"
say "(the login target times the hash again between its slices of load: this machine's speed drifts)"

step "targets (requests per second; ratio = measured / baseline)"
say "instances on 127.0.0.1: cached (${SMALL} tokens, TOKEN_CACHE_TTL=30s) :18081; nocache (${SMALL}, TOKEN_CACHE_TTL=0) :18082;"
say "onequery baseline (${SMALL}) :18083; nocache-big ($BIG tokens, TOKEN_CACHE_TTL=0) :18084; login (${SMALL}) :18085;"
say "limited (${SMALL}, half of them with a per-token rate limit, REDIS_URL=$REDIS) :18086"
header
start cached 18081 small
for c in 32 64; do
  pair "profile vs healthz, $c conns" 0.85 "$c" \
    http://127.0.0.1:18081/api/profile/ "$WORK/tokens-small.txt" http://127.0.0.1:18081/healthz ""
done
AUTH_PEAK=$(peak_mib "$(pid_of cached)")
stop cached

# The cost of a per-token rate limit kept in Redis: on one instance with
# REDIS_URL, half the known tokens get a budget they never spend (10^9 a
# second) and the other half none; the pair loads the same route with each
# half. Informational (want >= 0): the figure is the cost, stated in
# docs/BENCHMARKS.md. The tokens without a limit are the same as above.
head -n $((SMALL / 2)) "$WORK/tokens-small.txt" >"$WORK/tokens-limited.txt"
tail -n +$((SMALL / 2 + 1)) "$WORK/tokens-small.txt" >"$WORK/tokens-unlimited.txt"
limited_hashes=$(while read -r t; do printf "'%s'," "$(printf '%s' "$t" | sha256sum | cut -d' ' -f1)"; done <"$WORK/tokens-limited.txt")
psql -q "$(db_url tokenauth_bench_small)" -c \
  "UPDATE api_tokens SET rate_limit_requests = 1000000000, rate_limit_seconds = 1 WHERE key_hash IN (${limited_hashes%,})" >/dev/null
start limited 18086 small REDIS_URL="$REDIS"
pair "limited tokens (Redis) vs unlimited, 64 conns" 0 64 \
  http://127.0.0.1:18086/api/profile/ "$WORK/tokens-limited.txt" \
  http://127.0.0.1:18086/api/profile/ "$WORK/tokens-unlimited.txt"
pair "unlimited tokens, Redis set, vs healthz, 64 conns" 0.85 64 \
  http://127.0.0.1:18086/api/profile/ "$WORK/tokens-unlimited.txt" http://127.0.0.1:18086/healthz ""
stop limited
psql -q "$(db_url tokenauth_bench_small)" -c "UPDATE api_tokens SET rate_limit_requests = 0, rate_limit_seconds = 0" >/dev/null

start nocache 18082 small TOKEN_CACHE_TTL=0
start onequery 18083 small
pair "cache off vs one-query pgx handler, 64 conns" 0.9 64 \
  http://127.0.0.1:18082/api/profile/ "$WORK/tokens-small.txt" \
  http://127.0.0.1:18083/api/profile/ "$WORK/tokens-small.txt"
ONEQUERY_PEAK=$(peak_mib "$(pid_of onequery)")
stop onequery

start nocache-big 18084 big TOKEN_CACHE_TTL=0
pair "$BIG vs $SMALL tokens (cache off), 64 conns" 0.95 64 \
  http://127.0.0.1:18084/api/profile/ "$WORK/tokens-big.txt" \
  http://127.0.0.1:18082/api/profile/ "$WORK/tokens-small.txt"
NOCACHE_PEAK=$(peak_mib "$(pid_of nocache)")
NOCACHE_BIG_PEAK=$(peak_mib "$(pid_of nocache-big)")
stop nocache
stop nocache-big

start login 18085 small
# loadgen -vs-hash loads logins in slices of LOGIN_SLICE and, between
# them, times hashes alone on the then idle machine: each slice is
# compared with the hash time of just before and just after it. A login
# waits in line for a hash: 64 of them take a few seconds to reach a
# steady state, hence the longer warm-up.
out=$(timeout 900 "$WORK/loadgen" -url http://127.0.0.1:18085/api/login/ -login-users "$LOGIN_USERS" -password "$PASSWORD" \
  -c 64 -vs-hash -slice "$LOGIN_SLICE" -warmup 5s -d "$LOGIN_DURATION")
printf 'login\n%s\n' "$out" >>"$WORK/loadgen.log"
printf 'login vs cores/hash time, 64 conns: %s\n' "$(head -1 <<<"$out")" >>"$WORK/rounds.log"
LOGIN_PEAK=$(peak_mib "$(pid_of login)")
stop login
row "login vs cores/hash time, 64 conns" "$(field rps <<<"$out")" "$(field ceiling_rps <<<"$out")" 0.8 \
  "$(($(field non2xx <<<"$out") + $(field errors <<<"$out")))" "$(field ratio <<<"$out")"

step "peak memory of the server (VmHWM, MiB)"
printf '%-44s %12s %12s %s\n' "load" "peak MiB" "bound MiB" result
mem_row() {
  local verdict=PASS
  awk -v p="$2" -v b="$3" 'BEGIN {exit !(p < b)}' || { verdict=FAIL; FAILED=$((FAILED + 1)); }
  printf '%-44s %12s %12s %s\n' "$1" "$2" "$3" "$verdict"
}
mem_row "authenticated load (32 and 64 conns, cached)" "$AUTH_PEAK" 64
mem_row "64 concurrent logins" "$LOGIN_PEAK" 150
printf '%-44s %12s %12s %s\n' "nocache (for reference)" "$NOCACHE_PEAK" - -
printf '%-44s %12s %12s %s\n' "nocache-big (for reference)" "$NOCACHE_BIG_PEAK" - -
printf '%-44s %12s %12s %s\n' "onequery baseline (for reference)" "$ONEQUERY_PEAK" - -

step "ratio of each round"
cat "$WORK/rounds.log"

step "summary"
if [ "$FAILED" = 0 ]; then say "every target passed"; else say "$FAILED target(s) failed"; exit 1; fi
