#!/usr/bin/env bash
# Load run with every part as a process of its own: nats-server, the fake
# Zoho, the receiver and WORKERS workers. bench/loadgen measures raw
# JetStream publishes first, then the receiver over HTTP; the script waits
# until the workers have handled every event and prints events/s end to end
# (first request to last event handled), the events each worker handled
# (scraped from its /metrics), and the peak RSS and CPU time per event of
# every process.
#
#   bench/separate.sh                                   # 20,000 notifications, 64 connections, 1 worker
#   N=50000 C=128 WORKERS=3 bench/separate.sh
#   RULES=bench/rules-load-update.yaml MODULE=Deals WORKERS=3 ZOHO_LATENCY=30ms N=3000 bench/separate.sh
#
# MODULE=Leads (default): the example rules.yaml has no rule for Lead
# updates, so a worker handles each event without calling Zoho (ingest and
# consumption). MODULE=Deals seeds the fake Zoho with N Closed Won Deals and
# names them in the notifications, for a rule that loads and updates the
# record (RULES=bench/rules-load-update.yaml). ZOHO_LATENCY (a Go duration)
# delays every answer of the fake Zoho. WORKERS=0 leaves the workers out
# (ingest alone). Needs nats-server on PATH or in $(go env GOPATH)/bin; it
# is installed (go install, about 30 s) when missing.
#
# BIN=DIR runs the receiver and worker binaries found in DIR instead of
# building them (bench/vs-rev.sh uses it to run an older commit's binaries);
# LEGACY_FLAGS=1 says they predate the admin listener (commit e3e8889 and
# older: the worker's -metrics-addr, no -name, no receiver admin address).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
C=${C:-64}
MODULE=${MODULE:-Leads}
RULES=${RULES:-rules.yaml}
WORKERS=${WORKERS:-${WORKER:-1}} # WORKER=0 (the former switch) still leaves them out
ZOHO_LATENCY=${ZOHO_LATENCY:-0s}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-300} # seconds to wait for the workers after the last answer

# Ports and flags: what this script assumes of the binaries.
NATS_PORT=${NATS_PORT:-4333}
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8088}             # receiver -addr (callbacks, /readyz)
RECV_ADMIN_ADDR=${RECV_ADMIN_ADDR:-127.0.0.1:9189} # receiver -admin-addr (/metrics)
WORKER_ADMIN_HOST=${WORKER_ADMIN_HOST:-127.0.0.1}  # worker i gets -admin-addr HOST:$((WORKER_ADMIN_PORT + i)) (/readyz, /metrics)
WORKER_ADMIN_PORT=${WORKER_ADMIN_PORT:-9190}
RECV_FLAGS=${RECV_FLAGS:-"-log-level warn"}
# -crm-rate 0: the default 50000/24h allows a burst of 1000 calls and then
# one call every 1.7 s, which a load run would measure instead of zohook.
WORKER_FLAGS=${WORKER_FLAGS:-"-log-level warn -crm-rate 0"}
HANDLED_METRIC=${HANDLED_METRIC:-zohook_worker_events_total} # counter by outcome; "retried" is not handled
TOKEN=loadgen-token

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

echo "building..." >&2
if [ -n "${BIN:-}" ]; then
  go build -o "$tmp/bin/" ./bench/loadgen ./bench/fakezoho
  cp "$BIN/receiver" "$BIN/worker" "$tmp/bin/"
else
  go build -o "$tmp/bin/" ./cmd/receiver ./cmd/worker ./bench/loadgen ./bench/fakezoho
fi
recv_admin=(-admin-addr "$RECV_ADMIN_ADDR")
worker_admin() { echo -name "bench-worker-$1" -admin-addr "$2"; }
if [ "${LEGACY_FLAGS:-0}" = 1 ]; then
  recv_admin=()
  worker_admin() { echo -metrics-addr "$2"; }
fi
nats=$(command -v nats-server || echo "$(go env GOPATH)/bin/nats-server")
if [ ! -x "$nats" ]; then
  echo "installing nats-server v2.15.3..." >&2
  go install github.com/nats-io/nats-server/v2@v2.15.3
fi

"$nats" -js -sd "$tmp/nats" -a 127.0.0.1 -p "$NATS_PORT" >"$tmp/nats.log" 2>&1 &
nats_pid=$!; pids+=("$nats_pid")
fake_flags=(-latency "$ZOHO_LATENCY")
loadgen_flags=()
if [ "$MODULE" = Deals ]; then
  fake_flags+=(-deals "$N" -ids "$tmp/ids")
  loadgen_flags+=(-ids "$tmp/ids")
fi
"$tmp/bin/fakezoho" "${fake_flags[@]}" >"$tmp/fake.env" 2>"$tmp/fake.log" &
fake_pid=$!; pids+=("$fake_pid")
for _ in $(seq 600); do [ "$(wc -l <"$tmp/fake.env")" -ge 5 ] && break; sleep 0.1; done
set -a; . "$tmp/fake.env"; set +a

