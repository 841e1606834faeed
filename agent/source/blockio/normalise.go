package blockio

import (
	"fmt"
	"strconv"
	"strings"
)

// The two ways in spell a failed request differently: tp_btf programs see
// the block status (blk_status_t, BLK_STS_IOERR = 10), classic tracepoints
// the errno it maps to (blk_status_to_errno: -EIO). Both are named here as
// the kernel names them in its own log line (blk_print_req_error: "<status>
// error, dev sda, sector 2048 op 0x0:(READ) ..."), so that a fault seen by
// eBPF and the kernel's line about the same request carry the same device,
// sector, op and status and can be merged.

// kernelVersion is a kernel's major and minor release number.
type kernelVersion struct{ major, minor int }

func (v kernelVersion) atLeast(major, minor int) bool {
	return v.major > major || (v.major == major && v.minor >= minor)
}

// parseKernelRelease reads "6.18.44-fc-v669" as 6.18. A release it cannot
// read is taken as the newest kernel: the names it would get wrong are
// those of codes older kernels used differently.
func parseKernelRelease(rel string) kernelVersion {
	maj, rest, _ := strings.Cut(rel, ".")
	minStr := rest
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minStr = rest[:i]
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(minStr)
	if err1 != nil || err2 != nil || a <= 0 {
		return kernelVersion{major: 1 << 30}
	}
	return kernelVersion{a, b}
}

// Status names, as blk_status_to_str has them (block/blk-core.c).
const (
	StatusIO                  = "I/O"
	StatusNotSupported        = "operation not supported"
	StatusTimeout             = "timeout"
	StatusNoSpace             = "critical space allocation"
	StatusTransport           = "recoverable transport"
	StatusTarget              = "critical target"
	StatusNexus               = "critical nexus"       // BLK_STS_NEXUS, before 6.5
	StatusReservationConflict = "reservation conflict" // the same code from 6.5
	StatusMedium              = "critical medium"
	StatusProtection          = "protection"
	StatusResource            = "kernel resource"
	StatusDevResource         = "device resource"
	StatusAgain               = "nonblocking retry"
	StatusOffline             = "device offline"
	StatusDMRequeue           = "dm internal retry"
	StatusZoneOpen            = "open zones exceeded"
	StatusZoneActive          = "active zones exceeded"
	StatusDurationLimit       = "duration limit exceeded"
	StatusInvalid             = "invalid"
)

// blkStatusName names a blk_status_t on kernel v. Codes 0-13 have meant
// the same since 4.16; the zone, offline, duration-limit and invalid codes
// above them moved when BLK_STS_ZONE_RESOURCE (14) was removed in 6.10.
// Codes no kernel of that era uses are named by their neighbours' era
// (harmless: they never occur). A code the table does not know is "I/O",
// which is what blk_status_to_errno makes of it (-EIO).
func blkStatusName(code uint8, v kernelVersion) string {
	switch code {
	case 0:
		return ""
	case 1:
		return StatusNotSupported
	case 2:
		return StatusTimeout
	case 3:
		return StatusNoSpace
	case 4:
		return StatusTransport
	case 5:
		return StatusTarget
	case 6:
		if v.atLeast(6, 5) {
			return StatusReservationConflict
		}
		return StatusNexus
	case 7:
		return StatusMedium
	case 8:
		return StatusProtection
	case 9:
		return StatusResource
	case 10:
		return StatusIO
	case 11:
		return StatusDMRequeue
	case 12:
		return StatusAgain
	case 13:
		return StatusDevResource
	}
	if v.atLeast(6, 10) {
		switch code {
		case 14:
			return StatusZoneOpen
		case 15:
			return StatusZoneActive
		case 16:
			return StatusOffline
		case 17:
			return StatusDurationLimit
		case 18, 19: // 19 from 6.11, 18 once the gap was closed
			return StatusInvalid
		}
	} else {
		switch code {
		case 15:
			return StatusZoneOpen
		case 16:
			return StatusZoneActive
		case 17:
			return StatusOffline
		case 18:
			return StatusDurationLimit
		}
	}
	return StatusIO
}

// statusName names a record's error, whichever way it came in.
func statusName(k kind, errCode int32, v kernelVersion) string {
	if k == kindBTF {
		return blkStatusName(uint8(errCode), v)
	}
	return errnoStatusName(errCode, v)
}

// Fault classes, the same the kernel log rules give the same line
// (agent/detect/rules/kernel.yaml: blk-medium-error, blk-io-error).
const (
	ClassIOError     = "disk.io_error"
	ClassMediumError = "disk.medium_error"
)

