package kernlog

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// ParseKmsg parses one raw /dev/kmsg record as a read of the device returns
// it (Documentation/ABI/testing/dev-kmsg):
//
//	PRI,SEQ,USEC,FLAGS[,more fields];message\n
//	 KEY=value\n
//	 ...
//
// PRI is facility<<3 | level; records written to /dev/kmsg from user space
// with "<3>text" carry facility 1. FLAGS '-' is a whole record, 'c' and '+'
// a fragment (Continuation). Fields after FLAGS (the printk caller on
// kernels built with CONFIG_PRINTK_CALLER) are ignored, as the ABI asks.
// The kernel escapes control bytes, bytes >= 0x7f and '\' as \xNN in the
// message and in dictionary values; ParseKmsg undoes that, then replaces
// byte sequences that are not UTF-8 with U+FFFD so the message can travel
// in a protobuf string. A trailing "\r" on any line is dropped (CRLF files).
func ParseKmsg(b []byte) (Record, error) {
	line, rest, _ := bytes.Cut(b, []byte{'\n'})
	line = trimCR(line)
	if len(line) > MaxLineLen {
		return Record{}, fmt.Errorf("kmsg record of %d bytes: %w", len(line), ErrTooLong)
	}
	if len(bytes.TrimSpace(line)) == 0 && len(bytes.TrimSpace(rest)) == 0 {
		return Record{}, fmt.Errorf("kmsg record: %w", ErrEmpty)
	}
	header, msg, ok := bytes.Cut(line, []byte{';'})
	if !ok {
		return Record{}, fmt.Errorf("kmsg record %q: no ';' after the header: %w", clip(line), ErrMalformed)
	}
	r, err := parseKmsgHeader(header)
	if err != nil {
		return Record{}, err
	}
	r.Message = unescapeKmsg(msg)
	for len(rest) > 0 {
		var dl []byte
		dl, rest, _ = bytes.Cut(rest, []byte{'\n'})
		dl = trimCR(dl)
		if len(dl) == 0 {
			continue
		}
		if dl[0] != ' ' {
			return Record{}, fmt.Errorf("kmsg record %d: line %q after the message is not a dictionary line: %w", r.Seq, clip(dl), ErrMalformed)
		}
		r.addDict(dl[1:])
	}
	return r, nil
}

// addDict adds one dictionary line (without its leading space). Keys are
// taken verbatim (the kernel writes them literally, "SUBSYSTEM"); values are
// unescaped. A line without '=' carries nothing and is ignored.
func (r *Record) addDict(kv []byte) {
	k, v, ok := bytes.Cut(kv, []byte{'='})
	if !ok {
		return
	}
	if r.Dict == nil {
		r.Dict = make(map[string]string, 2)
	}
	r.Dict[validUTF8(k)] = unescapeKmsg(v)
}

func parseKmsgHeader(h []byte) (Record, error) {
	var f [4][]byte
	rest := h
	for i := range f {
		var ok bool
		f[i], rest, ok = bytes.Cut(rest, []byte{','})
		if !ok && i < 3 {
			return Record{}, fmt.Errorf("kmsg header %q: want PRI,SEQ,USEC,FLAGS: %w", clip(h), ErrMalformed)
		}
	}
	pri, ok := parseUint(f[0], math.MaxInt32)
	if !ok {
		return Record{}, fmt.Errorf("kmsg header %q: bad priority: %w", clip(h), ErrMalformed)
	}
	seq, ok := parseUint(f[1], math.MaxUint64)
	if !ok {
		return Record{}, fmt.Errorf("kmsg header %q: bad sequence number: %w", clip(h), ErrMalformed)
	}
	usec, ok := parseUint(f[2], math.MaxInt64/uint64(time.Microsecond))
	if !ok {
		return Record{}, fmt.Errorf("kmsg header %q: bad timestamp: %w", clip(h), ErrMalformed)
	}
	if len(f[3]) == 0 {
		return Record{}, fmt.Errorf("kmsg header %q: no flags: %w", clip(h), ErrMalformed)
	}
	return Record{
		Level:        int(pri & 7),
		Facility:     int(pri >> 3),
		Seq:          seq,
		Monotonic:    time.Duration(usec) * time.Microsecond,
		HasMonotonic: true,
		Continuation: bytes.ContainsAny(f[3], "c+"),
	}, nil
}

// parseUint parses a decimal number without sign or space, up to max.
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil || n > max {
		return 0, false
	}
	return n, true
}

// unescapeKmsg undoes the kernel's \xNN escaping. A backslash not followed
// by "x" and two hex digits is kept as it is: the kernel never writes one,
// but a hand-made fixture may.
func unescapeKmsg(b []byte) string {
	i := bytes.IndexByte(b, '\\')
	if i < 0 {
		return validUTF8(b)
	}
	out := make([]byte, 0, len(b))
	for {
		out = append(out, b[:i]...)
		b = b[i:]
		if len(b) >= 4 && b[1] == 'x' && isHex(b[2]) && isHex(b[3]) {
			out = append(out, unhex(b[2])<<4|unhex(b[3]))
			b = b[4:]
		} else {
			out = append(out, '\\')
			b = b[1:]
		}
		i = bytes.IndexByte(b, '\\')
		if i < 0 {
			out = append(out, b...)
			return validUTF8(out)
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// clip shortens what an error quotes: a 16 KiB line in an error message
// helps nobody.
func clip[T string | []byte](s T) string {
	const max = 64
	if len(s) <= max {
		return string(s)
	}
	return string(s[:max]) + "..."
}

// AppendKmsg appends r to dst in the /dev/kmsg record format that ParseKmsg
// reads, ending in a newline, with its dictionary lines sorted by key. It
// escapes control bytes, DEL and '\' in the message and in dictionary
// values as the kernel does; other bytes (UTF-8) are written as they are.
// Dictionary keys are written verbatim and must not hold '=' or a newline.
// Tests and fixture generators use it to write kmsg files.
func AppendKmsg(dst []byte, r Record) []byte {
	lvl, fac := max(r.Level, 0)&7, max(r.Facility, 0)
	dst = strconv.AppendUint(dst, uint64(fac)<<3|uint64(lvl), 10)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, max(int64(r.Monotonic/time.Microsecond), 0), 10)
	if r.Continuation {
		dst = append(dst, ",c;"...)
	} else {
		dst = append(dst, ",-;"...)
	}
	dst = appendEscaped(dst, r.Message)
	dst = append(dst, '\n')
	keys := make([]string, 0, len(r.Dict))
	for k := range r.Dict {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = append(dst, ' ')
		dst = append(dst, k...)
		dst = append(dst, '=')
		dst = appendEscaped(dst, r.Dict[k])
		dst = append(dst, '\n')
	}
	return dst
}

func appendEscaped(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c == 0x7f || c == '\\' {
			dst = append(dst, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}