nurl="nats://127.0.0.1:$NATS_PORT"
# shellcheck disable=SC2086 # *_FLAGS are lists of flags
"$tmp/bin/receiver" -nats-url "$nurl" -addr "$HTTP_ADDR" "${recv_admin[@]}" -crm-notify-tokens "$TOKEN" \
  $RECV_FLAGS >"$tmp/receiver.log" 2>&1 &
recv_pid=$!; pids+=("$recv_pid")
ready=("http://$HTTP_ADDR/readyz")
procs=("receiver:$recv_pid" "nats-server:$nats_pid" "fakezoho:$fake_pid")
workers=()
for i in $(seq "$WORKERS"); do
  admin="$WORKER_ADMIN_HOST:$((WORKER_ADMIN_PORT + i))"
  # shellcheck disable=SC2086
  "$tmp/bin/worker" -nats-url "$nurl" -rules "$RULES" $(worker_admin "$i" "$admin") \
    $WORKER_FLAGS >"$tmp/worker-$i.log" 2>&1 &
  pids+=("$!"); procs+=("worker-$i:$!"); workers+=("$admin")
  ready+=("http://$admin/readyz")
done
for url in "${ready[@]}"; do
  for _ in $(seq 600); do curl -fs "$url" >/dev/null && break; sleep 0.1; done
  curl -fs "$url" >/dev/null || { echo "not ready: $url" >&2; tail -5 "$tmp"/*.log >&2; exit 1; }
done

# handled ADMIN: events a worker finished (every outcome but a retry).
handled() {
  { curl -fs "http://$1/metrics" || true; } | awk -v m="$HANDLED_METRIC" '
    index($0, m "{") == 1 && $0 !~ /outcome="retried"/ { s += $NF } END { printf "%d", s }'
}
total() {
  local s=0
  for a in "${workers[@]}"; do s=$((s + $(handled "$a"))); done
  printf '%d' "$s"
}
declare -A before
for a in "${workers[@]}"; do before[$a]=$(handled "$a"); done
before_total=$(total)
# cpu PID: user+system CPU time of a process in clock ticks, all threads.
cpu() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
hz=$(getconf CLK_TCK)
declare -A cpu0
for p in "${procs[@]}"; do cpu0[$p]=$(cpu "${p#*:}"); done

"$tmp/bin/loadgen" -url "http://$HTTP_ADDR/zoho/crm/notify" -token "$TOKEN" -c "$C" -n "$N" -module "$MODULE" \
  -nats-url "$nurl" "${loadgen_flags[@]}" | tee "$tmp/loadgen.out"
if [ "${#workers[@]}" -gt 0 ]; then
  answered=$(date +%s.%N)
  for _ in $(seq $((DRAIN_TIMEOUT * 10))); do [ "$(($(total) - before_total))" -ge "$N" ] && break; sleep 0.1; done
  end=$(date +%s.%N)
  done_n=$(($(total) - before_total))
  start=$(awk '/^ingest start \(unix s\):/ {print $NF}' "$tmp/loadgen.out")
  echo "workers: $done_n of $N events handled; drained $(awk -v a="$answered" -v b="$end" 'BEGIN {printf "%.1f", b - a}') s after the last answer"
  awk -v n="$done_n" -v a="$start" -v b="$end" 'BEGIN {
    printf "end to end: %.0f events/s (%d events in %.2f s, first notification sent to last event handled)\n", n / (b - a), n, b - a }'
  for a in "${workers[@]}"; do
    n=$(($(handled "$a") - before[$a]))
    printf '  worker at %-16s %6d events (%.0f%%)\n' "$a" "$n" "$(awk -v n="$n" -v t="$done_n" 'BEGIN {print t ? 100 * n / t : 0}')"
  done
fi
# CPU per event: each process's CPU time over the run (raw baseline
# included, which costs nats-server alone) divided by the N events.
for p in "${procs[@]}"; do
  printf '%-12s peak RSS %s, CPU %s µs per event\n' "${p%%:*}" "$(awk '/VmHWM/ {printf "%.0f MB", $2/1024}' "/proc/${p#*:}/status")" \
    "$(awk -v c="$(( $(cpu "${p#*:}") - cpu0[$p] ))" -v hz="$hz" -v n="$N" 'BEGIN {printf "%.0f", c / hz * 1e6 / n}')"
done
if grep -qi '"level":"ERROR"\|level=ERROR' "$tmp"/receiver.log "$tmp"/worker-*.log 2>/dev/null; then
  echo "errors logged:" >&2; grep -hi '"level":"ERROR"\|level=ERROR' "$tmp"/receiver.log "$tmp"/worker-*.log | head -5 >&2
fi
