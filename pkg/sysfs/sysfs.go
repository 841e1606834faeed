// Package sysfs reads kernel attributes below an injectable root the way
// the agent's sources need: bounded reads of one attribute, "the kernel has
// no value" told apart from a real failure, links resolved without ever
// leaving the root (a fixture tree must never read the host's devices), and
// the PCI function a device hangs off. It is a leaf: it knows no source.
package sysfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
)

// MaxAttr bounds an attribute read: attributes are at most a page.
const MaxAttr = 4096

// Read returns at most MaxAttr bytes of the attribute at path, with the
// error os gives (it names the path).
func Read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxAttr))
}

// String returns the attribute at path with surrounding white space
// removed, or "" when it cannot be read: for best-effort values (a model
// name) whose absence must not cost the caller anything else.
func String(path string) string {
	b, err := Read(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Attr reads the attribute at path. ok is false, with no error, when the
// kernel has no value to give: the file is absent, or the driver refuses
// the read with EINVAL, ENODATA, EOPNOTSUPP (speed on a link that is down)
// or one of noValue (drivers differ: a sensor asleep answers EAGAIN or EIO,
// a function in D3cold ENODEV). Any other failure is an error naming path.
func Attr(path string, noValue ...syscall.Errno) (b []byte, ok bool, err error) {
	b, err = Read(path)
	switch {
	case err == nil:
		return b, true, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EINVAL),
		errors.Is(err, syscall.ENODATA), errors.Is(err, syscall.EOPNOTSUPP),
		slices.ContainsFunc(noValue, func(e syscall.Errno) bool { return errors.Is(err, e) }):
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
}

// Inside reports whether path lies within root (both resolved, or both
// not), so that a link that climbs out of a fixture tree is never followed.
func Inside(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// Resolve follows link and returns the path it names, "" when it is gone
// (a device removed since it was listed). root must be resolved already. A
// link that leaves root is an error.
func Resolve(root, link string) (string, error) {
	path, err := filepath.EvalSymlinks(link)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("resolve %s: %w", link, err)
	case !Inside(root, path):
		return "", fmt.Errorf("%s points outside %s, to %s", link, root, path)
	}
	return path, nil
}

// pciAddrRe matches a PCI function address as sysfs names device
// directories ("0000:3b:00.0"; domains may be wider than four digits).
var pciAddrRe = regexp.MustCompile(`^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// IsPCIAddress reports whether name is a PCI function address.
func IsPCIAddress(name string) bool { return pciAddrRe.MatchString(name) }

// PCIAddressIn returns the PCI function closest to dev on its path below
// root (the controller a disk or an NVMe sensor hangs off), or "" for
// platform and virtual devices. dev is taken as it is: no link is followed.
func PCIAddressIn(root, dev string) string {
	rel, err := filepath.Rel(root, dev)
	if err != nil {
		return ""
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if IsPCIAddress(parts[i]) {
			return parts[i]
		}
	}
	return ""
}

// PCIAddressOf resolves a device link (…/device of a block device or an
// interface) and returns the PCI function closest to it, or "" when the
// link is gone, names no PCI function, or leaves root.
func PCIAddressOf(root, link string) string {
	resolved, err := filepath.EvalSymlinks(link)
	if err != nil || !Inside(root, resolved) {
		return ""
	}
	return PCIAddressIn(root, resolved)
}
