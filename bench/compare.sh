#!/usr/bin/env bash
# Receiver vs its two baselines, in one run, against one nats-server, each a
# process of its own (as in production), all under the same wrk load:
#
#   echo     bench/baseline/echo: read, unmarshal, validate (validator/v10), 200
#   naive    bench/baseline/naive: the same plus one synchronous JetStream publish
#   receiver cmd/receiver: zohook's receiver (verify, validate, one event per
#            record, publish; no seen mark: reconciliation reads the history)
#
# Every request is the 1 KiB notification of bench/notify-1k.json (56
# affected_fields) naming a record never sent before (bench/notify-1k.lua;
# the run id is random per run). Rounds interleave the three targets so that
# drift of the machine hits them alike. For each run it prints requests/s,
# the target process's CPU time per request (utime+stime from /proc, all
# threads) and nats-server's, then the ratios receiver/naive and
# receiver/echo.
#
#   bench/compare.sh                         # 3 rounds of 10 s, wrk -t2 -c64
#   ROUNDS=5 DURATION=20 bench/compare.sh
#   BEFORE_BIN=/tmp/receiver-last-commit bench/compare.sh   # adds target "before"
#
# BEFORE_BIN (optional) is another receiver binary, e.g. built from the last
# commit, measured as target "before" in the same rounds: a change's effect
# as a ratio within one run.
#
# wrk, not bench/loadgen: wrk is C and costs the shared 2 cores far less
# than Go's HTTP client (bench/README.md: loadgen takes some 20-25% of the
# machine), so more of the machine is left to the processes measured.
# Needs wrk (Debian package; installed with apt-get when missing and root)
# and nats-server (go install, as separate.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Ports, flags and load: change here if the receiver's flags or listeners move.
NATS_PORT=${NATS_PORT:-4334}
RECV_ADDR=${RECV_ADDR:-127.0.0.1:8090}
ECHO_ADDR=${ECHO_ADDR:-127.0.0.1:8091}
NAIVE_ADDR=${NAIVE_ADDR:-127.0.0.1:8092}
RECV_ADMIN_ADDR=${RECV_ADMIN_ADDR:-127.0.0.1:9192}   # receiver -admin-addr (/metrics)
BEFORE_ADDR=${BEFORE_ADDR:-127.0.0.1:8093}
BEFORE_ADMIN_ADDR=${BEFORE_ADMIN_ADDR:-127.0.0.1:9193}
BEFORE_BIN=${BEFORE_BIN:-}
RECV_READY=${RECV_READY:-/readyz}            # receiver readiness path on RECV_ADDR
RECV_FLAGS=${RECV_FLAGS:-"-log-level warn"}  # extra receiver flags
TOKEN=${TOKEN:-compare-token}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
TARGETS=${TARGETS:-"echo naive receiver${BEFORE_BIN:+ before}"}

if ! command -v wrk >/dev/null; then
  echo "installing wrk..." >&2
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

echo "building..." >&2
go build -o "$tmp/bin/" ./cmd/receiver ./bench/baseline/echo ./bench/baseline/naive
nats=$(command -v nats-server || echo "$(go env GOPATH)/bin/nats-server")
if [ ! -x "$nats" ]; then
  echo "installing nats-server v2.15.3..." >&2
  go install github.com/nats-io/nats-server/v2@v2.15.3
fi
nurl="nats://127.0.0.1:$NATS_PORT"
"$nats" -js -sd "$tmp/nats" -a 127.0.0.1 -p "$NATS_PORT" >"$tmp/nats.log" 2>&1 &
nats_pid=$!; pids+=("$nats_pid")
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$NATS_PORT") 2>/dev/null && break; sleep 0.1; done

declare -A pid url
# shellcheck disable=SC2086 # RECV_FLAGS is a list of flags
"$tmp/bin/receiver" -nats-url "$nurl" -addr "$RECV_ADDR" -admin-addr "$RECV_ADMIN_ADDR" -crm-notify-tokens "$TOKEN" \
  $RECV_FLAGS >"$tmp/receiver.log" 2>&1 &
pid[receiver]=$!; pids+=("$!"); url[receiver]="http://$RECV_ADDR/zoho/crm/notify"
ready=("http://$RECV_ADDR$RECV_READY")
if [ -n "$BEFORE_BIN" ]; then
  # shellcheck disable=SC2086
  "$BEFORE_BIN" -nats-url "$nurl" -addr "$BEFORE_ADDR" -admin-addr "$BEFORE_ADMIN_ADDR" -crm-notify-tokens "$TOKEN" \
    $RECV_FLAGS >"$tmp/before.log" 2>&1 &
  pid[before]=$!; pids+=("$!"); url[before]="http://$BEFORE_ADDR/zoho/crm/notify"
  ready+=("http://$BEFORE_ADDR$RECV_READY")
