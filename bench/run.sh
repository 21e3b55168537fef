#!/usr/bin/env bash
# Benchmarks of tokenauth on PostgreSQL, as ratios measured side by side in
# one run (docs/BENCHMARKS.md explains the method and gives the figures).
#
#   bench/run.sh                  every target, full scale: 1,000 and 1,000,000 tokens, 30s per side
#   bench/run.sh flood login      only the targets named (any of: profile limited onequery tokens
#                                 login flood growth unknown middleware gateway)
#   SCALE=small bench/run.sh      smoke run: 1,000 and 10,000 tokens, 4s per side
#   bench/run.sh list             prints the targets and exits
#
# Settings (environment): BENCH_PG, an admin URL of the PostgreSQL server
# (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable);
# BENCH_REDIS, the Redis of the per-token rate limit's cost (default
# redis://127.0.0.1:6379/15; the run flushes nothing, its keys expire);
# DURATION (measured time per side), WARMUP, SLICE (how long each side of
# a pair is loaded in turn); HASH_SLOTS (PASSWORD_HASH_CONCURRENCY of the
# instances, default the service's: the number of cores less one, at least
# 1); BENCH_DB (the prefix of the databases' names, default
# tokenauth_bench) and BENCH_PORT
# (the first port, default 18081), so that two runs can share a server and
# a machine; KEEP=1 keeps the bench databases.
# It builds the service from this repository, creates its databases
# (BENCH_DB_small, and BENCH_DB_big for the tokens target), starts the
# instances on 127.0.0.1 ports BENCH_PORT to BENCH_PORT+10, loads them from a
# second process on loopback only, prints every target with its ratio and
# PASS/FAIL and the latency of every load (p50, p99, p99.9), and exits 1 if
# a target failed. Every load is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

ALL_TARGETS="profile limited onequery tokens login flood growth unknown middleware gateway"
if [ "${1:-}" = list ]; then printf '%s\n' $ALL_TARGETS; exit 0; fi
TARGETS=${*:-$ALL_TARGETS}
for t in $TARGETS; do
  case " $ALL_TARGETS " in *" $t "*) ;; *) echo "unknown target $t; the targets: $ALL_TARGETS" >&2; exit 2 ;; esac
done
wants() { case " $TARGETS " in *" $1 "*) return 0 ;; esac; return 1; }

PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379/15}
SCALE=${SCALE:-full}
if [ "$SCALE" = small ]; then
  BIG=10000; DURATION=${DURATION:-4s}; WARMUP=${WARMUP:-1s}
else
  BIG=1000000; DURATION=${DURATION:-30s}; WARMUP=${WARMUP:-2s}
fi
SLICE=${SLICE:-400ms}
NGINX=${NGINX:-/usr/sbin/nginx}
SMALL=1000
LOGIN_DURATION=30s; LOGIN_SLICE=2s
FLOOD_SLICE=2s
[ "$SCALE" = small ] && LOGIN_DURATION=4s
PASSWORD='bench passphrase 2026'
LOGIN_USERS=64
HISTORY_EVENTS=100000
MAX_TOKENS=50
HASH_SLOTS=${HASH_SLOTS:-$(($(nproc) > 1 ? $(nproc) - 1 : 1))}
DB=${BENCH_DB:-tokenauth_bench}
PORT=${BENCH_PORT:-18081}
P_CACHED=$PORT P_NOCACHE=$((PORT + 1)) P_ONEQUERY=$((PORT + 2)) P_BIG=$((PORT + 3)) P_LOGIN=$((PORT + 4))
P_FLOOD=$((PORT + 5)) P_PROBE=$((PORT + 6)) P_LIMITED=$((PORT + 7))
P_GATEWAY=$((PORT + 8)) P_NGINX_AUTH=$((PORT + 9)) P_NGINX=$((PORT + 10))
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
    for name in "${DB}_small" "${DB}_big"; do
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
say "hash slots: $HASH_SLOTS (PASSWORD_HASH_CONCURRENCY of every instance)"
say "targets:    $TARGETS"

step "build"
go build -o "$WORK/" . ./bench/loadgen ./bench/onequery ./bench/seed

