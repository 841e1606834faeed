#!/usr/bin/env bash
# make run: a collector on its embedded SQLite store and an agent watching
# this host, both in the foreground until Ctrl-C. Remediation runs in
# dry-run twice over: the collector has no policy (the shipped default is
# dry-run with no rules) and the agent runs with --dry-run, so every action,
# asked for by hand or not, is planned, approved, dispatched and reported
# without anything being run on the host. State lives in .state/.
set -euo pipefail
cd "$(dirname "$0")/.."
ADDR=${HWHEAL_ADDR:-127.0.0.1:7400}
STATE=${HWHEAL_STATE:-.state}
mkdir -p "$STATE"
# Without --tokens the collector makes an admin token here on first start;
# hwhealctl reads it through HWHEAL_TOKEN_FILE.
export HWHEAL_TOKEN_FILE="$STATE/collector/admin.token"
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
bin/hwheal-agent --insecure --collector "$ADDR" --state-dir "$STATE/agent" --metrics-listen 127.0.0.1:9741 \
  --allow offline,reboot,migrate,online --dry-run &
agent=$!
cat <<MSG

hwheal is running: collector on $ADDR (metrics http://127.0.0.1:9740/metrics),
agent for node $(hostname) (metrics http://127.0.0.1:9741/metrics). The fleet
API wants a token: the collector's admin token is in $HWHEAL_TOKEN_FILE. Try:

  export HWHEAL_TOKEN_FILE=$HWHEAL_TOKEN_FILE
  bin/hwhealctl --insecure --collector $ADDR nodes
  bin/hwhealctl --insecure --collector $ADDR faults
  bin/hwhealctl --insecure --collector $ADDR events --follow

Remediation is in dry-run (a dry run needs no approval): ask for a reboot that
runs nothing, then read what the agent would have done and the audit log:

  bin/hwhealctl --insecure --collector $ADDR remediate $(hostname) --action reboot --reason "trying hwheal"
  bin/hwhealctl --insecure --collector $ADDR actions
  bin/hwhealctl --insecure --collector $ADDR action ID
  bin/hwhealctl --insecure --collector $ADDR audit verify

Ctrl-C stops both.
MSG
wait
