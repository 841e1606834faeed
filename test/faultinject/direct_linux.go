package faultinject

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DirectFile is a device opened with O_DIRECT: every ReadAt or WriteAt is
// one block request of the same range (when off and n are multiples of the
// logical block size and n is within the device's request size limit),
// with no page cache, readahead or merging in between.
type DirectFile struct {
	f *os.File
}

// OpenDirect opens path read-write with O_DIRECT.
func OpenDirect(path string) (*DirectFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		return nil, fmt.Errorf("faultinject: open %s with O_DIRECT: %w", path, err)
	}
	return &DirectFile{f: f}, nil
}

// Close closes the device.
func (d *DirectFile) Close() error { return d.f.Close() }

// ReadAt reads n bytes at off. The error of a failed request is the
// syscall's (unix.EIO), wrapped with the device and offset.
func (d *DirectFile) ReadAt(off int64, n int) ([]byte, error) {
	buf := alignedBuf(n)
	got, err := unix.Pread(int(d.f.Fd()), buf, off)
	if err != nil {
		return nil, fmt.Errorf("faultinject: O_DIRECT read of %d bytes at %d from %s: %w", n, off, d.f.Name(), err)
	}
	return buf[:got], nil
}

// WriteAt writes p at off.
func (d *DirectFile) WriteAt(p []byte, off int64) error {
	buf := alignedBuf(len(p))
	copy(buf, p)
	if _, err := unix.Pwrite(int(d.f.Fd()), buf, off); err != nil {
		return fmt.Errorf("faultinject: O_DIRECT write of %d bytes at %d to %s: %w", len(p), off, d.f.Name(), err)
	}
	return nil
}

// ReadDirect opens path, reads n bytes at off with O_DIRECT and closes it.
func ReadDirect(path string, off int64, n int) ([]byte, error) {
	d, err := OpenDirect(path)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadAt(off, n)
}

// WriteDirect opens path, writes p at off with O_DIRECT and closes it.
func WriteDirect(path string, off int64, p []byte) error {
	d, err := OpenDirect(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.WriteAt(p, off)
}

// alignedBuf returns n bytes aligned to a page, as O_DIRECT wants them.
func alignedBuf(n int) []byte {
	const align = 4096
	b := make([]byte, n+align)
	skip := (align - int(uintptr(unsafe.Pointer(&b[0]))&(align-1))) & (align - 1)
	return b[skip : skip+n : skip+n]
}