// faultClass is the class of a failed request with status s, and whether
// it is raised at all. Statuses that say the host asked for something the
// device does not do, ran out of memory, or must retry (not supported,
// resource, nonblocking retry, dm internal retry, zone limits, duration
// limit, invalid) are not hardware faults: the kernel log rules leave them
// out, and so does this; they are still counted in the device's errors.
func faultClass(s string) (string, bool) {
	switch s {
	case StatusMedium:
		return ClassMediumError, true
	case StatusIO, StatusTimeout, StatusTransport, StatusTarget, StatusNexus,
		StatusReservationConflict, StatusProtection, StatusOffline:
		return ClassIOError, true
	}
	return "", false
}

// Operation names, as blk_op_str prints them.
const (
	OpRead        = "READ"
	OpWrite       = "WRITE"
	OpFlush       = "FLUSH"
	OpDiscard     = "DISCARD"
	OpSecureErase = "SECURE_ERASE"
	OpWriteZeroes = "WRITE_ZEROES"
	OpUnknown     = "UNKNOWN"
)

// reqOps names REQ_OP_* numbers. The numbers of the zone operations moved
// between kernels, so the loader reads them from the running kernel's BTF
// (enum req_op); this table, of 6.x kernels, stands in where it cannot.
var defaultReqOps = map[uint32]string{
	0: OpRead, 1: OpWrite, 2: OpFlush, 3: OpDiscard, 5: OpSecureErase,
	7: "ZONE_APPEND", 9: OpWriteZeroes, 11: "ZONE_OPEN", 13: "ZONE_CLOSE",
	15: "ZONE_FINISH", 17: "ZONE_RESET", 19: "ZONE_RESET_ALL",
	34: "DRV_IN", 35: "DRV_OUT",
}

// opName names a REQ_OP_* number with the table ops.
func opName(op uint32, ops map[uint32]string) string {
	if n, ok := ops[op]; ok {
		return n
	}
	return OpUnknown
}

// opFromRWBS reads the operation from a tracepoint's rwbs string
// (blk_fill_rwbs): an 'F' for REQ_PREFLUSH may come first, then the
// operation ("R", "W", "F", "D", "DE", "WZ", "ZA", "ZR", "ZRA", ...), then
// flag letters. "N" is every operation older kernels have no letter for.
func opFromRWBS(rwbs string) string {
	s := rwbs
	if len(s) >= 2 && s[0] == 'F' && strings.IndexByte("RWDFNZ", s[1]) >= 0 {
		s = s[1:]
	}
	switch {
	case s == "":
		return OpUnknown
	case strings.HasPrefix(s, "WZ"):
		return OpWriteZeroes
	case s[0] == 'W':
		return OpWrite
	case s[0] == 'R':
		return OpRead
	case strings.HasPrefix(s, "DE"):
		return OpSecureErase
	case s[0] == 'D':
		return OpDiscard
	case s[0] == 'F':
		return OpFlush
	case strings.HasPrefix(s, "ZA"):
		return "ZONE_APPEND"
	case strings.HasPrefix(s, "ZRA"):
		return "ZONE_RESET_ALL"
	case strings.HasPrefix(s, "ZR"):
		return "ZONE_RESET"
	case strings.HasPrefix(s, "ZF"):
		return "ZONE_FINISH"
	case strings.HasPrefix(s, "ZO"):
		return "ZONE_OPEN"
	case strings.HasPrefix(s, "ZC"):
		return "ZONE_CLOSE"
	}
	return OpUnknown
}

// recordOp names a record's operation, whichever way it came in.
func recordOp(r record, ops map[uint32]string) string {
	if r.Kind == kindBTF {
		return opName(r.Op, ops)
	}
	return opFromRWBS(r.RWBS)
}

// passthrough says a request carried a driver command (SG_IO, NVMe admin
// passthrough), not a read or write of the medium: the kernel does not log
// those, and a SMART query a device refuses is not a disk fault. On
// kernels with block_rq_error the kernel leaves them out itself.
func passthrough(r record, op string) bool {
	if r.Kind == kindBTF {
		return op == "DRV_IN" || op == "DRV_OUT"
	}
	return op == OpUnknown && r.Sector == 0 && r.NrSectors == 0
}

// devName is the "MAJ:MIN" of a dev_t, the name of its /sys/dev/block
// entry.
func devName(r record) string { return fmt.Sprintf("%d:%d", r.Major(), r.Minor()) }