step "seed"
seed_db() {
  local db=$1 total=$2; shift 2
  local name=${DB}_$db
  psql -q "$PG" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null
  DATABASE_URL=$(db_url "$name") "$WORK/tokenauth" migrate >/dev/null
  "$WORK/seed" -db "$(db_url "$name")" -total "$total" -known "$SMALL" -secrets "$WORK/tokens-$db.txt" \
    -login-users "$LOGIN_USERS" -password "$PASSWORD" "$@"
}
seed_db small "$SMALL" -history-secrets "$WORK/history" -history-events "$HISTORY_EVENTS" -history-tokens "$MAX_TOKENS"
if wants tokens; then seed_db big "$BIG"; fi

# start NAME PORT DATABASE [VAR=VALUE...]: runs the service (or, for NAME
# onequery, the baseline) in the background and waits until it answers.
start() {
  local name=$1 port=$2 db=$3; shift 3
  local bin="$WORK/tokenauth" args=(serve)
  if [ "$name" = onequery ]; then bin="$WORK/onequery"; args=(); fi
  # METRICS_ADDR empty: two instances run at once, and the default is one port for both.
  env DATABASE_URL="$(db_url "${DB}_$db")" ADDR="127.0.0.1:$port" METRICS_ADDR= LOG_LEVEL=warn \
    LOGIN_IP_PER_MINUTE=1000000 PASSWORD_HASH_CONCURRENCY="$HASH_SLOTS" MAX_TOKENS_PER_USER="$MAX_TOKENS" "$@" \
    "$bin" "${args[@]}" >"$WORK/$name.log" 2>&1 &
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

# Peak resident memory since it started, in MiB, of a process and its
# children (the service's password-hash worker): each load runs on fresh
# instances, so the peak is that load's. The process counts with its peak
# (VmHWM); a child with its peak less its file-backed pages (RssFile): the
# child is the same binary, whose pages the kernel keeps once for both, so
# that counting them twice would count memory the machine does not spend.
# It prints the sum, then each process's part: "131.2 (64.1+67.1)".
peak_mib() {
  local p
  {
    awk '/^VmHWM:/ {print $2}' "/proc/$1/status"
    for p in $(pgrep -P "$1"); do
      awk '/^VmHWM:/ {h = $2} /^RssFile:/ {f = $2} END {print h - f}' "/proc/$p/status"
    done
  } | awk '{s += $1; each = each (each == "" ? "" : "+") sprintf("%.1f", $1/1024)} END {printf "%.1f (%s)", s/1024, each}'
}

# field KEY: the value of KEY in loadgen's key=value output on stdin, one
# per line (summed over lines when KEY is on several).
field() { awk -v k="$1" '{for (i=1;i<=NF;i++) {split($i,kv,"="); if (kv[1]==k) {s+=kv[2]; n++}}} END {if (n) printf "%.10g\n", s}'; }

header() { printf '%-52s %12s %12s %7s %7s  %s\n' target measured baseline ratio want result; }
# row LABEL MEASURED BASELINE WANT BAD [RATIO [CMP]]: prints a target and
# counts failures; the ratio is MEASURED / BASELINE unless given, and must
# be >= WANT (CMP ge, the default) or <= WANT (CMP le).
row() {
  local label=$1 a=$2 b=$3 want=$4 bad=${5:-0} ratio=${6:-} cmp=${7:-ge} verdict sign='>='
  [ -n "$ratio" ] || ratio=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')
  ratio=$(awk -v r="$ratio" 'BEGIN {printf "%.3f", r}')
  [ "$cmp" = le ] && sign='<='
  if [ "$bad" != 0 ]; then verdict="FAIL ($bad non-2xx or errors)"
  elif awk -v r="$ratio" -v w="$want" -v c="$cmp" 'BEGIN {exit !(c == "le" ? r <= w : r >= w)}'; then verdict=PASS
  else verdict=FAIL; fi
  [ "${verdict:0:4}" = FAIL ] && FAILED=$((FAILED + 1))
  printf '%-52s %12.1f %12.1f %7s %7s  %s\n' "$label" "$a" "$b" "$ratio" "$sign$want" "$verdict"
}

# latency LABEL LINE: keeps the p50, p99 and p99.9 of one of loadgen's
# result lines for the latency table.
latency() {
  printf '%-60s %10s %10s %10s %10s\n' "$1" "$(field rps <<<"$2")" "$(field p50_ms <<<"$2")" \
    "$(field p99_ms <<<"$2")" "$(field p999_ms <<<"$2")" >>"$WORK/latency.log"
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
  latency "$label: measured" "$(sed -n 2p <<<"$out")"
  latency "$label: baseline" "$(sed -n 3p <<<"$out")"
  row "$label" "$(sed -n 2p <<<"$out" | field rps)" "$(sed -n 3p <<<"$out" | field rps)" "$want" \
    "$(($(field non2xx <<<"$out") + $(field errors <<<"$out")))" "$(head -1 <<<"$out" | field ratio)"
}

step "argon2id: time of one hash (nothing else loaded)"
read -r HASH PARALLEL < <("$WORK/loadgen" -hash-time -hash-slots "$HASH_SLOTS" | sed -E 's/[a-z_]+=//g')
say "one hash alone: ${HASH}s"
say "one hash while $HASH_SLOTS run at once: ${PARALLEL}s; $HASH_SLOTS / ${PARALLEL}s = $(awk -v c="$HASH_SLOTS" -v h="$PARALLEL" 'BEGIN {printf "%.1f", c / h}') logins/s"
say "(the login target times the hashes again between its slices of load: this machine's speed drifts)"

step "targets (requests per second; ratio = measured / baseline)"
say "instances on 127.0.0.1: cached (${SMALL} tokens, TOKEN_CACHE_TTL=30s) :$P_CACHED; nocache (${SMALL}, TOKEN_CACHE_TTL=0) :$P_NOCACHE;"
say "onequery baseline (${SMALL}) :$P_ONEQUERY; nocache-big ($BIG tokens, TOKEN_CACHE_TTL=0) :$P_BIG; login (${SMALL}) :$P_LOGIN;"
say "flood (${SMALL}, TRUSTED_PROXIES=127.0.0.1) :$P_FLOOD; probe (${SMALL}, LOGIN_USER_FAILURES=1000000, TRUSTED_PROXIES=127.0.0.1) :$P_PROBE"
say "limited (${SMALL}, half of them with a per-token rate limit, REDIS_URL=$REDIS) :$P_LIMITED"
header
AUTH_PEAK=-; GROWTH_PEAK=-; LOGIN_PEAK=-; NOCACHE_PEAK=-; NOCACHE_BIG_PEAK=-; ONEQUERY_PEAK=-; FLOOD_PEAK=-

if wants profile || wants growth; then
  start cached $P_CACHED small
  if wants profile; then
    for c in 32 64; do
      pair "profile vs healthz, $c conns" 0.85 "$c" \
        http://127.0.0.1:$P_CACHED/api/profile/ "$WORK/tokens-small.txt" http://127.0.0.1:$P_CACHED/healthz ""
    done
    # The bound is the authenticated load's: read before the growth
    # target's lists of 100,000 events raise the peak.
    AUTH_PEAK=$(peak_mib "$(pid_of cached)")
  fi
  if wants growth; then
    # One user with HISTORY_EVENTS security events and MAX_TOKENS live
    # tokens (and as many revoked), one with 10 of each.
    pair "security events: $HISTORY_EVENTS vs 10 events, 64 conns" 0.5 64 \
      http://127.0.0.1:$P_CACHED/api/security-events/ "$WORK/history-big.txt" \
      http://127.0.0.1:$P_CACHED/api/security-events/ "$WORK/history-small.txt"
    pair "tokens list: $MAX_TOKENS vs 10 live tokens, 64 conns" 0.5 64 \
      http://127.0.0.1:$P_CACHED/api/tokens/ "$WORK/history-big.txt" \
      http://127.0.0.1:$P_CACHED/api/tokens/ "$WORK/history-small.txt"
  fi
  if wants growth; then GROWTH_PEAK=$(peak_mib "$(pid_of cached)"); fi
  stop cached
fi

if wants limited; then
  # The cost of a per-token rate limit kept in Redis: on one instance with
  # REDIS_URL, half the known tokens get a budget they never spend (10^9 a
  # second) and the other half none; the pair loads the same route with each
  # half. Informational (want >= 0): the figure is the cost, stated in
  # docs/BENCHMARKS.md. The tokens without a limit are the same as above.
  head -n $((SMALL / 2)) "$WORK/tokens-small.txt" >"$WORK/tokens-limited.txt"
  tail -n +$((SMALL / 2 + 1)) "$WORK/tokens-small.txt" >"$WORK/tokens-unlimited.txt"
  limited_hashes=$(while read -r t; do printf "'%s'," "$(printf '%s' "$t" | sha256sum | cut -d' ' -f1)"; done <"$WORK/tokens-limited.txt")
  psql -q "$(db_url "${DB}_small")" -c \
    "UPDATE api_tokens SET rate_limit_requests = 1000000000, rate_limit_seconds = 1 WHERE key_hash IN (${limited_hashes%,})" >/dev/null
  start limited $P_LIMITED small REDIS_URL="$REDIS"
  pair "limited tokens (Redis) vs unlimited, 64 conns" 0 64 \
    http://127.0.0.1:$P_LIMITED/api/profile/ "$WORK/tokens-limited.txt" \
    http://127.0.0.1:$P_LIMITED/api/profile/ "$WORK/tokens-unlimited.txt"
  pair "unlimited tokens, Redis set, vs healthz, 64 conns" 0.85 64 \
    http://127.0.0.1:$P_LIMITED/api/profile/ "$WORK/tokens-unlimited.txt" http://127.0.0.1:$P_LIMITED/healthz ""
  stop limited
  psql -q "$(db_url "${DB}_small")" -c "UPDATE api_tokens SET rate_limit_requests = 0, rate_limit_seconds = 0" >/dev/null
fi

if wants onequery || wants tokens; then
  start nocache $P_NOCACHE small TOKEN_CACHE_TTL=0
  if wants onequery; then
    start onequery $P_ONEQUERY small
    pair "cache off vs one-query pgx handler, 64 conns" 0.85 64 \
      http://127.0.0.1:$P_NOCACHE/api/profile/ "$WORK/tokens-small.txt" \
      http://127.0.0.1:$P_ONEQUERY/api/profile/ "$WORK/tokens-small.txt"
    ONEQUERY_PEAK=$(peak_mib "$(pid_of onequery)")
    stop onequery
  fi
  if wants tokens; then
    start nocache-big $P_BIG big TOKEN_CACHE_TTL=0
    pair "$BIG vs $SMALL tokens (cache off), 64 conns" 0.95 64 \
      http://127.0.0.1:$P_BIG/api/profile/ "$WORK/tokens-big.txt" \
      http://127.0.0.1:$P_NOCACHE/api/profile/ "$WORK/tokens-small.txt"
    NOCACHE_BIG_PEAK=$(peak_mib "$(pid_of nocache-big)")
    stop nocache-big
  fi
  NOCACHE_PEAK=$(peak_mib "$(pid_of nocache)")
  stop nocache
fi

if wants login; then
  start login $P_LOGIN small
  # loadgen -vs-hash loads logins in slices of LOGIN_SLICE and, between
  # them, times HASH_SLOTS hashes at once on the then idle machine, in its
  # own process with the same library: each slice is compared with the
  # ceiling of just before and just after it. A login waits in line for a
  # hash: 64 of them take a few seconds to reach a steady state, hence the
  # longer warm-up.
  out=$(timeout 900 "$WORK/loadgen" -url http://127.0.0.1:$P_LOGIN/api/login/ -login-users "$LOGIN_USERS" -password "$PASSWORD" \
    -c 64 -vs-hash -hash-slots "$HASH_SLOTS" -slice "$LOGIN_SLICE" -warmup 5s -d "$LOGIN_DURATION")
  printf 'login\n%s\n' "$out" >>"$WORK/loadgen.log"
  printf 'login vs hash slots ceiling, 64 conns: %s\n' "$(head -1 <<<"$out")" >>"$WORK/rounds.log"
  latency "login, 64 conns" "$(sed -n 2p <<<"$out")"
  LOGIN_PEAK=$(peak_mib "$(pid_of login)")
  stop login
  # 503 overloaded counts as a failure here: with no other load, 64
  # connections must not wait HASH_QUEUE_TIMEOUT for a slot.
  row "login vs $HASH_SLOTS hashes at once in process, 64 conns" "$(field rps <<<"$out")" "$(field ceiling_rps <<<"$out")" 0.85 \
    "$(($(field non2xx <<<"$out") + $(field errors <<<"$out")))" "$(field ratio <<<"$out")"
fi

if wants flood; then
  start flood $P_FLOOD small TRUSTED_PROXIES=127.0.0.1
  # Profile requests from 64 connections with, in every other slice, 64
  # more sending failed logins for unique usernames from unique addresses
  # (X-Forwarded-For from the trusted proxy), in the order A B B A, A with
  # the flood. A flood slice lasts until its last login is answered.
  out=$(timeout 1800 "$WORK/loadgen" -url http://127.0.0.1:$P_FLOOD/api/profile/ -tokens "$WORK/tokens-small.txt" -c 64 \
    -flood http://127.0.0.1:$P_FLOOD/api/login/ -flood-c 64 -slice "$FLOOD_SLICE" -warmup "$WARMUP" -d "$DURATION")
  printf 'flood\n%s\n' "$out" >>"$WORK/loadgen.log"
  printf 'profile during a login flood vs without: %s\n' "$(head -1 <<<"$out")" >>"$WORK/rounds.log"
  latency "profile during a login flood, 64+64 conns" "$(sed -n 2p <<<"$out")"
  latency "profile without the flood, 64 conns" "$(sed -n 3p <<<"$out")"
  latency "failed logins of the flood, 64 conns" "$(sed -n 4p <<<"$out")"
  FLOOD_PEAK=$(peak_mib "$(pid_of flood)")
  stop flood
  row "profile during a login flood vs without, 64 conns" "$(sed -n 2p <<<"$out" | field rps)" "$(sed -n 3p <<<"$out" | field rps)" 0.5 \
    "$(($(sed -n 2,3p <<<"$out" | field non2xx) + $(sed -n 2,3p <<<"$out" | field errors)))" "$(head -1 <<<"$out" | field ratio)"
  row "p99 of profile during the flood vs without (ms)" "$(sed -n 2p <<<"$out" | field p99_ms)" "$(sed -n 3p <<<"$out" | field p99_ms)" 5 \
    0 "$(head -1 <<<"$out" | field p99_ratio)" le
  FLOOD_LINE=$(sed -n 4p <<<"$out")
fi

if wants unknown; then
  start probe $P_PROBE small LOGIN_USER_FAILURES=1000000 TRUSTED_PROXIES=127.0.0.1
  PROBE=$(timeout 900 "$WORK/loadgen" -url http://127.0.0.1:$P_PROBE/api/login/ -probe-user login1 -n 40 -flood-c 64)
  stop probe
fi

if wants flood; then
  step "the login flood (failed logins, unique usernames and addresses)"
  say "logins answered after a hash: $(field login_rps <<<"$FLOOD_LINE")/s; refused 503 overloaded: $(field shed_rps <<<"$FLOOD_LINE")/s ($(field shed_ratio <<<"$FLOOD_LINE") of the answers)"
  say "$FLOOD_LINE"
fi

if wants unknown; then
  step "unknown username vs known username with a wrong password (login, ms, one at a time)"
  say "$PROBE"
fi

if wants middleware; then
  step "cost of each middleware on the path (in process: BenchmarkMiddlewareCost, median of 5)"
  go test -run '^$' -bench MiddlewareCost -benchmem -count 5 ./middlewares >"$WORK/middleware.txt"
  awk '/^BenchmarkMiddlewareCost\// {
         split($1, n, "/"); sub(/-[0-9]+$/, "", n[2]); name = n[2]
         k[name] = k[name] + 1; ns[name, k[name]] = $3; b[name] = $5; a[name] = $7
         if (!(name in seen)) { seen[name] = 1; order[++count] = name }
       }
       function median(name,   i, j, t, m, v) {
         m = k[name]; for (i = 1; i <= m; i++) v[i] = ns[name, i]
         for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
         return v[int((m + 1) / 2)]
       }
       END {
         base = median("none")
         printf "%-20s %12s %12s %10s %10s\n", "middleware", "ns/op", "cost ns", "B/op", "allocs/op"
         for (i = 1; i <= count; i++) { name = order[i]
           printf "%-20s %12.0f %12.0f %10s %10s\n", name, median(name), median(name) - base, b[name], a[name] }
       }' "$WORK/middleware.txt"
fi

step "latency of every load (ms, from sending a request to reading its whole answer)"
if [ -f "$WORK/latency.log" ]; then
  printf '%-60s %10s %10s %10s %10s\n' load rps p50 p99 p99.9
  cat "$WORK/latency.log"
fi

step "peak memory of the server and its hash worker (MiB: the sum, then the server's VmHWM + the worker's VmHWM less the binary's pages it shares)"
printf '%-52s %22s %10s %s\n' "load" "peak MiB" "bound MiB" result
mem_row() {
  local verdict=PASS
  if [ "$2" = - ]; then return; fi
  awk -v p="${2%% *}" -v b="$3" 'BEGIN {exit !(p < b)}' || { verdict=FAIL; FAILED=$((FAILED + 1)); }
  printf '%-52s %22s %10s %s\n' "$1" "$2" "$3" "$verdict"
}
ref_row() { [ "$2" = - ] || printf '%-52s %22s %10s %s\n' "$1" "$2" - -; }
if wants profile; then mem_row "authenticated load (32 and 64 conns, cached)" "$AUTH_PEAK" 64; fi
mem_row "64 concurrent logins" "$LOGIN_PEAK" 150
ref_row "login flood beside the authenticated load" "$FLOOD_PEAK"
ref_row "authenticated load, then the growth lists" "$GROWTH_PEAK"
ref_row "nocache (for reference)" "$NOCACHE_PEAK"
ref_row "nocache-big (for reference)" "$NOCACHE_BIG_PEAK"
ref_row "onequery baseline (for reference)" "$ONEQUERY_PEAK"

if wants gateway; then
step "forward-auth (requests per second; ratio = measured / baseline)"
say "the same binary, cached (${SMALL} tokens, TOKEN_CACHE_TTL=30s) :$P_GATEWAY; nginx in front of it :$P_NGINX_AUTH (auth_request) and :$P_NGINX (none)"
header
start gateway $P_GATEWAY small
for c in 32 64; do
  pair "cached check vs healthz, $c conns" 0.85 "$c" \
    "http://127.0.0.1:$P_GATEWAY/api/auth/check?scope=profile:read" "$WORK/tokens-small.txt" http://127.0.0.1:$P_GATEWAY/healthz ""
done
GATEWAY_PEAK=$(peak_mib "$(pid_of gateway)")

# nginx with auth_request (docs/GATEWAY.md) against the same nginx proxying
# the same upstream (the service's /healthz) without it: what a check
# adds to every proxied request. Reported, with no target: nginx, the
# service and the load share the machine's cores.
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<NGINX
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
worker_processes 1;
events {}
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream tokenauth { server 127.0.0.1:$P_GATEWAY; keepalive 64; }
    server {
        listen 127.0.0.1:$P_NGINX_AUTH;
        location = /_tokenauth {
            internal;
            proxy_pass http://tokenauth/api/auth/check?scope=profile:read;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location / {
            auth_request /_tokenauth;
            auth_request_set \$auth_user_id \$upstream_http_x_auth_user_id;
            proxy_set_header X-Auth-User-Id \$auth_user_id;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://tokenauth/healthz;
        }
    }
    server {
        listen 127.0.0.1:$P_NGINX;
        location / {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://tokenauth/healthz;
        }
    }
}
NGINX
"$NGINX" -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
PID_nginx=$!
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/$P_NGINX) 2>/dev/null; then break; fi
  sleep 0.1
