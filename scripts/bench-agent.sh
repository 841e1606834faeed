#!/usr/bin/env bash
# make bench-agent: what the hwheal agent costs on a host against the stack
# it replaces, both running on this machine in the same run. One side is the
# agent that `make build` produces, with every source it has at its default
# intervals; the other is Debian's prometheus-node-exporter (default
# collectors), rasdaemon (foreground, recording, as Debian's unit runs it)
# and smartd (foreground, Debian's default config). A collector receives the
# agent's reports; it is measured on its own line, on neither side.
# test/bench/procstat samples /proc for CPU seconds and peak RSS of each side
# (and their children) and scrapes node_exporter's and the agent's /metrics
# every 15 s, as a Prometheus server would; the scraper is counted on no side.
#
# Root only. Environment: BENCH_DURATION (default 10m), BENCH_SCRAPE_EVERY
# (15s), BENCH_AGENT_ARGS (extra agent flags), BENCH_KEEP=1 keeps the logs.
# Nothing it starts outlives it; what it changed on the host (debugfs mount,
# rasdaemon's trace events and instance) is put back.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10m}
SCRAPE_EVERY=${BENCH_SCRAPE_EVERY:-15s}
AGENT_ARGS=${BENCH_AGENT_ARGS:-}
GO=${GO:-go}

if [[ $(id -u) -ne 0 ]]; then
  echo "bench-agent: run as root: rasdaemon, smartd and the agent read root-only kernel interfaces" >&2
  exit 1
fi

TMP=$(mktemp -d /tmp/hwheal-bench-agent.XXXXXX)
pgids=()
policy_rc_d_created=
debugfs_mounted=
ras_instance_created=
ras_enabled=

