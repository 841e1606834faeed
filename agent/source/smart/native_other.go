//go:build !linux

package smart

import "fmt"

func openSG(path string) (satDevice, error) {
	return nil, fmt.Errorf("%w: SG_IO is Linux only", ErrNotSupported)
}

func openNVMe(path string) (nvmeDevice, error) {
	return nil, fmt.Errorf("%w: NVMe pass-through is Linux only here", ErrNotSupported)
}
