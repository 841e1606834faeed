package kernlog

import (
	"fmt"
	"strings"
	"time"
)

// Parser parses text lines. It holds what a line does not say itself: the
// current year (RFC 3164 syslog timestamps have none) and the zone of
// timestamps printed in local time without an offset (dmesg -T, RFC 3164).
// The zero Parser uses time.Now and time.Local.
type Parser struct {
	// Now returns the current time. A syslog timestamp without a year is
	// placed in the latest year that does not put it more than a day after
	// Now: a December line read in January belongs to last year, and the
	// day of slack absorbs clocks and zones a little ahead of ours. nil
	// means time.Now.
	Now func() time.Time
	// Location is the zone of local timestamps. nil means time.Local.
	Location *time.Location
}

// ParseLine parses one line with the zero Parser; see Parser.ParseLine.
func ParseLine(line string, f Format) (Record, Format, error) {
	return Parser{}.ParseLine(line, f)
}

// ParseLine parses one line of kernel log text read as format f and returns
// the record and the format it was read as. With FormatAuto the format is
// detected from the line itself, and a line that matches no format is a
// FormatPlain message. A trailing newline (LF or CRLF) and leading NUL
// bytes (what a log file holds after a crash) are dropped first.
//
// Every format accepts a "<3>" priority prefix (dmesg -r) or a
// "kern  :err   : " prefix (dmesg -x) before its timestamp; they set Level
// and Facility, which are -1 otherwise. A printk caller id
// (CONFIG_PRINTK_CALLER: the thread "[  T123]" or the CPU "[ C3]") after
// a timestamp of any format, or after a syslog line's "kernel:" tag, is
// dropped from the message; one right after a syslog timestamp is read as
// the kernel's, not as a host. A syslog line
// from another program than the kernel returns ErrNotKernel with
// FormatSyslog, so that the caller can count it. The message of a text
// line is kept as it is, leading white space included, except that byte
// sequences that are not UTF-8 become U+FFFD.
func (p Parser) ParseLine(line string, f Format) (Record, Format, error) {
	if !f.valid() {
		return Record{}, f, fmt.Errorf("parse kernel log line: unknown format %d", int(f))
	}
	line = trimEOL(line)
	// The limit applies before NULs are trimmed, as in Scanner, which
	// cannot trim a line it does not hold.
	if len(line) > MaxLineLen {
		return Record{}, f, fmt.Errorf("line of %d bytes: %w", len(line), ErrTooLong)
	}
	line = strings.TrimLeft(line, "\x00")
	if isBlank(line) {
		return Record{}, f, fmt.Errorf("line: %w", ErrEmpty)
	}
	if f == FormatKmsg || f == FormatAuto && looksKmsg(line) {
		r, err := ParseKmsg([]byte(line))
		return r, FormatKmsg, err
	}
	r := Record{Level: -1, Facility: -1}
	rest := r.cutDecoration(line)
	switch f {
	case FormatAuto:
		return p.detect(r, rest)
	case FormatPlain:
		return plain(r, rest)
	case FormatDmesg:
		if rest, ok := r.cutMonoOrCaller(rest); ok {
			return text(r, rest, FormatDmesg)
		}
		return Record{}, f, fmt.Errorf("dmesg line %q: no [seconds.micros] timestamp: %w", clip(line), ErrMalformed)
	case FormatDmesgCtime:
		if rest, ok := p.cutCtimeBracket(&r, rest); ok {
			return text(r, r.cutCaller(rest), FormatDmesgCtime)
		}
		return Record{}, f, fmt.Errorf("dmesg -T line %q: no [Www Mmm dd hh:mm:ss yyyy] timestamp: %w", clip(line), ErrMalformed)
	case FormatDmesgISO:
		if rest, _, ok := p.cutISO(&r, rest); ok {
			return text(r, r.cutCaller(rest), FormatDmesgISO)
		}
		return Record{}, f, fmt.Errorf("dmesg iso line %q: no ISO 8601 timestamp: %w", clip(line), ErrMalformed)
	default: // FormatSyslog
		return p.syslog(r, rest, line)
	}
}