done
out=$(timeout 900 "$WORK/loadgen" -url http://127.0.0.1:$P_NGINX_AUTH/ -tokens "$WORK/tokens-small.txt" \
  -vs http://127.0.0.1:$P_NGINX/ -vs-tokens "$WORK/tokens-small.txt" -c 64 -d "$DURATION" -warmup "$WARMUP" -slice "$SLICE")
printf 'nginx\n%s\n' "$out" >>"$WORK/loadgen.log"
printf 'nginx auth_request vs none, 64 conns: %s\n' "$(head -1 <<<"$out")" >>"$WORK/rounds.log"
printf '%-44s %12.1f %12.1f %7.3f %7s  %s\n' "nginx auth_request vs none, 64 conns" \
  "$(sed -n 2p <<<"$out" | field rps)" "$(sed -n 3p <<<"$out" | field rps)" "$(head -1 <<<"$out" | field ratio)" - \
  "reported ($(($(field non2xx <<<"$out") + $(field errors <<<"$out"))) non-2xx or errors)"
stop nginx
stop gateway
printf '%-44s %12s\n' "peak MiB of the service, checks" "$GATEWAY_PEAK"
fi

step "ratio of each round"
if [ -f "$WORK/rounds.log" ]; then cat "$WORK/rounds.log"; fi

step "summary"
if [ "$FAILED" = 0 ]; then say "every target passed"; else say "$FAILED target(s) failed"; exit 1; fi
