//go:build !linux

package kmsg

import "context"

// readDevice: /dev/kmsg is Linux's.
func (r *run) readDevice(ctx context.Context, path string) error {
	r.s.log.Info("kmsg: not available", "path", path)
	return nil
}
