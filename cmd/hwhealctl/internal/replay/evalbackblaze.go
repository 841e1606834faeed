package replay

import (
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Spread is the distribution of a set of numbers: quantiles by linear
// interpolation between the closest ranks.
type Spread struct {
	N      int     `json:"n"`
	Min    float64 `json:"min"`
	P25    float64 `json:"p25"`
	Median float64 `json:"median"`
	P75    float64 `json:"p75"`
	Max    float64 `json:"max"`
}

func spreadOf(xs []float64) *Spread {
	if len(xs) == 0 {
		return nil
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	q := func(p float64) float64 {
		pos := p * float64(len(s)-1)
		lo := int(math.Floor(pos))
		if lo+1 >= len(s) {
			return s[lo]
		}
		return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
	}
	return &Spread{N: len(s), Min: s[0], P25: q(0.25), Median: q(0.5), P75: q(0.75), Max: s[len(s)-1]}
}

// DriveFigures is how well faults of one class (or of every counted
// class, Class "") foretold drive failures.
type DriveFigures struct {
	Class string `json:"class,omitempty"`
	// FailedFlagged: failed drives with a fault on a day strictly before
	// their failure day. OnFailureDay: failed drives whose first fault came
	// on the failure day itself (too late to act; not in FailedFlagged).
	FailedFlagged int `json:"failed_flagged"`
	OnFailureDay  int `json:"failed_flagged_on_failure_day"`
	// HealthyFlagged: drives that never failed with a fault on any day.
	HealthyFlagged int `json:"healthy_flagged"`
	// Recall is FailedFlagged over all failed drives; HealthyFlaggedRate
	// HealthyFlagged over all healthy drives. Precision is FailedFlagged
	// over all flagged drives: it depends on the mix of failed and healthy
	// drives in the input, which a sample does not keep. nil when the
	// denominator is 0.
	Recall             *float64 `json:"recall"`
	HealthyFlaggedRate *float64 `json:"healthy_flagged_rate"`
	Precision          *float64 `json:"precision"`
	// LeadDays: for each failed drive flagged in time, the days from its
	// first fault to its failure day. The input's first day bounds it: a
	// drive flagged on the first day it appears may have been flaggable
	// long before.
	LeadDays *Spread `json:"lead_days,omitempty"`
}

// DriveReport is what EvalBackblaze measured.
type DriveReport struct {
	Files []string `json:"files"`
	ReplayStats
	Failed int `json:"failed_drives"`
	// FailedWithHistory: failed drives with at least one row before their
	// failure day (the others cannot be flagged in time).
	FailedWithHistory int `json:"failed_with_history"`
	Healthy           int `json:"healthy_drives"`
	Faults            int `json:"faults"` // faults of counted classes, all rows
	// Flagged counts a fault of any counted class; Classes has one entry
	// per class raised, sorted.
	Flagged DriveFigures   `json:"flagged"`
	Classes []DriveFigures `json:"classes,omitempty"`
}

// classTally accumulates one class's figures.
type classTally struct {
	failedFlagged, onDay, healthyFlagged int
	lead                                 []float64
}

func (c *classTally) figures(class string, failed, healthy int) DriveFigures {
	ratio := func(n, d int) *float64 {
		if d == 0 {
			return nil
		}
		v := float64(n) / float64(d)
		return &v
	}
	return DriveFigures{
		Class: class, FailedFlagged: c.failedFlagged, OnFailureDay: c.onDay, HealthyFlagged: c.healthyFlagged,
		Recall: ratio(c.failedFlagged, failed), HealthyFlaggedRate: ratio(c.healthyFlagged, healthy),
		Precision: ratio(c.failedFlagged, c.failedFlagged+c.healthyFlagged), LeadDays: spreadOf(c.lead),
	}
}

// ClassFilter tells whether a fault class counts: every class when the
// list is empty, else a class listed or one under a listed prefix ending
// in "." ("disk." counts disk.media and disk.io_error).
func ClassFilter(classes []string) func(string) bool {
	if len(classes) == 0 {
		return func(string) bool { return true }
	}
	return func(c string) bool {
		for _, want := range classes {
			if c == want || strings.HasSuffix(want, ".") && strings.HasPrefix(c, want) {
				return true
			}
		}
		return false
	}
}

// EvalBackblaze replays Backblaze Drive Stats files (a directory stands for
// every *.csv under it) drive by drive, each drive's days in order through
// a fresh evaluator from ev (node = the serial), and measures which faults
// foretold a failure: a drive failed when one of its rows has failure=1,
// on the first such day, and is healthy otherwise. Only faults of the
// classes listed count (ClassFilter; none listed: all).
//
// Memory is ReplayBackblaze's index plus one drive's evaluator at a time.
func EvalBackblaze(files []string, ev func() Evaluator, classes []string) (DriveReport, error) {
	files, err := ExpandFiles(files, ".csv")
	if err != nil {
		return DriveReport{}, err
	}
	rep := DriveReport{Files: files}
	counts := ClassFilter(classes)
	all := &classTally{}
	per := map[string]*classTally{}

	// The drive being read.
	var (
		serial    string
		e         Evaluator
		failDay   time.Time
		history   bool
		firstFlag map[string]time.Time // "" = any counted class
	)
	finish := func() {
		if serial == "" {
			return
		}
		failed := !failDay.IsZero()
		if failed {
			rep.Failed++
			if history {
				rep.FailedWithHistory++
			}
		} else {
			rep.Healthy++
		}
		for class, day := range firstFlag {
			t := all
			if class != "" {
				if per[class] == nil {
					per[class] = &classTally{}
				}
				t = per[class]
			}
			switch {
			case !failed:
				t.healthyFlagged++
			case day.Before(failDay):
				t.failedFlagged++
				t.lead = append(t.lead, failDay.Sub(day).Hours()/24)
			case day.Equal(failDay):
				t.onDay++
			}
		}
	}
	st, err := ReplayBackblaze(files, func(r Row) error {
		if r.Serial != serial {
			finish()
			serial, e, failDay, history, firstFlag = r.Serial, ev(), time.Time{}, false, map[string]time.Time{}
		}
		if !failDay.IsZero() {
			return nil // after the failure: not what is measured
		}
		if r.Failure {
			failDay = r.Date
		} else {
			history = true
		}
		for _, f := range e.Observe(r.Serial, r.Observation) {
			class := f.GetFaultClass()
			if !counts(class) {
				continue
			}
			rep.Faults++
			for _, k := range []string{"", class} {
				if _, ok := firstFlag[k]; !ok {
					firstFlag[k] = r.Date
				}
			}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	finish()
	rep.ReplayStats = st
	rep.Flagged = all.figures("", rep.Failed, rep.Healthy)
	for _, class := range slices.Sorted(maps.Keys(per)) {
		rep.Classes = append(rep.Classes, per[class].figures(class, rep.Failed, rep.Healthy))
	}
	return rep, nil
}

// ExpandFiles replaces each directory in paths with the files under it
// whose names end in one of exts (sorted, recursively); other paths stay
// as given.
func ExpandFiles(paths []string, exts ...string) ([]string, error) {
	var out []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			out = append(out, p) // opening it reports the error
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && slices.ContainsFunc(exts, func(ext string) bool { return strings.HasSuffix(d.Name(), ext) }) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.Sort(found)
		out = append(out, found...)
	}
	return out, nil
}
