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

// NewDisk mounts a faulty file, binds a loop device to it and registers
// their teardown with t.Cleanup in the one order that does not hang: the
// loop device is detached first, then the FUSE server stops. When the
// device cannot be detached (a descriptor left open) the FUSE connection is
// aborted so that nothing waits on it, and the test fails. A test that
// cannot run here is skipped with the reason.
func NewDisk(t testing.TB, cfg FileConfig) *Disk {
	t.Helper()
	if err := Requirements(); err != nil {
		t.Skipf("faulty disk unavailable: %v", err)
	}
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
