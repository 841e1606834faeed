//go:build linux

package faultinject

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRangeOverlaps(t *testing.T) {
	r := Sectors(8, 8) // bytes [4096, 8192)
	for _, tc := range []struct {
		name   string
		off, n int64
		want   bool
	}{
		{"before", 0, 4096, false},
		{"after", 8192, 4096, false},
		{"first byte", 4096, 1, true},
		{"last byte", 8191, 1, true},
		{"spans it", 0, 1 << 20, true},
		{"ends at its start", 4095, 1, false},
		{"empty request", 4096, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.overlaps(tc.off, tc.n); got != tc.want {
				t.Errorf("%+v overlaps [%d,+%d) = %v, want %v", r, tc.off, tc.n, got, tc.want)
			}
		})
	}
	if (Range{Off: 0, Len: 0}).overlaps(0, 100) {
		t.Error("an empty range overlaps")
	}
}

func skipUnlessAble(t *testing.T) {
	t.Helper()
	if err := Requirements(); err != nil {
		t.Skipf("faulty disk unavailable: %v", err)
	}
}

// TestFileFailsBadRanges reads and writes the FUSE file itself, for both
// backings: bad ranges fail with the configured errno, the rest keeps its
// data, and the server counts what it answered.
func TestFileFailsBadRanges(t *testing.T) {
	skipUnlessAble(t)
	for _, tc := range []struct {
		name    string
		backing Backing
		errno   syscall.Errno
	}{
		{"memory", Memory, 0},
		{"sparse file", SparseFile, 0},
		{"ENODATA", Memory, syscall.ENODATA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := MountFile(FileConfig{Size: 1 << 20, Bad: []Range{Sectors(16, 8)}, Backing: tc.backing, Errno: tc.errno})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := f.Unmount(); err != nil {
					t.Error(err)
				}
				if _, err := os.Stat(f.Mountpoint); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("mountpoint left behind: %v", err)
				}
			})
			if st, err := os.Stat(f.Path); err != nil || st.Size() != 1<<20 {
				t.Fatalf("stat %s = %v, %v; want 1 MiB", f.Path, st, err)
			}
			fh, err := os.OpenFile(f.Path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			want := bytes.Repeat([]byte("hwheal!\n"), 512)
			if _, err := fh.WriteAt(want, 0); err != nil {
				t.Fatalf("write a good range: %v", err)
			}
			got := make([]byte, len(want))
			if _, err := fh.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read back = %v, equal %v", err, bytes.Equal(got, want))
			}
			wantErr := cmpErrno(tc.errno)
			if _, err := fh.ReadAt(got, 16*512-4096+512); !errors.Is(err, wantErr) {
				t.Errorf("read overlapping the bad range = %v, want %v", err, wantErr)
			}
			if _, err := fh.WriteAt(want, 20*512); !errors.Is(err, wantErr) {
				t.Errorf("write into the bad range = %v, want %v", err, wantErr)
			}
			if _, err := fh.ReadAt(got, 24*512); err != nil {
				t.Errorf("read just after the bad range = %v", err)
			}
			st := f.Stats()
			if st.FailedReads != 1 || st.FailedWrites != 1 || st.Reads < 3 || st.Writes < 2 {
				t.Errorf("stats = %+v, want 1 failed read, 1 failed write", st)
			}

			// A range cleared while mounted reads again.
			f.SetBad()
			if _, err := fh.ReadAt(got, 16*512); err != nil {
				t.Errorf("read after SetBad() = %v", err)
			}
		})
	}
}

func cmpErrno(e syscall.Errno) syscall.Errno {
	if e == 0 {
		return syscall.EIO
	}
	return e
}

