// Package ttar extracts archives in the plain-text tar format ("ttar") that
// prometheus/procfs and node_exporter use for their sysfs/procfs fixture
// trees, so that tests can unpack those trees without the ttar shell script.
//
// An archive is a sequence of entries separated by comment lines
// ("# ttar - - -"):
//
//	Path: dir/file        a regular file:
//	Lines: 2              number of content lines that follow
//	first line            content; NULLBYTE stands for a zero byte, EOF at
//	secondEOF             the end of a line means "no final newline";
//	Mode: 644             \NULLBYTE and \EOF are the literal words
//
//	Directory: dir        a directory (optionally followed by Mode:)
//
//	Path: dir/link        a symbolic link
//	SymlinkTo: ../target
//
// Extraction is confined to the target directory with os.Root: entry names
// that are absolute or contain ".." are rejected, and nothing is ever written
// through a symbolic link that points outside the directory. Symlink targets
// themselves are stored verbatim (procfs fixtures contain links such as
// "exe -> /usr/bin/vim" whose text is what tests read).
package ttar

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
)

// Keywords of the format, as written by the reference ttar script.
const (
	kwPath      = "Path: "
	kwLines     = "Lines: "
	kwMode      = "Mode: "
	kwDirectory = "Directory: "
	kwSymlinkTo = "SymlinkTo: "

	tokNull   = "NULLBYTE"
	tokEOF    = "EOF"
	escNull   = `\NULLBYTE`
	escEOF    = `\EOF`
	dirPerm   = 0o755
	filePerm  = 0o644
	ownerRWX  = 0o700
	permMask  = 0o777
	maxLines  = 1 << 31 // far beyond any fixture; bounds the counter, not memory
	modeLimit = 0o7777
)

// ErrUnsafePath is wrapped by the error Extract returns for an entry whose
// name is absolute or climbs out of the target directory with "..".
var ErrUnsafePath = errors.New("path escapes the target directory")

// Extract unpacks the ttar archive read from r into dir, creating dir if
// needed. It stops at the first malformed entry; the error names the archive
// line. Entries already extracted stay on disk.
func Extract(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return fmt.Errorf("ttar: create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("ttar: open %s: %w", dir, err)
	}
	defer root.Close()

	x := extractor{root: root, in: bufio.NewReader(r)}
	if err := x.run(); err != nil {
		return fmt.Errorf("ttar: extract into %s: %w", dir, err)
	}
	return nil
}

// extractor holds the state of one extraction: the entry the last Path: or
// Directory: line named, and where we are in the archive.
type extractor struct {
	root   *os.Root
	in     *bufio.Reader
	lineNo int

	cur   string // cleaned name of the current entry, "" before the first
	isDir bool   // cur came from Directory: (Lines:/SymlinkTo: not allowed)
}

// readLine returns the next line without its newline. ok is false at the end
// of the input; a last line without a newline is still returned.
func (x *extractor) readLine() (line string, ok bool, err error) {
	s, err := x.in.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false, err
	}
	if s == "" && errors.Is(err, io.EOF) {
		return "", false, nil
	}
	x.lineNo++
	return strings.TrimSuffix(s, "\n"), true, nil
}

func (x *extractor) run() error {
	for {
		line, ok, err := x.readLine()
		if err != nil {
			return fmt.Errorf("read line %d: %w", x.lineNo+1, err)
		}
		if !ok {
			return nil
		}
		if err := x.entryLine(line); err != nil {
			return fmt.Errorf("line %d: %w", x.lineNo, err)
		}
	}
}

