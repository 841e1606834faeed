package faultinject

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Range is a byte range [Off, Off+Len) of the file.
type Range struct {
	Off, Len int64
	// Errno is what a request overlapping the range fails with; 0 means
	// the file's. The loop device hands it to the block layer, which maps
	// it to a block status: ENODATA is logged as "critical medium error",
	// ETIMEDOUT as "timeout error", EIO as "I/O error".
	Errno syscall.Errno
}

// Sectors returns the range of n 512-byte sectors starting at sector s.
func Sectors(s, n int64) Range { return Range{Off: s * 512, Len: n * 512} }

func (r Range) overlaps(off, n int64) bool {
	return n > 0 && r.Len > 0 && off < r.Off+r.Len && r.Off < off+n
}

// Backing is where the file's bytes live.
type Backing int

const (
	// Memory keeps the bytes in the test process; pages never written
	// cost nothing.
	Memory Backing = iota
	// SparseFile keeps them in a sparse temporary file, for sizes that
	// should not sit in memory.
	SparseFile
)

// FileConfig describes a faulty file.
type FileConfig struct {
	// Size of the file in bytes; a multiple of 512. 0 means 64 MiB.
	Size int64
	// Bad ranges fail every read and write that overlaps them.
	Bad []Range
	// Errno is what a request overlapping a bad range fails with, unless
	// the range says otherwise; 0 means EIO.
	Errno syscall.Errno
	// Backing is Memory by default.
	Backing Backing
}

// DefaultSize is the size of a file whose FileConfig.Size is 0.
const DefaultSize = 64 << 20

// Stats counts the requests the FUSE server answered.
type Stats struct {
	Reads, Writes             uint64
	FailedReads, FailedWrites uint64
}

// File is a FUSE file that fails requests touching its bad ranges. It is
// served by goroutines of the calling process until Unmount.
type File struct {
	// Path is the file inside the mount.
	Path string
	// Mountpoint is the temporary directory the file system is mounted on.
	Mountpoint string
	// Size is the file's size in bytes.
	Size int64

	errno   syscall.Errno
	bad     atomic.Pointer[[]Range]
	store   store
	server  *fuse.Server
	stats   struct{ reads, writes, failedReads, failedWrites atomic.Uint64 }
	unmount sync.Once
	umErr   error
}

// FileName is the name of the file inside the mount.
const FileName = "disk.img"

// MountFile mounts a one-file FUSE file system in a new temporary directory.
// The caller must Unmount it, after detaching any loop device over it.
func MountFile(cfg FileConfig) (_ *File, err error) {
	size := cmp.Or(cfg.Size, DefaultSize)
	if size < 0 || size%512 != 0 {
		return nil, fmt.Errorf("faultinject: size %d is not a positive multiple of 512", size)
	}
	f := &File{Size: size, errno: cmp.Or(cfg.Errno, syscall.EIO)}
	f.SetBad(cfg.Bad...)
	switch cfg.Backing {
	case Memory:
		f.store = &memStore{b: make([]byte, size)}
	case SparseFile:
		s, err := newFileStore(size)
		if err != nil {
			return nil, err
		}
		f.store = s
	default:
		return nil, fmt.Errorf("faultinject: unknown backing %d", cfg.Backing)
	}
	defer func() {
		if err != nil {
			f.store.Close()
		}
	}()
	dir, err := os.MkdirTemp("", "faultinject-")
	if err != nil {
		return nil, fmt.Errorf("faultinject: mountpoint: %w", err)
	}
	root := &fs.Inode{}
	node := &fileNode{f: f}
	f.server, err = fs.Mount(dir, root, &fs.Options{
		MountOptions: fuse.MountOptions{
			// Root mounts with mount(2): no fusermount needed.
			DirectMountStrict: true,
			FsName:            "faultinject",
			Name:              "faultinject",
			DisableXAttrs:     true,
		},
		OnAdd: func(ctx context.Context) {
			ch := root.NewPersistentInode(ctx, node, fs.StableAttr{Mode: syscall.S_IFREG, Ino: 2})
			root.AddChild(FileName, ch, false)
		},
	})
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("faultinject: mount FUSE on %s: %w", dir, err)
	}
	f.Mountpoint = dir
	f.Path = filepath.Join(dir, FileName)
	return f, nil
}

// SetBad replaces the bad ranges; requests already answered are not
// affected.
func (f *File) SetBad(r ...Range) {
	r = slices.Clone(r)
	f.bad.Store(&r)
}

// Stats returns what the server answered so far.
func (f *File) Stats() Stats {
	return Stats{
		Reads: f.stats.reads.Load(), Writes: f.stats.writes.Load(),
		FailedReads: f.stats.failedReads.Load(), FailedWrites: f.stats.failedWrites.Load(),
	}
}

// fault returns the errno a request of n bytes at off fails with, or 0.
func (f *File) fault(off, n int64) syscall.Errno {
	for _, r := range *f.bad.Load() {
		if r.overlaps(off, n) {
			return cmp.Or(r.Errno, f.errno)
		}
	}
	return 0
}

