package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hwheal/hwheal/pkg/kernlog"
	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Rules is what Replay runs.
type Rules struct {
	// Match returns the faults one kernel log record proves (agent/detect's
	// RuleSet.Match); nil raises nothing from kernel logs.
	Match func(kernlog.Record) []*hwhealv1.Fault
	// NewEvaluator makes an evaluator of observations; nil raises nothing
	// from smartctl or Backblaze input.
	NewEvaluator func() Evaluator
}

// Options configures Replay.
type Options struct {
	// Format of every file; FormatAuto (or "") detects each file's.
	Format Format
	// Parser reads kernel log text lines (its clock places yearless
	// syslog timestamps).
	Parser kernlog.Parser
	// Stdin is what the file name "-" reads.
	Stdin io.Reader
	// KeepGoing: a smartctl file that cannot be read is counted in
	// Stats.Skipped and Stats.Errors instead of stopping the replay.
	KeepGoing bool
}

// SmartctlNode is the node name smartctl files are evaluated under: one
// evaluator sees them all, in the order given, so a drive's files replayed
// oldest first show its counters grow.
const SmartctlNode = "replay"

// Stats counts what Replay read.
type Stats struct {
	Records      int // kernel log records
	Observations int // smartctl documents and Backblaze rows
	Faults       int
	// Skipped counts kernel log lines that were not records, by
	// kernlog.SkipReason, and smartctl files that could not be read
	// (KeepGoing), as "smartctl_malformed", "smartctl_no_device" or
	// "smartctl_failed".
	Skipped map[string]uint64
	Errors  []error // the smartctl files skipped, with why
	// Drives and Duplicates: Backblaze drives and duplicate rows skipped.
	Drives, Duplicates int
}

// headSize is how much of a file DetectFormat sees.
const headSize = 4096

// Replay reads each file as opt.Format (or the format DetectFormat finds)
// and calls emit for every fault raised: kernel log records go through
// rules.Match; smartctl documents and Backblaze rows become the agent's
// observations (ReadSmartctl, ReadBackblaze) and go through an evaluator
// from rules.NewEvaluator: one for all smartctl files (node SmartctlNode),
// a fresh one for each Backblaze drive (node = serial), whose days are
// replayed in order across all the Backblaze files given. Kernel logs and
// smartctl files are replayed in the order given, the Backblaze files
// after them.
func Replay(files []string, rules Rules, opt Options, emit func(Record) error) (Stats, error) {
	st := Stats{Skipped: map[string]uint64{}}
	format := opt.Format
	if format == "" {
		format = FormatAuto
	}
	if _, err := ParseFormat(string(format)); err != nil {
		return st, err
	}
	var smartEv Evaluator
	var bb []bbSource
	for _, name := range files {
		var r io.Reader
		var at io.ReaderAt
		var size int64
		if name == "-" {
			if opt.Stdin == nil {
				return st, errors.New("-: no standard input")
			}
			r = opt.Stdin
		} else {
			f, err := os.Open(name)
			if err != nil {
				return st, err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return st, fmt.Errorf("%s: %w", name, err)
			}
			r, at, size = f, f, fi.Size()
		}
		br := bufio.NewReaderSize(r, 64<<10)
		ff := format
		if ff == FormatAuto {
			head, _ := br.Peek(headSize)
			ff = DetectFormat(name, head)
		}
		switch ff {
		case FormatBackblaze:
			if at == nil {
				// Standard input cannot be read twice: hold it.
				data, err := io.ReadAll(br)
				if err != nil {
					return st, fmt.Errorf("read %s: %w", name, err)
				}
				at, size = bytes.NewReader(data), int64(len(data))
			}
			bb = append(bb, bbSource{name: name, r: at, size: size})
		case FormatSmartctl:
			o, err := ReadSmartctl(br, name)
			if err != nil {
				if !opt.KeepGoing {
					return st, err
				}
				st.Skipped[smartctlSkipReason(err)]++
				st.Errors = append(st.Errors, err)
				continue
			}
			st.Observations++
			if rules.NewEvaluator == nil {
				continue
			}
			if smartEv == nil {
				smartEv = rules.NewEvaluator()
			}
			for _, f := range smartEv.Observe(SmartctlNode, o) {
				st.Faults++
				if err := emit(ObservationRecord(name, 0, FormatSmartctl, o, f)); err != nil {
					return st, err
				}
			}
		default:
			kf, _ := ff.Kernlog()
			if err := replayKernel(name, br, kf, opt.Parser, rules.Match, &st, emit); err != nil {
				return st, err
			}
		}
	}
	if len(bb) == 0 {
		return st, nil
	}
	var ev Evaluator
	serial := ""
	bst, err := replayBackblaze(bb, func(row Row) error {
		st.Observations++
		if rules.NewEvaluator == nil {
			return nil
		}
		if ev == nil || row.Serial != serial {
			ev, serial = rules.NewEvaluator(), row.Serial
		}
		for _, f := range ev.Observe(row.Serial, row.Observation) {
			st.Faults++
			if err := emit(ObservationRecord(row.File, row.Line, FormatBackblaze, row.Observation, f)); err != nil {
				return err
			}
		}
		return nil
	})
	st.Drives, st.Duplicates = bst.Drives, bst.Duplicates
	return st, err
}

func smartctlSkipReason(err error) string {
	switch {
	case errors.Is(err, smart.ErrMalformed):
		return "smartctl_malformed"
	case errors.Is(err, smart.ErrNoDevice):
		return "smartctl_no_device"
	case errors.Is(err, smart.ErrSmartctlFailed):
		return "smartctl_failed"
	default:
		return "smartctl_other"
	}
}

// replayKernel is `rules replay` on one kernel log.
func replayKernel(name string, r io.Reader, f kernlog.Format, p kernlog.Parser, match func(kernlog.Record) []*hwhealv1.Fault,
	st *Stats, emit func(Record) error) error {
	sc := kernlog.NewScanner(r, f)
	sc.SetParser(p)
	defer func() {
		for k, v := range sc.Skipped() {
			st.Skipped[k] += v
		}
	}()
	for sc.Scan() {
		st.Records++
		if match == nil {
			continue
		}
		rec := sc.Record()
		for _, flt := range match(rec) {
			st.Faults++
			if err := emit(KernelRecord(name, sc.Line(), sc.Format(), rec, flt)); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}
