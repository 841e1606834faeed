#!/usr/bin/env bash
# make run: a collector on its embedded SQLite store and an agent watching
# this host, both in the foreground until Ctrl-C. Remediation is not part of
# this build, so nothing here can touch the host; state lives in .state/.
set -euo pipefail
cd "$(dirname "$0")/.."
ADDR=${HWHEAL_ADDR:-127.0.0.1:7400}
STATE=${HWHEAL_STATE:-.state}
mkdir -p "$STATE"
bin/hwheal-collector --insecure --listen "$ADDR" --state-dir "$STATE/collector" --metrics-listen 127.0.0.1:9740 &
collector=$!
agent=
cleanup() { kill $collector ${agent} 2>/dev/null; wait; }
trap cleanup EXIT
# Ctrl-C is how this is meant to end: a clean exit, not an error.
trap 'exit 0' INT TERM
for _ in $(seq 50); do
  bin/hwhealctl --insecure --collector "$ADDR" --timeout 1s nodes >/dev/null 2>&1 && break
  sleep 0.2
done
bin/hwheal-agent --insecure --collector "$ADDR" --state-dir "$STATE/agent" --metrics-listen 127.0.0.1:9741 &
agent=$!
cat <<MSG

hwheal is running: collector on $ADDR (metrics http://127.0.0.1:9740/metrics),
agent for node $(hostname) (metrics http://127.0.0.1:9741/metrics). Try:

  bin/hwhealctl --insecure --collector $ADDR nodes
  bin/hwhealctl --insecure --collector $ADDR faults
  bin/hwhealctl --insecure --collector $ADDR events --follow

Ctrl-C stops both.
MSG
wait