// detect picks the format of a line whose decoration is already cut.
func (p Parser) detect(r Record, s string) (Record, Format, error) {
	switch {
	case strings.HasPrefix(s, "["):
		if rest, ok := r.cutMono(s); ok {
			if journalMonotonic(rest) {
				return p.syslogTail(r, rest, s)
			}
			return text(r, r.cutCaller(rest), FormatDmesg)
		}
		if rest, ok := p.cutCtimeBracket(&r, s); ok {
			return text(r, r.cutCaller(rest), FormatDmesgCtime)
		}
		if rest, ok := r.cutMonoOrCaller(s); ok {
			return text(r, rest, FormatDmesg)
		}
	case startsISO(s):
		r2 := r
		if rest, comma, ok := p.cutISO(&r2, s); ok {
			// A caller id right after the timestamp is the kernel's own
			// (CONFIG_PRINTK_CALLER), never a syslog host: read it as
			// dmesg iso whatever the fraction separator.
			if !comma && !hasCaller(rest) {
				if _, _, ok := cutSyslogTag(rest); ok {
					return p.syslogTail(r2, rest, s)
				}
			}
			return text(r2, r2.cutCaller(rest), FormatDmesgISO)
		}
	case startsMonth(s):
		r2 := r
		if rest, ok := p.cutRFC3164(&r2, s); ok {
			return p.syslogTail(r2, rest, s)
		}
	case strings.HasPrefix(s, "kernel:"):
		return p.syslogTail(r, s, s)
	}
	return plain(r, s)
}

// syslog parses a line read as FormatSyslog.
func (p Parser) syslog(r Record, s, line string) (Record, Format, error) {
	switch {
	case strings.HasPrefix(s, "["):
		if rest, ok := r.cutMono(s); ok {
			return p.syslogTail(r, rest, line)
		}
	case startsISO(s):
		if rest, _, ok := p.cutISO(&r, s); ok {
			return p.syslogTail(r, rest, line)
		}
	case startsMonth(s):
		if rest, ok := p.cutRFC3164(&r, s); ok {
			return p.syslogTail(r, rest, line)
		}
	case strings.HasPrefix(s, "kernel:"):
		return p.syslogTail(r, s, line)
	}
	return Record{}, FormatSyslog, fmt.Errorf("syslog line %q: no timestamp: %w", clip(line), ErrMalformed)
}

// syslogTail parses what follows a syslog timestamp: "[host ]tag[pid]: msg".
// The kernel's message may carry its own "[seconds]" timestamp and caller
// id (klogd, rsyslog imklog, journald with printk time on).
func (p Parser) syslogTail(r Record, s, line string) (Record, Format, error) {
	// "Feb 13 12:47:34 [T449218] mce: ..." (a timestamp put before a
	// kernel message by a tool that prints no host and no tag): a host
	// or tag never looks like a printk caller id, so the message is the
	// kernel's.
	if t := s[skipSpace(s, 0):]; hasCaller(t) {
		return text(r, r.cutCaller(t), FormatSyslog)
	}
	tag, msg, ok := cutSyslogTag(s)
	if !ok {
		// The kernel always writes "kernel:"; a line with a host and words
		// but no tag we can read ("syslogd 1.4.1: restart.") is someone
		// else's.
		if host, rest := cutToken(s[skipSpace(s, 0):]); host != "" && !isBlank(rest) {
			return Record{}, FormatSyslog, fmt.Errorf("syslog line %q without a kernel tag: %w", clip(line), ErrNotKernel)
		}
		return Record{}, FormatSyslog, fmt.Errorf("syslog line %q: no \"tag:\" after the timestamp: %w", clip(line), ErrMalformed)
	}
	if tag != "kernel" {
		return Record{}, FormatSyslog, fmt.Errorf("syslog line from %q: %w", clip(tag), ErrNotKernel)
	}
	if !r.HasMonotonic {
		if rest, ok := r.cutMono(msg); ok {
			msg = rest
		}
	}
	return text(r, r.cutCaller(msg), FormatSyslog)
}

