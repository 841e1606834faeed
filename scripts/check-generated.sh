#!/usr/bin/env bash
# Fails when generated code (protobuf Go, eBPF objects and their bpf2go
# loaders) differs from what the generators produce now. It compares the
# generated files before and after `make generate` rather than asking git,
# so that a developer's uncommitted work elsewhere does not fail it, and a
# clean clone (CI) fails when a generated file was not committed.
set -euo pipefail
cd "$(dirname "$0")/.."
generated() {
  find proto agent \( -name '*.pb.go' -o -name '*_bpfel.go' -o -name '*_bpfel.o' -o -name '*_bpfel_test.go' -o -name '*_bpfel_test.o' \) -type f -print0 |
    sort -z | xargs -0 -r sha256sum
}
before=$(generated)
make --no-print-directory generate >/dev/null
after=$(generated)
if [[ "$before" != "$after" ]]; then
  echo "generated code is stale: run make generate and commit" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