// entryLine handles one line outside file content.
func (x *extractor) entryLine(line string) error {
	switch {
	case strings.HasPrefix(line, "#"):
		return nil
	case strings.HasPrefix(line, kwPath):
		name, err := cleanName(strings.TrimPrefix(line, kwPath))
		if err != nil {
			return err
		}
		if name == "." {
			return fmt.Errorf("entry %q names the target directory itself", truncate(line))
		}
		if err := x.removeExisting(name); err != nil {
			return err
		}
		x.cur, x.isDir = name, false
		return nil
	case strings.HasPrefix(line, kwDirectory):
		name, err := cleanName(strings.TrimPrefix(line, kwDirectory))
		if err != nil {
			return err
		}
		if err := x.root.MkdirAll(name, dirPerm); err != nil {
			return fmt.Errorf("directory %s: %w", name, err)
		}
		x.cur, x.isDir = name, true
		return nil
	case strings.HasPrefix(line, kwLines):
		if x.cur == "" || x.isDir {
			return errors.New("keyword Lines: without a preceding Path:")
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(line, kwLines), 10, 32)
		if err != nil || n > maxLines {
			return fmt.Errorf("file %s: bad line count %q", x.cur, strings.TrimPrefix(line, kwLines))
		}
		return x.writeFile(x.cur, int(n))
	case strings.HasPrefix(line, kwSymlinkTo):
		if x.cur == "" || x.isDir {
			return errors.New("keyword SymlinkTo: without a preceding Path:")
		}
		target := strings.TrimPrefix(line, kwSymlinkTo)
		if err := x.mkParent(x.cur); err != nil {
			return err
		}
		if err := x.root.Symlink(target, x.cur); err != nil {
			return fmt.Errorf("symlink %s -> %s: %w", x.cur, target, err)
		}
		return nil
	case strings.HasPrefix(line, kwMode):
		if x.cur == "" {
			return errors.New("keyword Mode: without a preceding Path: or Directory:")
		}
		m, err := strconv.ParseUint(strings.TrimPrefix(line, kwMode), 8, 32)
		if err != nil || m > modeLimit {
			return fmt.Errorf("%s: bad mode %q", x.cur, strings.TrimPrefix(line, kwMode))
		}
		perm := fs.FileMode(m) & permMask
		if x.isDir {
			// The owner keeps rwx on directories so that later entries can be
			// written into them and a test's TempDir can be removed when
			// tests do not run as root.
			perm |= ownerRWX
		}
		if err := x.root.Chmod(x.cur, perm); err != nil {
			return fmt.Errorf("chmod %s: %w", x.cur, err)
		}
		return nil
	default:
		return fmt.Errorf("unknown keyword in %q", truncate(line))
	}
}

// removeExisting mirrors the reference script: a Path: entry replaces a file,
// link or empty directory of the same name.
func (x *extractor) removeExisting(name string) error {
	if _, err := x.root.Lstat(name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("path %s: %w", name, err)
	}
	if err := x.root.Remove(name); err != nil {
		return fmt.Errorf("replace %s: %w", name, err)
	}
	return nil
}

func (x *extractor) mkParent(name string) error {
	parent := path.Dir(name)
	if parent == "." {
		return nil
	}
	if err := x.root.MkdirAll(parent, dirPerm); err != nil {
		return fmt.Errorf("directory %s: %w", parent, err)
	}
	return nil
}

// writeFile copies the next n archive lines, decoded, into name.
func (x *extractor) writeFile(name string, n int) (err error) {
	if err := x.mkParent(name); err != nil {
		return err
	}
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", name, cerr)
		}
	}()
	w := bufio.NewWriter(f)
	for i := range n {
		line, ok, rerr := x.readLine()
		if rerr != nil {
			return fmt.Errorf("file %s: read line %d: %w", name, x.lineNo+1, rerr)
		}
		if !ok {
			return fmt.Errorf("file %s: archive ends after %d of %d lines", name, i, n)
		}
		content, newline := DecodeLine(line)
		if _, err := w.Write(content); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		if newline {
			if err := w.WriteByte('\n'); err != nil {
				return fmt.Errorf("write %s: %w", name, err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// DecodeLine turns one content line of an archive into the bytes it stands
// for: NULLBYTE becomes a zero byte, \NULLBYTE and \EOF the literal words,
// and an unescaped EOF is dropped and means the line had no newline
// (newline is false). Like the reference script, an EOF at the very start of
// a line is literal text, since the writer only appends it after content.
func DecodeLine(line string) (content []byte, newline bool) {
	newline = true
	out := make([]byte, 0, len(line))
	for i := 0; i < len(line); {
		rest := line[i:]
		switch {
		case strings.HasPrefix(rest, escNull):
			out = append(out, tokNull...)
			i += len(escNull)
		case strings.HasPrefix(rest, escEOF):
			out = append(out, tokEOF...)
			i += len(escEOF)
		case strings.HasPrefix(rest, tokNull):
			out = append(out, 0)
			i += len(tokNull)
		case i > 0 && strings.HasPrefix(rest, tokEOF):
			newline = false
			i += len(tokEOF)
		default:
			out = append(out, line[i])
			i++
		}
	}
	return out, newline
}

// cleanName validates an entry name and returns it cleaned. Names are
// slash-separated and relative; any ".." element is refused outright rather
// than resolved, because no fixture needs it and it is how archives escape.
func cleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty entry name")
	case strings.ContainsRune(name, 0):
		return "", fmt.Errorf("entry name %q contains a zero byte", truncate(name))
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("entry %q: %w", truncate(name), ErrUnsafePath)
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("entry %q: %w", truncate(name), ErrUnsafePath)
		}
	}
	return path.Clean(name), nil
}

// truncate keeps error messages readable when an archive line is huge.
func truncate(s string) string {
	const limit = 120
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
