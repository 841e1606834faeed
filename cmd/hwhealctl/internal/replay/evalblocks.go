package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/hwheal/hwheal/pkg/kernlog"
)

// LabeledBlock is one dmesg excerpt of the lkml_archives corpus
// (lkml_archives/*.blocks.jsonl, and the slimmed copy
// agent/detect/testdata/lkml_blocks.jsonl.gz): consecutive lines quoted
// in one mail, and the categories the corpus's regex found in them. It
// carries no fault label of its own.
type LabeledBlock struct {
	Categories []string
	Lines      []string
	// NLines is the excerpt's length in the mail: the corpus keeps the
	// first 200 lines of longer ones.
	NLines int
	URL    string
	File   string
	Row    int // 1-based line of the JSONL file
}

type blockJSON struct {
	Categories []string `json:"categories"`
	Lines      []string `json:"lines"`
	NLines     *int     `json:"n_lines"`
	LoreURL    string   `json:"lore_url"`
	URL        string   `json:"url"`
}

// ReadBlocks reads dmesg excerpts, one JSON object a line with fields
// categories and lines (and n_lines, the excerpt's length, which may
// exceed the lines kept but not fall short of them), and calls fn
// for each. Input starting with gzip's magic is decompressed. name names
// the input in errors.
func ReadBlocks(r io.Reader, name string, fn func(LabeledBlock) error) error {
	return scanLines(r, name, func(line string, row int) error {
		b := bytes.TrimSpace([]byte(line))
		if len(b) == 0 {
			return nil
		}
		var j blockJSON
		if err := json.Unmarshal(b, &j); err != nil {
			return fmt.Errorf("%s: line %d: %w", name, row, err)
		}
		switch {
		case len(j.Lines) == 0:
			return fmt.Errorf("%s: line %d: want lines (a block of dmesg lines)", name, row)
		case len(j.Categories) == 0 || strings.TrimSpace(strings.Join(j.Categories, "")) == "":
			return fmt.Errorf("%s: line %d: want categories", name, row)
		case j.NLines != nil && *j.NLines < len(j.Lines):
			return fmt.Errorf("%s: line %d: n_lines %d but %d lines", name, row, *j.NLines, len(j.Lines))
		}
		n := len(j.Lines)
		if j.NLines != nil {
			n = *j.NLines
		}
		return fn(LabeledBlock{Categories: j.Categories, Lines: j.Lines, NLines: n, URL: cmpOr(j.LoreURL, j.URL), File: name, Row: row})
	})
}

// lineLabels is what the lkml line records say about each distinct
// kernel message: the verdict (after disputes) and, for a fault, the
// categories it was filed under. The line files sample the corpus's
// excerpts and keep each message once whatever its timestamp, so the key
// is the message as pkg/kernlog reads it.
type lineLabels struct {
	p       kernlog.Parser
	verdict map[string]string              // key -> fault, benign or "" (detail, not-log)
	cats    map[string]map[string]struct{} // key -> categories of its fault records
}

func newLineLabels(p kernlog.Parser) *lineLabels {
	return &lineLabels{p: p, verdict: map[string]string{}, cats: map[string]map[string]struct{}{}}
}

// key is the message of a quoted line: the quote's indentation,
// timestamps, caller ids, syslog prefixes and surrounding blanks cut.
func (ll *lineLabels) key(line string) string {
	line = strings.TrimSpace(line)
	rec, _, err := ll.p.ParseLine(line, kernlog.FormatAuto)
	if err != nil && rec.Message == "" {
		return strings.TrimSpace(line)
	}
	return strings.TrimSpace(rec.Message)
}

// add records one line record's adjusted verdict. A message is a fault
// when any of its records is; "" (a detail or not-log line) beats benign,
// as it says the message belongs to a report.
func (ll *lineLabels) add(line, category, verdict string) {
	k := ll.key(line)
	if k == "" {
		return
	}
	prev, seen := ll.verdict[k]
	switch {
	case verdict == VerdictFault:
		ll.verdict[k] = VerdictFault
		if ll.cats[k] == nil {
			ll.cats[k] = map[string]struct{}{}
		}
		ll.cats[k][category] = struct{}{}
	case !seen, prev == VerdictBenign && verdict == "":
		ll.verdict[k] = verdict
	}
}

// blockLabel is a block's reading: fault (with the categories of its
// fault lines), benign (every line labeled, none a fault) or unlabeled
// (no fault line, and lines the line records do not label or that are
// details of a report).
type blockLabel struct {
	verdict string // VerdictFault, VerdictBenign or ""
	cats    map[string]struct{}
}

func (ll *lineLabels) label(b LabeledBlock) blockLabel {
	out := blockLabel{verdict: VerdictBenign}
	for _, l := range b.Lines {
		k := ll.key(l)
		if k == "" {
			continue // a blank line of the quote
		}
		v, ok := ll.verdict[k]
		switch {
		case v == VerdictFault:
			out.verdict = VerdictFault
			if out.cats == nil {
				out.cats = map[string]struct{}{}
			}
			for c := range ll.cats[k] {
				out.cats[c] = struct{}{}
			}
		case (!ok || v == "") && out.verdict == VerdictBenign:
			out.verdict = ""
		}
	}
	return out
}
