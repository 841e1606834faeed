package faultinject

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Loop is a loop device bound to a file.
type Loop struct {
	// Name is the kernel's name of the device: "loop3".
	Name string
	// Path is its device node: "/dev/loop3".
	Path string
	// Major and Minor are its device number; Dev is the same as a dev_t
	// (unix.Mkdev).
	Major, Minor uint32
	Dev          uint64
}

// String is "loop3 (7:3)".
func (l *Loop) String() string { return fmt.Sprintf("%s (%d:%d)", l.Name, l.Major, l.Minor) }

// DetachTimeout bounds how long Detach waits for the kernel to let go of
// the backing file.
const DetachTimeout = 10 * time.Second

// AttachLoop binds a free loop device to the file at backing, read-write,
// with 512-byte sectors, no partition scan and no direct I/O (the loop
// device reads the file through the file system, the FUSE server sees
// every request). Detach it before unmounting the file's file system.
func AttachLoop(backing string) (*Loop, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("faultinject: open loop control: %w", err)
	}
	defer ctl.Close()
	file, err := os.OpenFile(backing, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("faultinject: open backing file: %w", err)
	}
	// The loop device takes its own reference to the file.
	defer file.Close()

	// Another process may take the free device between GET_FREE and
	// binding it: ask again.
	for range 20 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("faultinject: find a free loop device: %w", err)
		}
		l, err := bind(n, file, backing)
		if errors.Is(err, unix.EBUSY) {
			continue
		}
		return l, err
	}
	return nil, fmt.Errorf("faultinject: every free loop device was taken before it could be bound: %w", unix.EBUSY)
}

func bind(n int, file *os.File, backing string) (*Loop, error) {
	path := fmt.Sprintf("/dev/loop%d", n)
	dev, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("faultinject: open %s: %w", path, err)
	}
	defer dev.Close()
	var info unix.LoopInfo64
	copy(info.File_name[:len(info.File_name)-1], backing)
	cfg := unix.LoopConfig{Fd: uint32(file.Fd()), Size: 512, Info: info}
	err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
		// Kernels before 5.8 have no LOOP_CONFIGURE.
		if err = unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_SET_FD, int(file.Fd())); err == nil {
			if err = unix.IoctlLoopSetStatus64(int(dev.Fd()), &info); err != nil {
				_ = unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("faultinject: bind %s to %s: %w", path, backing, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(dev.Fd()), &st); err != nil {
		_ = unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
		return nil, fmt.Errorf("faultinject: stat %s: %w", path, err)
	}
	return &Loop{
		Name:  filepath.Base(path),
		Path:  path,
		Major: unix.Major(st.Rdev),
		Minor: unix.Minor(st.Rdev),
		Dev:   st.Rdev,
	}, nil
}

// Detach unbinds the device and waits until the kernel has released the
// backing file, so that its file system can be unmounted. The kernel
// unbinds only when the last opener closes the device: a file descriptor
// left open makes Detach time out. A device already unbound is not an
// error.
func (l *Loop) Detach() error { return l.DetachWait(DetachTimeout) }

// DetachWait is Detach waiting at most timeout for the kernel.
func (l *Loop) DetachWait(timeout time.Duration) error {
	dev, err := os.OpenFile(l.Path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("faultinject: open %s: %w", l.Path, err)
	}
	err = unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
	dev.Close()
	if err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("faultinject: detach %s: %w", l.Name, err)
	}
	backing := filepath.Join("/sys/block", l.Name, "loop", "backing_file")
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(backing)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("faultinject: %s still bound to %s after %v (is the device held open?)",
				l.Name, strings.TrimSpace(string(b)), timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
