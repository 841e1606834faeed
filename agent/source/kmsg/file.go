package kmsg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hwheal/hwheal/pkg/kernlog"
)

const (
	fileChunk = 256 << 10
	// maxCarry bounds what is held back waiting for a record boundary.
	maxCarry = 1 << 20
)

// followFile reads a regular file of raw kmsg records (a fixture tree) and
// then polls it for appended records until ctx is done. A file that shrinks
// was replaced or truncated and is read again from the start.
func (r *run) followFile(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kmsg: open %s: %w", path, err)
	}
	defer f.Close()
	r.s.log.Info("kmsg: reading a file in place of the device", "path", path)
	fl := &follower{f: f, buf: make([]byte, fileChunk), run: r}
	tick := time.NewTicker(r.s.cfg.FollowPoll)
	defer tick.Stop()
	r.replaying = true
	for {
		if err := fl.poll(ctx); err != nil {
			return fmt.Errorf("kmsg: read %s: %w", path, err)
		}
		r.replaying = false
		if !r.saveDeadline().IsZero() && !time.Now().Before(r.saveDeadline()) {
			r.save()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// follower reads what was appended to the file since the last poll and
// hands complete records to the kmsg Scanner. A record is complete when
// the line after it is not one of its dictionary lines (which begin with a
// space), or when the file ends after its newline.
type follower struct {
	f          *os.File
	run        *run
	buf        []byte
	off        int64
	carry      []byte // read but not yet handed on
	discarding bool   // inside a line longer than MaxLineLen: drop to its newline
}

func (fl *follower) poll(ctx context.Context) error {
	fi, err := fl.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < fl.off {
		fl.off, fl.carry, fl.discarding = 0, fl.carry[:0], false
	}
	for ctx.Err() == nil {
		n, err := fl.f.ReadAt(fl.buf, fl.off)
		fl.off += int64(n)
		fl.feed(fl.buf[:n])
		if errors.Is(err, io.EOF) || n == 0 {
			break
		}
		if err != nil {
			return err
		}
	}
	// At the end of what is there, a record's dictionary is complete.
	if i := bytes.LastIndexByte(fl.carry, '\n'); i >= 0 {
		fl.emit(i + 1)
	}
	return nil
}

func (fl *follower) feed(data []byte) {
	if fl.discarding {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return
		}
		data, fl.discarding = data[i+1:], false
	}
	fl.carry = append(fl.carry, data...)
	if cut := recordBoundary(fl.carry); cut > 0 {
		fl.emit(cut)
	} else if len(fl.carry) > maxCarry {
		fl.emit(bytes.LastIndexByte(fl.carry, '\n') + 1)
	}
	if len(fl.carry) > kernlog.MaxLineLen+2 && bytes.IndexByte(fl.carry, '\n') < 0 {
		fl.run.s.skip(kernlog.SkipReason(kernlog.ErrTooLong), 1)
		fl.carry, fl.discarding = fl.carry[:0], true
	}
}

// recordBoundary returns the end of the last newline that is followed by
// the start of a record (not a dictionary line), 0 if there is none.
func recordBoundary(b []byte) int {
	for i := len(b) - 2; i >= 0; i-- {
		if b[i] == '\n' && b[i+1] != ' ' {
			return i + 1
		}
	}
	return 0
}

// emit scans carry[:n] and keeps the rest.
func (fl *follower) emit(n int) {
	if n <= 0 {
		return
	}
	sc := kernlog.NewScanner(bytes.NewReader(fl.carry[:n]), kernlog.FormatKmsg)
	for sc.Scan() {
		fl.run.handle(sc.Record())
	}
	for reason, k := range sc.Skipped() {
		fl.run.s.skip(reason, k)
	}
	fl.carry = append(fl.carry[:0], fl.carry[n:]...)
}
