package kernlog

import "errors"

// Sentinel errors a caller can count as reasons for skipping a line or
// record. Every error this package returns for a bad input wraps exactly one
// of them, with detail about what was wrong.
var (
	// ErrEmpty: the line or record holds nothing but white space.
	ErrEmpty = errors.New("empty record")
	// ErrMalformed: the input does not follow the format it was read as.
	ErrMalformed = errors.New("malformed record")
	// ErrNotKernel: a well-formed syslog or journal line written by a
	// program other than the kernel.
	ErrNotKernel = errors.New("not a kernel record")
	// ErrTooLong: the line is longer than MaxLineLen.
	ErrTooLong = errors.New("record too long")
)

// MaxLineLen is the longest line (without its newline) the parsers accept.
// The kernel caps a record near 8 KiB (CONSOLE_EXT_LOG_MAX); twice that
// leaves room for the prefixes text formats add, and anything longer is not
// a kernel record but a corrupt or foreign file.
const MaxLineLen = 16 << 10

// SkipReason returns a short, stable label for err, meant for metrics and
// skip counters: "empty", "malformed", "not_kernel", "too_long", or "other"
// for an error of none of these kinds. It returns "" for nil.
func SkipReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrEmpty):
		return "empty"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrNotKernel):
		return "not_kernel"
	case errors.Is(err, ErrTooLong):
		return "too_long"
	default:
		return "other"
	}
}
