#!/usr/bin/env bash
# Load run with every part as a process of its own: nats-server, the fake
# Zoho, the receiver and the worker. bench/loadgen measures raw JetStream
# publishes first, then the receiver over HTTP; the script waits until the
# worker has handled every event and prints the peak RSS of each process.
#
#   bench/separate.sh                    # 20,000 notifications, 64 connections
#   N=50000 C=128 MODULE=Leads bench/separate.sh
#
# MODULE=Leads (default): the example rules.yaml has no rule for Lead
# updates, so the worker handles each event without calling Zoho (ingest and
# consumption). WORKER=0 leaves the worker out (ingest alone). Needs nats-server on PATH or in $(go env GOPATH)/bin; it is
# installed (go install, about 30 s) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
C=${C:-64}
MODULE=${MODULE:-Leads}
NATS_PORT=${NATS_PORT:-4333}
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8088}
METRICS_ADDR=${METRICS_ADDR:-127.0.0.1:9099}
TOKEN=loadgen-token

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "building..." >&2
go build -o "$tmp/bin/" ./cmd/receiver ./cmd/worker ./bench/loadgen ./bench/fakezoho
nats=$(command -v nats-server || echo "$(go env GOPATH)/bin/nats-server")
if [ ! -x "$nats" ]; then
  echo "installing nats-server v2.15.3..." >&2
  go install github.com/nats-io/nats-server/v2@v2.15.3
fi

"$nats" -js -sd "$tmp/nats" -a 127.0.0.1 -p "$NATS_PORT" >"$tmp/nats.log" 2>&1 &
nats_pid=$!; pids+=("$nats_pid")
"$tmp/bin/fakezoho" >"$tmp/fake.env" 2>"$tmp/fake.log" &
pids+=("$!")
for _ in $(seq 100); do [ "$(wc -l <"$tmp/fake.env")" -ge 5 ] && break; sleep 0.1; done
set -a; . "$tmp/fake.env"; set +a

nurl="nats://127.0.0.1:$NATS_PORT"
"$tmp/bin/receiver" -nats-url "$nurl" -addr "$HTTP_ADDR" -crm-notify-tokens "$TOKEN" -log-level warn >"$tmp/receiver.log" 2>&1 &
recv_pid=$!; pids+=("$recv_pid")
ready=("http://$HTTP_ADDR/readyz")
worker_pid=
if [ "${WORKER:-1}" != 0 ]; then
  "$tmp/bin/worker" -nats-url "$nurl" -rules rules.yaml -metrics-addr "$METRICS_ADDR" -log-level warn >"$tmp/worker.log" 2>&1 &
  worker_pid=$!; pids+=("$worker_pid")
  ready+=("http://$METRICS_ADDR/readyz")
fi
touch "$tmp/worker.log"
for url in "${ready[@]}"; do
  for _ in $(seq 300); do curl -fs "$url" >/dev/null && break; sleep 0.1; done
done

handled() {
  [ -n "$worker_pid" ] || { printf 0; return; }
  curl -fs "http://$METRICS_ADDR/metrics" | awk '/^zohook_worker_events_total/ {s += $NF} END {printf "%d", s}'
}
before=$(handled)
"$tmp/bin/loadgen" -url "http://$HTTP_ADDR/zoho/crm/notify" -token "$TOKEN" -c "$C" -n "$N" -module "$MODULE" \
  -nats-url "$nurl"
procs=("receiver:$recv_pid" "nats-server:$nats_pid")
if [ -n "$worker_pid" ]; then
  start=$(date +%s.%N)
  for _ in $(seq 1200); do [ "$(($(handled) - before))" -ge "$N" ] && break; sleep 0.1; done
  end=$(date +%s.%N)
  echo "worker: $(($(handled) - before)) of $N events handled; drained $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}') s after the last answer"
  procs+=("worker:$worker_pid")
fi
for p in "${procs[@]}"; do
  printf '%-12s peak RSS %s\n' "${p%%:*}" "$(awk '/VmHWM/ {printf "%.0f MB", $2/1024}' "/proc/${p#*:}/status")"
done
if grep -qi '"level":"ERROR"\|level=ERROR' "$tmp/receiver.log" "$tmp/worker.log"; then
  echo "errors logged:" >&2; grep -hi 'error' "$tmp/receiver.log" "$tmp/worker.log" | head -5 >&2
fi
