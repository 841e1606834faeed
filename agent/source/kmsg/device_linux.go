package kmsg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// readDevice reads the character device. It is opened non-blocking, so
// that Go's poller (epoll; /dev/kmsg implements poll) waits for records
// instead of a thread stuck in read(2): a read deadline then wakes a
// pending Read on cancellation and when the cursor is due, and no
// goroutine is left blocked when Run returns.
func (r *run) readDevice(ctx context.Context, path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		r.s.log.Info("kmsg: not available", "path", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("kmsg: open %s: %w", path, err)
	}
	defer f.Close()
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		// Not in the poller: a Read could not be interrupted.
		return fmt.Errorf("kmsg: %s cannot be polled: %w", path, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("kmsg: %s: %w", path, err)
	}
	buf := make([]byte, readBufSize)
	r.s.log.Info("kmsg: reading", "path", path)

	// The backlog: read without waiting until EAGAIN, so that what was in
	// the ring at start can be told from what came after.
	r.replaying = true
	for ctx.Err() == nil {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, rerr = syscall.Read(int(fd), buf)
				if rerr != syscall.EINTR {
					return true
				}
			}
		})
		if err != nil {
			return fmt.Errorf("kmsg: read %s: %w", path, err)
		}
		if rerr == syscall.EAGAIN {
			break
		}
		if err := r.afterRead(buf, n, rerr, path); err != nil {
			return err
		}
	}
	r.replaying = false

	var deadline time.Time
	for {
		// Set the deadline before looking at ctx: AfterFunc sets its own
		// after ctx is done, so one of the two is seen. Only when it
		// changes: resetting the poller's timer for every record was a
		// fifth of the cost of a 10,000 records/s flood.
		if d := r.saveDeadline(); !d.Equal(deadline) {
			deadline = d
			_ = f.SetReadDeadline(d)
		}
		if ctx.Err() != nil {
			return nil
		}
		n, err := f.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if ctx.Err() != nil {
				return nil
			}
			r.save()
			continue
		}
		if err := r.afterRead(buf, n, err, path); err != nil {
			return err
		}
	}
}

// afterRead handles the result of one read(2): a record, or EPIPE when the
// ring overwrote the record we were at (the reader moves on to the oldest
// record still there).
func (r *run) afterRead(buf []byte, n int, err error, path string) error {
	switch {
	case err == nil && n > 0:
		r.parse(buf[:n])
		return nil
	case errors.Is(err, syscall.EPIPE):
		r.noteOverrun()
		return nil
	case err == nil:
		return fmt.Errorf("kmsg: read %s: unexpected end of file", path)
	default:
		return fmt.Errorf("kmsg: read %s: %w", path, err)
	}
}
