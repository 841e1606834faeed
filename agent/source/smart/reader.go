package smart

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"github.com/hwheal/hwheal/pkg/smart"
)

// Reader reads one drive's health into pkg/smart's normalized model. It is
// the seam between the source (discovery, scheduling, timeouts,
// observations) and the ways of talking to a drive.
//
// A reader must not wake a drive that is spun down: it returns a Report
// with Standby set instead, and reads nothing else. It must never send a
// command that adds an entry to a drive's error log (no NVMe error log
// page, no command the drive may reject). It should return promptly when
// ctx is done; one that cannot (an ioctl the kernel has not finished) is
// abandoned by the source and not started again on that disk until it
// returns.
type Reader interface {
	// Name is short and stable: "native", "smartctl".
	Name() string
	// Read reads d. An error wrapping ErrNotSupported means this reader
	// cannot talk to this kind of drive (a SAS disk for the native reader,
	// no smartctl installed) and the next reader is tried; any other error
	// is the drive's or the host's, and no other reader is tried, so that a
	// hung drive is not asked twice.
	Read(ctx context.Context, d Disk) (*smart.Report, error)
}

// ErrNotSupported marks a drive a reader cannot read: not a failure of the
// drive.
var ErrNotSupported = errors.New("SMART not supported")

// notSupportedErrno tells whether an ioctl's errno says the device does
// not take the command at all (a loop device, a virtio disk, a driver
// without pass-through): ENOTTY is the rule, EINVAL what loop and several
// block drivers answer for an ioctl they do not know.
func notSupportedErrno(err error) bool {
	return errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) ||
		errors.Is(err, syscall.ENXIO)
}

// isPermission tells whether err is the host refusing us (not root, no
// CAP_SYS_RAWIO / CAP_SYS_ADMIN), which no retry fixes.
func isPermission(err error) bool { return errors.Is(err, fs.ErrPermission) }
