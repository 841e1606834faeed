package faultinject

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hwheal/hwheal/pkg/kernlog"
)

// Kmsg reads the kernel log from the moment it was opened, without
// blocking.
type Kmsg struct {
	f   *os.File
	buf []byte
}

// OpenKmsg opens /dev/kmsg positioned after the last record.
func OpenKmsg() (*Kmsg, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("faultinject: open /dev/kmsg: %w", err)
	}
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("faultinject: seek /dev/kmsg to the end: %w", err)
	}
	return &Kmsg{f: os.NewFile(uintptr(fd), "/dev/kmsg"), buf: make([]byte, 16<<10)}, nil
}

// Close closes the reader.
func (k *Kmsg) Close() error { return k.f.Close() }

// Read returns the records logged since the last Read (or Open), oldest
// first. Records the kernel overwrote before they were read are skipped.
func (k *Kmsg) Read() ([]kernlog.Record, error) {
	var out []kernlog.Record
	for {
		// One read returns one record.
		n, err := unix.Read(int(k.f.Fd()), k.buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return out, nil
		case errors.Is(err, unix.EPIPE):
			continue
		case err != nil:
			return out, fmt.Errorf("faultinject: read /dev/kmsg: %w", err)
		}
		r, err := kernlog.ParseKmsg(k.buf[:n])
		if err != nil {
			continue
		}
		out = append(out, r)
	}
}

// Wait reads until a record whose message contains substr is logged, and
// returns it. It polls, so it suits tests, not agents.
func (k *Kmsg) Wait(ctx context.Context, substr string) (kernlog.Record, error) {
	for {
		recs, err := k.Read()
		if err != nil {
			return kernlog.Record{}, err
		}
		for _, r := range recs {
			if strings.Contains(r.Message, substr) {
				return r, nil
			}
		}
		select {
		case <-ctx.Done():
			return kernlog.Record{}, fmt.Errorf("faultinject: no kernel log record with %q: %w", substr, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