func text(r Record, msg string, f Format) (Record, Format, error) {
	r.Message = strings.ToValidUTF8(msg, "\uFFFD")
	return r, f, nil
}

func plain(r Record, msg string) (Record, Format, error) {
	if isBlank(msg) {
		return Record{}, FormatPlain, fmt.Errorf("line without a message: %w", ErrEmpty)
	}
	return text(r, msg, FormatPlain)
}

// looksKmsg says whether s starts like a raw record: "digits,digits,digits,"
// followed later by ';'.
func looksKmsg[T string | []byte](s T) bool {
	i := 0
	for field := 0; field < 3; field++ {
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == start || i >= len(s) || s[i] != ',' {
			return false
		}
		i++
	}
	for ; i < len(s); i++ {
		if s[i] == ';' {
			return true
		}
	}
	return false
}

// journalMonotonic says whether what follows a "[seconds]" timestamp is a
// journal line (journalctl -o short-monotonic): "host kernel: msg" or
// "host prog[pid]: msg". A dmesg message whose second word happens to end
// in ':' ("pci 0000:00:1c.0: ...") must not match, so the tag must be
// "kernel" or carry a pid.
func journalMonotonic(s string) bool {
	s = s[skipSpace(s, 0):]
	host, rest := cutToken(s)
	if host == "" || strings.HasSuffix(host, ":") {
		return false
	}
	rest, ok := cutSpaces(rest)
	if !ok {
		return false
	}
	tok, _ := cutToken(rest)
	name, pid, ok := tagName(tok)
	return ok && (name == "kernel" || pid)
}

// cutSyslogTag cuts "[host ]tag[pid]:" and one space after it.
func cutSyslogTag(s string) (tag, msg string, ok bool) {
	s = s[skipSpace(s, 0):]
	t1, r1 := cutToken(s)
	if name, _, ok := tagName(t1); ok {
		return name, cutOneSpace(r1), true
	}
	r1, ok = cutSpaces(r1)
	if !ok {
		return "", "", false
	}
	t2, r2 := cutToken(r1)
	if name, _, ok := tagName(t2); ok {
		return name, cutOneSpace(r2), true
	}
	return "", "", false
}

// tagName reads an RFC 3164 tag token "name:" or "name[pid]:". Real names
// hold more than the RFC allows ("sshd(pam_unix)", "/usr/sbin/cron"), so
// anything but '[' and ':' goes.
func tagName(tok string) (name string, hasPID, ok bool) {
	tok, ok = strings.CutSuffix(tok, ":")
	if !ok || tok == "" {
		return "", false, false
	}
	if i := strings.IndexByte(tok, '['); i >= 0 {
		pid, ok := strings.CutSuffix(tok[i+1:], "]")
		if !ok || i == 0 || pid == "" || !allDigits(pid) {
			return "", false, false
		}
		tok, hasPID = tok[:i], true
	}
	if strings.ContainsAny(tok, ":[]") {
		return "", false, false
	}
	return tok, hasPID, true
}

// cutDecoration cuts a "<PRI>" prefix or a dmesg -x "fac   :level : "
// prefix and sets Level and Facility from it.
func (r *Record) cutDecoration(s string) string {
	if len(s) >= 3 && s[0] == '<' {
		i := 1
		for i < len(s) && i <= 4 && isDigit(s[i]) {
			i++
		}
		if i > 1 && i < len(s) && s[i] == '>' {
			pri := atoi(s[1:i])
			r.Level, r.Facility = pri&7, pri>>3
			return s[i+1:]
		}
		return s
	}
	c1 := strings.IndexByte(s, ':')
	if c1 < 3 || c1 > 10 {
		return s
	}
	fac, ok := facilities[strings.TrimRight(s[:c1], " ")]
	if !ok {
		return s
	}
	c2 := strings.IndexByte(s[c1+1:], ':')
	if c2 < 0 || c2 > 8 {
		return s
	}
	lvl, ok := levels[strings.TrimRight(s[c1+1:c1+1+c2], " ")]
	if !ok {
		return s
	}
	r.Level, r.Facility = lvl, fac
	return cutOneSpace(s[c1+1+c2+1:])
}

