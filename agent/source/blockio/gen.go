package blockio

// The BPF object is compiled by clang from bpf/blockio.c against the
// libbpf headers installed on the build machine (libbpf-dev); the generated
// Go and object are committed so that `go build` needs neither. bpf2go maps
// the source directory to a relative one in the debug info, so the object
// is the same wherever it is generated.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type event blockio bpf/blockio.c