fi
"$tmp/bin/echo" -addr "$ECHO_ADDR" >"$tmp/echo.log" 2>&1 &
pid[echo]=$!; pids+=("$!"); url[echo]="http://$ECHO_ADDR/zoho/crm/notify"
"$tmp/bin/naive" -addr "$NAIVE_ADDR" -nats-url "$nurl" >"$tmp/naive.log" 2>&1 &
pid[naive]=$!; pids+=("$!"); url[naive]="http://$NAIVE_ADDR/zoho/crm/notify"
for u in "${ready[@]}" "http://$ECHO_ADDR/healthz" "http://$NAIVE_ADDR/healthz"; do
  for _ in $(seq 300); do curl -fs "$u" >/dev/null && break; sleep 0.1; done
  curl -fs "$u" >/dev/null || { echo "not ready: $u" >&2; tail -5 "$tmp"/*.log >&2; exit 1; }
done

hz=$(getconf CLK_TCK)
# cpu PID: the process's user+system CPU time in clock ticks, all threads.
cpu() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# load TARGET SECONDS: one wrk run with fresh record ids; prints
# "requests req/s non2xx target_ticks nats_ticks".
load() {
  local t=$1 secs=$2 c0 n0 out
  c0=$(cpu "${pid[$t]}"); n0=$(cpu "$nats_pid")
  out=$(ZOHOOK_TOKEN=$TOKEN ZOHOOK_RUN=$(( (RANDOM << 15 | RANDOM) % 100000000 )) \
    wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" -s bench/notify-1k.lua "${url[$t]}")
  echo "$out" >>"$tmp/wrk.log"
  awk -v c="$(( $(cpu "${pid[$t]}") - c0 ))" -v n="$(( $(cpu "$nats_pid") - n0 ))" '
    /^requests [0-9]+, non-2xx/ { req = $2 + 0; bad = $4 + 0 }
    /^Requests\/sec:/ { rps = $2 }
    END { printf "%d %s %d %d %d\n", req, rps, bad, c, n }' <<<"$out"
}

for t in $TARGETS; do load "$t" "$WARMUP" >/dev/null; done
echo "wrk -t$THREADS -c$CONNS -d${DURATION}s, body $(wc -c <bench/notify-1k.json) B, fresh ids; CPU = process utime+stime per request"
printf '%-6s %-9s %10s %10s %8s %14s %14s\n' round target requests "req/s" non-2xx "CPU µs/req" "nats µs/req"
declare -A rps cpr
for r in $(seq "$ROUNDS"); do
  for t in $TARGETS; do
    read -r req rate bad ct nt < <(load "$t" "$DURATION")
    us=$(awk -v c="$ct" -v q="$req" -v hz="$hz" 'BEGIN { printf "%.1f", q ? c / hz * 1e6 / q : 0 }')
    nus=$(awk -v c="$nt" -v q="$req" -v hz="$hz" 'BEGIN { printf "%.1f", q ? c / hz * 1e6 / q : 0 }')
    printf '%-6s %-9s %10d %10.0f %8d %14s %14s\n' "$r" "$t" "$req" "$rate" "$bad" "$us" "$nus"
    rps[$r.$t]=$rate; cpr[$r.$t]=$us
  done
  if [[ " $TARGETS " == *" receiver "* && " $TARGETS " == *" naive "* && " $TARGETS " == *" echo "* ]]; then
    awk -v r="$r" -v rr="${rps[$r.receiver]}" -v rn="${rps[$r.naive]}" -v re="${rps[$r.echo]}" \
      -v cr="${cpr[$r.receiver]}" -v cn="${cpr[$r.naive]}" 'BEGIN {
      printf "round %s: receiver/naive %.2f, receiver/echo %.2f (req/s); CPU per request receiver/naive %.2f\n",
        r, rr / rn, rr / re, cr / cn }'
  fi
  if [ -n "$BEFORE_BIN" ]; then
    awk -v r="$r" -v rr="${rps[$r.receiver]}" -v rb="${rps[$r.before]}" -v cr="${cpr[$r.receiver]}" -v cb="${cpr[$r.before]}" 'BEGIN {
      printf "round %s: receiver/before %.2f (req/s); CPU per request receiver/before %.2f\n", r, rr / rb, cr / cb }'
  fi
done
for t in $TARGETS nats-server; do
  p=${pid[$t]:-$nats_pid}
  printf '%-12s peak RSS %s\n' "$t" "$(awk '/VmHWM/ {printf "%.0f MB", $2/1024}' "/proc/$p/status")"
done
# wrk ends with requests in flight: their "context canceled" is not an error of the receiver.
if grep -i '"level":"ERROR"\|level=ERROR' "$tmp/receiver.log" | grep -qv 'context canceled'; then
  echo "receiver logged errors:" >&2; grep -i '"level":"ERROR"\|level=ERROR' "$tmp/receiver.log" | grep -v 'context canceled' | head -5 >&2
fi
