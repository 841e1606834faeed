package kernlog

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
)

// Scanner reads kernel log records from text: a kmsg dump, a dmesg or
// syslog file, a mail body. Unlike bufio.Scanner it does not stop at a bad
// line: a line that does not parse, is longer than MaxLineLen (read past,
// never held in memory whole) or holds garbage is counted by its
// SkipReason and scanning goes on at the next newline. Raw kmsg records
// get the dictionary lines (leading space) that follow them; continuation
// records (flags 'c', '+') stay separate records.
type Scanner struct {
	br      *bufio.Reader
	format  Format
	parser  Parser
	rec     Record
	recFmt  Format
	recLine int // line number where rec starts
	lines   int // lines read so far
	err     error
	eof     bool
	skipped map[string]uint64
	buf     []byte // the raw kmsg record being assembled
	ahead   []byte // a line read ahead to look for dictionary lines
	aheadNo int
	hasNext bool
}

// NewScanner returns a Scanner reading r as format f (FormatAuto detects
// the format of every line).
func NewScanner(r io.Reader, f Format) *Scanner {
	return &Scanner{
		br:      bufio.NewReaderSize(r, MaxLineLen+2), // +2 for "\r\n": a line of MaxLineLen must fit
		format:  f,
		skipped: make(map[string]uint64),
	}
}

// SetParser sets the Parser used for text lines (year and zone of local
// timestamps). Call it before the first Scan.
func (s *Scanner) SetParser(p Parser) { s.parser = p }

// Scan advances to the next record. It returns false at the end of the
// input or on a read error (see Err).
func (s *Scanner) Scan() bool {
	for {
		line, no, ok := s.line()
		if !ok {
			return false
		}
		var (
			r   Record
			f   Format
			err error
		)
		if s.format == FormatKmsg || s.format == FormatAuto && looksKmsg(line) {
			r, err = s.kmsg(line)
			f = FormatKmsg
		} else {
			r, f, err = s.parser.ParseLine(string(line), s.format)
		}
		if err != nil {
			s.skipped[SkipReason(err)]++
			continue
		}
		s.rec, s.recFmt, s.recLine = r, f, no
		return true
	}
}

// kmsg parses a raw record with the dictionary lines that follow it. The
// dictionary lines of a record that does not parse go with it, uncounted.
func (s *Scanner) kmsg(line []byte) (Record, error) {
	s.buf = append(s.buf[:0], line...)
	for {
		next, ok := s.peek()
		if !ok || len(next) == 0 || next[0] != ' ' {
			break
		}
		s.hasNext = false
		s.buf = append(s.buf, '\n')
		s.buf = append(s.buf, next...)
	}
	return ParseKmsg(s.buf)
}

// Record returns the record Scan found.
func (s *Scanner) Record() Record { return s.rec }

// Format returns the format the last record was read as.
func (s *Scanner) Format() Format { return s.recFmt }

// Line returns the 1-based number of the line the last record starts on,
// counting every line of the input, skipped ones included.
func (s *Scanner) Line() int { return s.recLine }

// Err returns the first read error other than io.EOF.
func (s *Scanner) Err() error { return s.err }

// Skipped returns how many lines or records were skipped, by SkipReason.
func (s *Scanner) Skipped() map[string]uint64 { return maps.Clone(s.skipped) }

func (s *Scanner) line() ([]byte, int, bool) {
	if s.hasNext {
		s.hasNext = false
		return s.ahead, s.aheadNo, true
	}
	return s.read()
}

func (s *Scanner) peek() ([]byte, bool) {
	if s.hasNext {
		return s.ahead, true
	}
	b, no, ok := s.read()
	if !ok {
		return nil, false
	}
	s.ahead = append(s.ahead[:0], b...)
	s.aheadNo, s.hasNext = no, true
	return s.ahead, true
}

// read returns the next line without its newline and leading NULs, and
// its number. The slice is valid until the next read.
func (s *Scanner) read() ([]byte, int, bool) {
	for !s.eof {
		b, err := s.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			s.lines++
			s.skipped[SkipReason(ErrTooLong)]++
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = s.br.ReadSlice('\n')
			}
			if err != nil {
				s.stop(err)
			}
			continue
		}
		if err != nil {
			s.stop(err)
			if len(b) == 0 {
				break
			}
		}
		s.lines++
		b = bytes.TrimSuffix(b, []byte{'\n'})
		b = trimCR(b)
		if len(b) > MaxLineLen {
			s.skipped[SkipReason(ErrTooLong)]++
			continue
		}
		return bytes.TrimLeft(b, "\x00"), s.lines, true
	}
	return nil, 0, false
}

func (s *Scanner) stop(err error) {
	s.eof = true
	if err != io.EOF && s.err == nil {
		s.err = err
	}
}