// The names dmesg -x prints (util-linux dmesg.c).
var (
	facilities = map[string]int{
		"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5,
		"lpr": 6, "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
		"res0": 12, "res1": 13, "res2": 14, "res3": 15,
		"local0": 16, "local1": 17, "local2": 18, "local3": 19,
		"local4": 20, "local5": 21, "local6": 22, "local7": 23,
	}
	levels = map[string]int{
		"emerg": 0, "alert": 1, "crit": 2, "err": 3,
		"warn": 4, "notice": 5, "info": 6, "debug": 7,
	}
)

// cutMono cuts a dmesg "[   12.345678]" timestamp (any number of spaces,
// NBSPs from mail clients included, 1..9 fractional digits) and one space
// after it.
func (r *Record) cutMono(s string) (string, bool) {
	if len(s) < 4 || s[0] != '[' {
		return s, false
	}
	i := skipSpace(s, 1)
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == start || i-start > 9 || i >= len(s) || s[i] != '.' {
		return s, false
	}
	sec := atoi(s[start:i])
	i++
	fstart := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	fd := i - fstart
	if fd == 0 || fd > 9 {
		return s, false
	}
	ns := atoi(s[fstart:i])
	for ; fd < 9; fd++ {
		ns *= 10
	}
	i = skipSpace(s, i)
	if i >= len(s) || s[i] != ']' {
		return s, false
	}
	r.Monotonic = time.Duration(sec)*time.Second + time.Duration(ns)
	r.HasMonotonic = true
	return cutOneSpace(s[i+1:]), true
}

// cutCaller cuts a printk caller id "[  T123]" or "[ C3]", if there is one.
func (r *Record) cutCaller(s string) string {
	if len(s) < 4 || s[0] != '[' {
		return s
	}
	i := skipSpace(s, 1)
	if i >= len(s) || s[i] != 'T' && s[i] != 'C' {
		return s
	}
	i++
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == start || i-start > 9 || i >= len(s) || s[i] != ']' {
		return s
	}
	return cutOneSpace(s[i+1:])
}

// hasCaller says whether s starts with a printk caller id.
func hasCaller(s string) bool {
	var r Record
	return len(r.cutCaller(s)) != len(s)
}

// cutMonoOrCaller cuts a dmesg timestamp with an optional caller id, or a
// caller id alone: what FormatDmesg requires.
func (r *Record) cutMonoOrCaller(s string) (string, bool) {
	if rest, ok := r.cutMono(s); ok {
		return r.cutCaller(rest), true
	}
	if rest := r.cutCaller(s); len(rest) != len(s) {
		return rest, true
	}
	return s, false
}

func trimEOL(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

func isBlank(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n', '\v', '\f', 0:
		default:
			return false
		}
	}
	return true
}

// skipSpace skips spaces, tabs and U+00A0 (NBSP, which mail clients put
// into quoted dmesg timestamps) from i on.
func skipSpace(s string, i int) int {
	for i < len(s) {
		switch {
		case s[i] == ' ' || s[i] == '\t':
			i++
		case s[i] == 0xc2 && i+1 < len(s) && s[i+1] == 0xa0:
			i += 2
		default:
			return i
		}
	}
	return i
}

// cutSpaces cuts at least one space.
func cutSpaces(s string) (string, bool) {
	i := skipSpace(s, 0)
	return s[i:], i > 0
}

func cutOneSpace(s string) string {
	if len(s) > 0 && s[0] == ' ' {
		return s[1:]
	}
	return s
}

// cutToken cuts s at the first space or tab.
func cutToken(s string) (tok, rest string) {
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// atoi parses a run of at most 18 digits the caller has checked.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}