// Unmount stops the FUSE server and removes the mountpoint. Detach every
// loop device over the file first: while the kernel holds the file the
// unmount cannot finish. Unmount is idempotent.
func (f *File) Unmount() error {
	f.unmount.Do(func() {
		if err := f.server.Unmount(); err != nil {
			f.umErr = fmt.Errorf("faultinject: unmount %s: %w", f.Mountpoint, err)
			return
		}
		f.server.Wait()
		f.umErr = errors.Join(f.store.Close(), os.Remove(f.Mountpoint))
	})
	return f.umErr
}

// Abort cuts the FUSE connection: every pending and future request fails
// (ENOTCONN) instead of waiting for a server. It is the way out when a loop
// device cannot be detached; Unmount is then done lazily. It needs fusectl
// (/sys/fs/fuse/connections), mounted here when it is not.
func (f *File) Abort() error {
	var st unix.Stat_t
	if err := unix.Stat(f.Mountpoint, &st); err != nil {
		return fmt.Errorf("faultinject: stat %s: %w", f.Mountpoint, err)
	}
	const ctl = "/sys/fs/fuse/connections"
	abort := filepath.Join(ctl, fmt.Sprint(unix.Minor(st.Dev)), "abort")
	if _, err := os.Stat(abort); errors.Is(err, os.ErrNotExist) {
		_ = unix.Mount("fusectl", ctl, "fusectl", 0, "")
	}
	if err := os.WriteFile(abort, []byte("1"), 0); err != nil {
		return fmt.Errorf("faultinject: abort FUSE connection: %w", err)
	}
	if err := unix.Unmount(f.Mountpoint, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("faultinject: lazy unmount %s: %w", f.Mountpoint, err)
	}
	return nil
}

// fileNode is the one file of the file system.
type fileNode struct {
	fs.Inode
	f *File
}

var (
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeSetattrer = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeWriter    = (*fileNode)(nil)
	_ fs.NodeFsyncer   = (*fileNode)(nil)
)

// Open asks for direct I/O: without the page cache and readahead, one
// request of the loop device is one FUSE read of the same range, so a good
// request never fails because readahead touched a bad range next to it.
func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (n *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	out.Size = uint64(n.f.Size)
	out.Blocks = uint64(n.f.Size) / 512
	out.Blksize = 4096
	return 0
}

// Setattr keeps the size: the loop device never truncates, and a test that
// does gets the same file back.
func (n *fileNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return n.Getattr(ctx, fh, out)
}

func (n *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f := n.f
	f.stats.reads.Add(1)
	if errno := f.fault(off, int64(len(dest))); errno != 0 {
		f.stats.failedReads.Add(1)
		return nil, errno
	}
	if off >= f.Size {
		return fuse.ReadResultData(nil), 0
	}
	dest = dest[:min(int64(len(dest)), f.Size-off)]
	if err := f.store.ReadAt(dest, off); err != nil {
		return nil, syscall.EIO
	}
	return fuse.ReadResultData(dest), 0
}

func (n *fileNode) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f := n.f
	f.stats.writes.Add(1)
	if errno := f.fault(off, int64(len(data))); errno != 0 {
		f.stats.failedWrites.Add(1)
		return 0, errno
	}
	if off >= f.Size {
		return 0, syscall.ENOSPC
	}
	data = data[:min(int64(len(data)), f.Size-off)]
	if err := f.store.WriteAt(data, off); err != nil {
		return 0, syscall.EIO
	}
	return uint32(len(data)), 0
}

// Fsync succeeds: the loop device turns a FLUSH request into fsync, and an
// unimplemented fsync would fail every flush.
func (n *fileNode) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	return 0
}

// store holds the file's bytes; off and len are within the file.
type store interface {
	ReadAt(p []byte, off int64) error
	WriteAt(p []byte, off int64) error
	Close() error
}

type memStore struct {
	mu sync.RWMutex
	b  []byte
}

func (m *memStore) ReadAt(p []byte, off int64) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	copy(p, m.b[off:])
	return nil
}

func (m *memStore) WriteAt(p []byte, off int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	copy(m.b[off:], p)
	return nil
}

func (m *memStore) Close() error { return nil }

type fileStore struct{ f *os.File }

func newFileStore(size int64) (*fileStore, error) {
	f, err := os.CreateTemp("", "faultinject-*.img")
	if err != nil {
		return nil, fmt.Errorf("faultinject: backing file: %w", err)
	}
	// Unlinked at once: nothing is left behind however the test ends.
	os.Remove(f.Name())
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("faultinject: size backing file: %w", err)
	}
	return &fileStore{f: f}, nil
}

func (s *fileStore) ReadAt(p []byte, off int64) error {
	_, err := s.f.ReadAt(p, off)
	return err
}

func (s *fileStore) WriteAt(p []byte, off int64) error {
	_, err := s.f.WriteAt(p, off)
	return err
}

func (s *fileStore) Close() error { return s.f.Close() }
