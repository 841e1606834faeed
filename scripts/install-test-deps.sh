#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, and nothing when they
# are all there already (so a developer's make test does not touch apt).
set -euo pipefail
PACKAGES=(
  clang llvm libbpf-dev  # make check-generated rebuilds the eBPF objects (bpf2go strips with llvm-strip)
  fuse3              # the EIO-injecting FUSE file under a loop device (e2e)
  iproute2           # veth pairs in network namespaces (netlink e2e)
  smartmontools      # the SMART source reads smartctl --json where it is installed (tests run it)
  dbus-daemon        # a private system bus with a stand-in logind for the logind reboot method
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-test-deps: missing ${missing[*]}; run as root to install" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# The eBPF sources attach classic tracepoints through tracefs, which a
# minimal host (CI) does not mount at boot. Mount it once for the whole
# run: a test package that mounted it for itself and unmounted it when done
# would pull it from under another package testing in parallel.
if [[ $(id -u) -eq 0 ]] && [[ ! -d /sys/kernel/tracing/events ]] && [[ ! -d /sys/kernel/debug/tracing/events ]]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null ||
    echo "install-test-deps: cannot mount tracefs; the eBPF tests that need it will skip or fail" >&2
fi
