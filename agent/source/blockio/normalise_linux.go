package blockio

import "syscall"

// errnoStatusName names the negative errno a classic tracepoint reports
// (in this architecture's numbers): the inverse of blk_status_to_errno,
// which is one to one. An errno it does not map to is "I/O", as
// errno_to_blk_status has it.
func errnoStatusName(errno int32, v kernelVersion) string {
	if errno == 0 {
		return ""
	}
	switch syscall.Errno(-errno) {
	case syscall.EOPNOTSUPP:
		return StatusNotSupported
	case syscall.ETIMEDOUT:
		return StatusTimeout
	case syscall.ENOSPC:
		return StatusNoSpace
	case syscall.ENOLINK:
		return StatusTransport
	case syscall.EREMOTEIO:
		return StatusTarget
	case syscall.EBADE:
		if v.atLeast(6, 5) {
			return StatusReservationConflict
		}
		return StatusNexus
	case syscall.ENODATA:
		return StatusMedium
	case syscall.EILSEQ:
		return StatusProtection
	case syscall.ENOMEM:
		return StatusResource
	case syscall.EBUSY:
		return StatusDevResource
	case syscall.EAGAIN:
		return StatusAgain
	case syscall.ENODEV:
		return StatusOffline
	case syscall.EREMCHG:
		return StatusDMRequeue
	case syscall.ETOOMANYREFS:
		return StatusZoneOpen
	case syscall.EOVERFLOW:
		return StatusZoneActive
	case syscall.ETIME:
		return StatusDurationLimit
	case syscall.EINVAL:
		return StatusInvalid
	}
	return StatusIO
}
