package faultinject

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Requirements says why faulty disks cannot be made here, or nil: root,
// /dev/fuse and the loop driver are needed.
func Requirements() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (FUSE mount and loop devices)")
	}
	for _, dev := range []string{"/dev/fuse", "/dev/loop-control"} {
		if err := unix.Access(dev, unix.R_OK|unix.W_OK); err != nil {
			return fmt.Errorf("no %s: %w", dev, err)
		}
	}
	return nil
}

// Disk is a loop device over a faulty FUSE file.
type Disk struct {
	*File
	Loop *Loop
}

// lockPath is the host-wide lock a faulty disk is held under.
const lockPath = "/run/lock/hwheal-faultinject.lock"

// lockHost waits until no other faulty disk exists on the host, in any
// process. Tests of different packages run at the same time (go test
// ./...), and every failed request shows on the host as a whole: an agent
// traces every disk, loop device names are reused, and the kernel
// rate-limits its I/O error lines for all disks together. One faulty disk
// at a time keeps what a test counts its own.
func lockHost(t testing.TB) {
	t.Helper()
	path := lockPath
	if err := os.MkdirAll("/run/lock", 0o755); err != nil {
		path = os.TempDir() + "/hwheal-faultinject.lock"
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("faulty disk lock: %v", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		t.Fatalf("faulty disk lock %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock; runs after the disk's teardown
}

// NewDisk mounts a faulty file, binds a loop device to it and registers
// their teardown with t.Cleanup in the one order that does not hang: the
// loop device is detached first, then the FUSE server stops. When the
// device cannot be detached (a descriptor left open) the FUSE connection is
// aborted so that nothing waits on it, and the test fails. A test that
// cannot run here is skipped with the reason. It waits while another test
// on the host holds a faulty disk (see lockHost).
func NewDisk(t testing.TB, cfg FileConfig) *Disk {
	t.Helper()
	if err := Requirements(); err != nil {
		t.Skipf("faulty disk unavailable: %v", err)
	}
	lockHost(t)
	f, err := MountFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := AttachLoop(f.Path)
	if err != nil {
		if uerr := f.Unmount(); uerr != nil {
			t.Error(uerr)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Teardown(l, f); err != nil {
			t.Error(err)
		}
	})
	return &Disk{File: f, Loop: l}
}

// Teardown detaches l and then unmounts f; when l cannot be detached, f's
// connection is aborted and unmounted lazily so that nothing hangs, and the
// detach error is returned.
func Teardown(l *Loop, f *File) error {
	if err := l.Detach(); err != nil {
		return errors.Join(err, f.Abort())
	}
	return f.Unmount()
}

// ReadAt reads n bytes at off of the loop device with O_DIRECT.
func (d *Disk) ReadAt(off int64, n int) ([]byte, error) { return ReadDirect(d.Loop.Path, off, n) }

// WriteAt writes p at off of the loop device with O_DIRECT.
func (d *Disk) WriteAt(p []byte, off int64) error { return WriteDirect(d.Loop.Path, off, p) }
