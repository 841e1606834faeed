package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// KernelFileKind is how EvalKernelLog reads a file and where its labels
// come from.
type KernelFileKind string

// The kinds of labeled kernel-log file EvalKernelLog reads, each reported
// as its own group.
const (
	// KindLines: lkml_archives line records (*.jsonl[.gz]): category,
	// line, fault_keyword.
	KindLines KernelFileKind = "lkml-lines"
	// KindBlocks: lkml_archives dmesg excerpts (*.blocks.jsonl[.gz]):
	// categories and lines, labeled through the line records (see
	// EvalKernelLog).
	KindBlocks KernelFileKind = "lkml-blocks"
	// KindNPD: a node-problem-detector kernel log sample
	// (test/kernel_log_generator/problems/*), labeled by NPD's own kmsg
	// monitor rules from the config/ folder of the same checkout.
	KindNPD KernelFileKind = "npd"
	// KindBGL: loghub's BlueGene/L log (BGL*.log), labeled by its alert
	// column.
	KindBGL KernelFileKind = "bgl"
	// KindRaw: a saved kernel log (dmesg, dmesg -T/-x/--time-format iso,
	// raw /dev/kmsg, syslog), labeled by GPUDCatalog.
	KindRaw KernelFileKind = "gpud"
)

// groupNames are the report's names of the kinds, in report order.
var groupOrder = []KernelFileKind{KindLines, KindBlocks, KindRaw, KindNPD, KindBGL}

// KernelFile is an input of EvalKernelLog and how it is read.
type KernelFile struct {
	Path string         `json:"path"`
	Kind KernelFileKind `json:"kind"`
}

// bglLine is the shape of a loghub BGL line: alert tag or "-", unix time,
// date, node, time with microseconds, then node, type, component, level
// and the message.
var bglLine = regexp.MustCompile(`^(?:-|[A-Z][A-Z0-9_]*) \d+ \d{4}\.\d\d\.\d\d \S+ \d{4}-\d\d-\d\d-\d\d\.\d\d\.\d\d\.\d+ `)

// kindByName tells a file's kind from its name and path alone: how a
// directory walk picks files (anything else in the tree - nvidia-smi
// output, sysfs fixtures, unlabeled loghub logs, NPD's configs - is
// skipped).
func kindByName(path string) (KernelFileKind, bool) {
	base := filepath.Base(path)
	slash := "/" + filepath.ToSlash(filepath.Dir(path)) + "/"
	switch {
	case strings.HasSuffix(base, ".blocks.jsonl") || strings.HasSuffix(base, ".blocks.jsonl.gz"):
		return KindBlocks, true
	case strings.HasSuffix(base, ".jsonl") || strings.HasSuffix(base, ".jsonl.gz"):
		return KindLines, true
	case strings.HasSuffix(slash, "/kernel_log_generator/problems/"):
		return KindNPD, true
	case strings.HasPrefix(base, "BGL") && strings.HasSuffix(base, ".log"):
		return KindBGL, true
	case strings.HasPrefix(base, "dmesg") || strings.HasPrefix(base, "kmsg"):
		return KindRaw, true
	}
	return "", false
}

// kindByContent tells the kind of a file named on its own whose name says
// nothing, from its first line: a BGL line, a JSON object with "lines"
// (blocks) or "line" (line records); anything else is a saved kernel log.
func kindByContent(head []byte) KernelFileKind {
	first, _, _ := bytes.Cut(head, []byte("\n"))
	first = bytes.TrimSpace(first)
	switch {
	case bglLine.Match(first):
		return KindBGL
	case len(first) > 0 && first[0] == '{':
		var probe map[string]json.RawMessage
		// The first line may be cut short by the head: a failed decode
		// still tells a JSON record by its opening bytes.
		_ = json.Unmarshal(first, &probe)
		if _, ok := probe["lines"]; ok || bytes.Contains(first, []byte(`"lines"`)) {
			return KindBlocks
		}
		return KindLines
	}
	return KindRaw
}

// ClassifyKernelFiles expands the arguments of `rules eval` for kernel
// logs. A directory stands for the files under it that kindByName
// recognises (lkml_archives' *.jsonl and *.blocks.jsonl, NPD's
// test/kernel_log_generator/problems/*, loghub's BGL*.log, gpud's dmesg*
// and kmsg* logs); skipped counts the other files. A file named on its
// own is read by its name, else by its first line (kindByContent). Files
// come back in argument order, each directory's sorted; a file that
// cannot be opened is kept, for its reader to report.
func ClassifyKernelFiles(paths []string) (files []KernelFile, skipped int, err error) {
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			kind, ok := kindByName(p)
			if !ok {
				kind = KindRaw
				if head, err := readHead(p, 4096); err == nil {
					kind = kindByContent(head)
				}
			}
			files = append(files, KernelFile{p, kind})
			continue
		}
		var found []KernelFile
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			if kind, ok := kindByName(path); ok {
				found = append(found, KernelFile{path, kind})
			} else {
				skipped++
			}
			return nil
		})
		if err != nil {
			return nil, skipped, err
		}
		slices.SortFunc(found, func(a, b KernelFile) int { return strings.Compare(a.Path, b.Path) })
		files = append(files, found...)
	}
	return files, skipped, nil
}

// readHead returns up to n bytes from the start of a file, gunzipped if
// it is gzip.
func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := maybeGunzip(bufio.NewReader(f), path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(r, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:k], nil
}

// maybeGunzip returns a reader of br's content, decompressed when it
// starts with gzip's magic.
func maybeGunzip(br *bufio.Reader, name string) (io.ReadCloser, error) {
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return zr, nil
	}
	return io.NopCloser(br), nil
}

// scanLines calls fn with each line of r (1-based row, without the line
// end), gunzipping r when it is gzip. A line longer than maxLine is an
// error naming name and the row.
func scanLines(r io.Reader, name string, fn func(line string, row int) error) error {
	rc, err := maybeGunzip(bufio.NewReaderSize(r, 64<<10), name)
	if err != nil {
		return err
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	row := 0
	for sc.Scan() {
		row++
		if err := fn(strings.TrimSuffix(sc.Text(), "\r"), row); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s: line %d: longer than %d bytes: %w", name, row+1, maxLine, err)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// maxLine bounds one line of any labeled input: a JSON block record
// holds a whole dmesg excerpt.
const maxLine = 4 << 20

// SplitEvalArgs sorts the arguments of `rules eval` into Backblaze CSV
// files and kernel-log inputs for EvalKernelLog. A file named *.csv is
// Backblaze CSV; any other file is a kernel-log input. A directory gives
// the *.csv files under it whose header is Backblaze's (so loghub's
// structured CSVs beside its logs are not taken for drive data), and
// itself as a kernel-log input when it holds any file
// ClassifyKernelFiles would read.
func SplitEvalArgs(args []string) (csvs, kernel []string, err error) {
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil || !fi.IsDir() {
			if strings.HasSuffix(a, ".csv") {
				csvs = append(csvs, a)
			} else {
				kernel = append(kernel, a)
			}
			continue
		}
		all, err := ExpandFiles([]string{a}, ".csv")
		if err != nil {
			return nil, nil, err
		}
		for _, c := range all {
			head, err := readHead(c, 4096)
			if err != nil {
				return nil, nil, err
			}
			if DetectFormat(c, head) == FormatBackblaze {
				csvs = append(csvs, c)
			}
		}
		files, _, err := ClassifyKernelFiles([]string{a})
		if err != nil {
			return nil, nil, err
		}
		if len(files) > 0 {
			kernel = append(kernel, a)
		}
	}
	return csvs, kernel, nil
}
