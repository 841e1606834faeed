//go:build !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm)

package rasevent

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// loadRas stands in for the generated loader on big-endian machines, for
// which no object is built (bpf2go -target bpfel): the source is
// unavailable there and says so.
func loadRas() (*ebpf.CollectionSpec, error) {
	return nil, fmt.Errorf("no BPF object for this big-endian machine: %w", ebpf.ErrNotSupported)
}