cleanup() {
  local rc=$?
  set +e
  # Each daemon runs in a process group of its own (setsid): TERM the
  # groups, give them 10 s, then KILL what is left.
  for pg in "${pgids[@]}"; do kill -TERM -- "-$pg" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=
    for pg in "${pgids[@]}"; do kill -0 -- "-$pg" 2>/dev/null && alive=1; done
    [[ -z $alive ]] && break
    sleep 0.2
  done
  for pg in "${pgids[@]}"; do
    if kill -0 -- "-$pg" 2>/dev/null; then
      echo "bench-agent: process group $pg did not stop on TERM; killing it" >&2
      kill -KILL -- "-$pg" 2>/dev/null
    fi
  done
  wait 2>/dev/null
  # What Debian's unit does on stop, then what it leaves behind here.
  [[ -n $ras_enabled ]] && rasdaemon --disable >/dev/null 2>&1
  [[ -n $ras_instance_created ]] && rmdir /sys/kernel/tracing/instances/rasdaemon 2>/dev/null
  [[ -n $debugfs_mounted ]] && umount /sys/kernel/debug
  [[ -n $policy_rc_d_created ]] && rm -f /usr/sbin/policy-rc.d
  if [[ $rc -ne 0 || -n ${BENCH_KEEP:-} ]]; then
    echo "bench-agent: logs kept in $TMP" >&2
    if [[ $rc -ne 0 ]]; then
      for f in "$TMP"/*.log; do [[ -s $f ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
    fi
  else
    rm -rf "$TMP"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- packages: only when missing, and without starting their services
PACKAGES=(prometheus-node-exporter rasdaemon smartmontools)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bench-agent: installing ${missing[*]}"
  # On a host with systemd the packages would start their daemons (node
  # exporter on :9100, a system-wide rasdaemon); policy-rc.d stops that.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_rc_d_created=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ -n $policy_rc_d_created ]]; then rm -f /usr/sbin/policy-rc.d; policy_rc_d_created=; fi
fi

# --- build what is measured, and the measuring tool (before the window)
make --no-print-directory build
$GO build -o "$TMP/procstat" ./test/bench/procstat

# free_port sets PORT to a port nothing listens on and no earlier call
# chose. It runs in this shell, not in $(...): subshells repeat $RANDOM's
# sequence, and three ports picked that way were once the same one.
taken=" "
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    if [[ $taken != *" $p "* && -z $(ss -Hltn "sport = :$p") ]]; then
      taken+="$p "
      PORT=$p
      return 0
    fi
  done
  echo "bench-agent: no free port" >&2
  return 1
}
free_port; COL_ADDR=127.0.0.1:$PORT
free_port; AGENT_METRICS=127.0.0.1:$PORT
free_port; NE_ADDR=127.0.0.1:$PORT

# start NAME CMD...: runs CMD in a new session (its own process group) with
# its output in $TMP/NAME.log, and sets NAME_pid. A background job of this
# non-interactive shell is no group leader, so setsid execs CMD in place
# and $! is CMD's pid.
start() {
  local name=$1
  shift
  setsid "$@" >"$TMP/$name.log" 2>&1 &
  local pid=$!
  pgids+=("$pid")
  printf -v "${name}_pid" '%s' "$pid"
}

# Two rasdaemons would share one trace instance.
if pgrep -x rasdaemon >/dev/null; then
  echo "bench-agent: a rasdaemon is already running (pid $(pgrep -x rasdaemon | tr '\n' ' ')); stop it first" >&2
  exit 1
fi
# rasdaemon reads the trace events through debugfs, which systemd mounts on
# a Debian host.
if ! mountpoint -q /sys/kernel/debug; then
  mount -t debugfs nodev /sys/kernel/debug
  debugfs_mounted=1
fi
[[ -d /sys/kernel/tracing/instances/rasdaemon ]] || ras_instance_created=1

# --- the stack, as Debian's units run it
ne_args=$(. /etc/default/prometheus-node-exporter 2>/dev/null; echo "${ARGS:-}")
ne_user=()
id prometheus >/dev/null 2>&1 && ne_user=(setpriv --reuid=prometheus --regid=prometheus --init-groups)
# shellcheck disable=SC2086 # ARGS is a word list, as in the unit
start node_exporter "${ne_user[@]}" /usr/bin/prometheus-node-exporter $ne_args --web.listen-address="$NE_ADDR"
# EnvironmentFile=/etc/default/rasdaemon, then the daemon in place of the
# shell (exec), so the pid is rasdaemon's.
start rasdaemon bash -c 'set -a; . /etc/default/rasdaemon 2>/dev/null; set +a; exec /usr/sbin/rasdaemon -f -r'
smartd_opts=$(. /etc/default/smartmontools 2>/dev/null; echo "${smartd_opts:-}")
# -q never: keep running where no disk speaks SMART (VMs), as a host's
# smartd would keep running over its disks.
# shellcheck disable=SC2086
start smartd /usr/sbin/smartd -n -q never $smartd_opts

# --- hwheal
start collector bin/hwheal-collector --insecure --listen "$COL_ADDR" --state-dir "$TMP/collector-state"
# shellcheck disable=SC2086 # BENCH_AGENT_ARGS is a word list
start agent bin/hwheal-agent --insecure --collector "$COL_ADDR" --state-dir "$TMP/agent-state" \
  --metrics-listen "$AGENT_METRICS" $AGENT_ARGS

sleep 1
# ExecStartPost of Debian's rasdaemon.service.
rasdaemon --enable >>"$TMP/rasdaemon.log" 2>&1 && ras_enabled=1
for name in node_exporter rasdaemon smartd collector agent; do
  pid_var=${name}_pid
  if ! kill -0 "${!pid_var}" 2>/dev/null; then
    echo "bench-agent: $name exited at start" >&2
    exit 1
  fi
done

cat <<EOF
== bench-agent: $(bin/hwheal-agent --version 2>/dev/null) on $(uname -r), $(nproc) cores
agent side: bin/hwheal-agent (pid $agent_pid), every source it has, default intervals ${AGENT_ARGS:+(extra flags: $AGENT_ARGS)}
stack side: $(/usr/bin/prometheus-node-exporter --version 2>&1 | head -1) (pid $node_exporter_pid, default collectors),
            rasdaemon $(dpkg-query -W -f='${Version}' rasdaemon) -f -r (pid $rasdaemon_pid),
            smartd $(dpkg-query -W -f='${Version}' smartmontools) -n -q never (pid $smartd_pid)
collector: pid $collector_pid, measured apart (neither side)
scraping node_exporter's and the agent's /metrics every $SCRAPE_EVERY during the window (the scraper counts on neither side)
EOF

"$TMP/procstat" --duration "$DURATION" --scrape-every "$SCRAPE_EVERY" \
  --side "agent=$agent_pid" \
  --side "stack=$node_exporter_pid,$rasdaemon_pid,$smartd_pid" \
  --side "collector=$collector_pid" \
  --scrape "http://$NE_ADDR/metrics" --scrape "http://$AGENT_METRICS/metrics" \
  --compare agent/stack --max-cpu-ratio 0.5 --max-rss-mb 30