// TestLoopIOErrorReachesKernel is the real kernel path: an O_DIRECT read of
// a bad offset of the loop device fails with EIO and the block layer logs
// "I/O error, dev loopN, sector S op 0x0:(READ)" with S = offset/512; a
// write logs op 0x1:(WRITE); good offsets keep their data; one O_DIRECT
// request is one FUSE request.
func TestLoopIOErrorReachesKernel(t *testing.T) {
	skipUnlessAble(t)
	const badSector, mediumSector = 2048, 4096
	medium := Sectors(mediumSector, 8)
	medium.Errno = syscall.ENODATA
	d := NewDisk(t, FileConfig{Size: 4 << 20, Bad: []Range{Sectors(badSector, 8), medium}})
	if d.Loop.Major == 0 || !strings.HasPrefix(d.Loop.Name, "loop") {
		t.Fatalf("loop device = %v", d.Loop)
	}
	if b, err := os.ReadFile(filepath.Join("/sys/dev/block", fmt.Sprintf("%d:%d", d.Loop.Major, d.Loop.Minor), "loop", "backing_file")); err != nil ||
		strings.TrimSpace(string(b)) != d.Path {
		t.Fatalf("backing_file of %v = %q, %v; want %s", d.Loop, b, err, d.Path)
	}
	k, err := OpenKmsg()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()

	// Good offsets: what is written is read back.
	want := bytes.Repeat([]byte{0xa5}, 4096)
	if err := d.WriteAt(want, 8192); err != nil {
		t.Fatal(err)
	}
	before := d.Stats()
	got, err := d.ReadAt(8192, 4096)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back from a good offset: err %v, equal %v", err, bytes.Equal(got, want))
	}
	if n := d.Stats().Reads - before.Reads; n != 1 {
		t.Errorf("one O_DIRECT read of 4 KiB made %d FUSE reads, want 1", n)
	}

	for _, tc := range []struct {
		name, line string
		errno      syscall.Errno
		do         func() error
	}{
		{"READ", "I/O error, dev %s, sector 2048 op 0x0:(READ)", unix.EIO,
			func() error { _, err := d.ReadAt(badSector*512, 4096); return err }},
		{"WRITE", "I/O error, dev %s, sector 2048 op 0x1:(WRITE)", unix.EIO,
			func() error { return d.WriteAt(want, badSector*512) }},
		// The range's errno reaches the block layer as a status.
		{"ENODATA", "critical medium error, dev %s, sector 4096 op 0x0:(READ)", unix.ENODATA,
			func() error { _, err := d.ReadAt(mediumSector*512, 4096); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := fmt.Sprintf(tc.line, d.Loop.Name)
			rec, err := failAndWaitKmsg(k, tc.do, tc.errno, line)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("kernel: %s", rec)
		})
	}
}

// failAndWaitKmsg runs a failing request and waits for the kernel's line.
// The kernel rate-limits these lines (10 per 5 s for all devices), and
// another test binary may be failing requests at the same time: when the
// line does not come, the request is tried again after the limit's window.
func failAndWaitKmsg(k *Kmsg, do func() error, errno syscall.Errno, line string) (string, error) {
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(5500 * time.Millisecond)
		}
		if err := do(); !errors.Is(err, errno) {
			return "", fmt.Errorf("request = %v, want %v", err, errno)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		rec, err := k.Wait(ctx, line)
		cancel()
		if err == nil {
			return rec.Message, nil
		}
	}
	return "", fmt.Errorf("kernel never logged %q", line)
}

// TestTeardownHeldDevice is the failing test's case: a descriptor left
// open keeps the loop device bound, Detach says so instead of hanging, and
// aborting the FUSE connection lets everything go without a hang.
func TestTeardownHeldDevice(t *testing.T) {
	skipUnlessAble(t)
	f, err := MountFile(FileConfig{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	l, err := AttachLoop(f.Path)
	if err != nil {
		f.Unmount()
		t.Fatal(err)
	}
	held, err := OpenDirect(l.Path)
	if err != nil {
		t.Fatal(err)
	}
	err = l.DetachWait(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "still bound") {
		t.Errorf("Detach with the device held open = %v, want a timeout", err)
	}
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	// The device is unbound when its last opener goes; reads of the
	// aborted file fail rather than hang.
	if _, err := held.ReadAt(0, 4096); err == nil {
		t.Error("read through an aborted FUSE connection succeeded")
	}
	held.Close()
	if err := l.Detach(); err != nil {
		t.Errorf("detach after the last close: %v", err)
	}
	done := make(chan struct{})
	go func() { f.server.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("FUSE server still running after abort")
	}
	os.Remove(f.Mountpoint)
	f.store.Close()
}
