#!/usr/bin/env bash
# Runs bench/separate.sh against an older commit's receiver and worker and
# against this checkout's, alternately, PAIRS times, so that both see the
# same machine load. Everything but the two binaries (nats-server, the fake
# Zoho, loadgen, this script's rules file) is this checkout's.
#
#   RULES=bench/rules-load-update.yaml MODULE=Deals N=10000 bench/vs-rev.sh e3e8889
#
# REV must accept the rules file; LEGACY_FLAGS=1 is passed for commits that
# predate the admin listener (the default when REV is e3e8889 or older).
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/vs-rev.sh REV}
PAIRS=${PAIRS:-2}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/src" 2>/dev/null || true; rm -rf "$tmp"' EXIT INT TERM
git worktree add --detach -q "$tmp/src" "$rev"
(cd "$tmp/src" && go build -o "$tmp/bin/" ./cmd/receiver ./cmd/worker)
legacy=${LEGACY_FLAGS:-}
if [ -z "$legacy" ]; then
  # the admin listener (-admin-addr) arrived after e3e8889
  if git merge-base --is-ancestor "$rev" e3e8889 2>/dev/null; then legacy=1; else legacy=0; fi
fi
for i in $(seq "$PAIRS"); do
  echo "=== $rev, run $i"
  BIN="$tmp/bin" LEGACY_FLAGS=$legacy bench/separate.sh
  echo "=== this checkout, run $i"
  bench/separate.sh
done
