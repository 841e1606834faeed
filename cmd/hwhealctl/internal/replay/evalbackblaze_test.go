package replay

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func ptr(v float64) *float64 { return &v }

// TestEvalBackblaze measures the baseline rule and the "197 > 0 or 5
// growing" rule on the copied slice. The expected figures were worked out
// from the CSV files with a separate script (Python's csv module, per
// drive: the first failure day, the first flagged day, the days between):
//
//	drives: 7 failed (one seen only on its failure day, 9VS3FM1J), 9 healthy
//	in the histories, 6 more healthy ones in the daily file.
//	baseline: failed flagged 4 (MJ1323YNG1STUC, whose 44 reallocated
//	sectors never change, 6XW00YE0, 6XW049WP, 6XW04CMF) with leads 23, 9,
//	7, 6 days; 9VS3FM1J flagged on its failure day only; healthy flagged 4
//	of 9 (6XW001M5, 9VS1EQ54 with constant counts; 6XW0PVNS, 9VS29FBP),
//	5 of 15 with the daily file (MJ0351YNG9WJSA: 2 reallocated).
//	growth: failed flagged 3 (leads 9, 7, 6), healthy 2 (6XW0PVNS, 9VS29FBP).
//	rows flagged (faults) up to each drive's failure day: baseline 203
//	in the histories, 204 with the daily file; growth 55.
func TestEvalBackblaze(t *testing.T) {
	histories := []string{bbFailed, bbHealthy}
	all := []string{bbFailed, bbHealthy, bbDaily}
	for _, tc := range []struct {
		name    string
		files   []string
		ev      func() Evaluator
		classes []string
		want    DriveReport
	}{
		{
			name: "baseline", files: histories, ev: func() Evaluator { return BaselineRule{} },
			want: DriveReport{
				ReplayStats: ReplayStats{Rows: 412, Drives: 16}, Failed: 7, FailedWithHistory: 6, Healthy: 9, Faults: 203,
				Flagged: DriveFigures{FailedFlagged: 4, OnFailureDay: 1, HealthyFlagged: 4,
					Recall: ptr(4.0 / 7), HealthyFlaggedRate: ptr(4.0 / 9), Precision: ptr(0.5),
					LeadDays: &Spread{N: 4, Min: 6, P25: 6.75, Median: 8, P75: 12.5, Max: 23}},
			},
		},
		{
			name: "baseline with the daily file", files: all, ev: func() Evaluator { return BaselineRule{} },
			want: DriveReport{
				ReplayStats: ReplayStats{Rows: 418, Drives: 22, Duplicates: 14}, Failed: 7, FailedWithHistory: 6, Healthy: 15, Faults: 204,
				Flagged: DriveFigures{FailedFlagged: 4, OnFailureDay: 1, HealthyFlagged: 5,
					Recall: ptr(4.0 / 7), HealthyFlaggedRate: ptr(5.0 / 15), Precision: ptr(4.0 / 9),
					LeadDays: &Spread{N: 4, Min: 6, P25: 6.75, Median: 8, P75: 12.5, Max: 23}},
			},
		},
		{
			name: "growth", files: all, ev: newGrowthRule,
			want: DriveReport{
				ReplayStats: ReplayStats{Rows: 418, Drives: 22, Duplicates: 14}, Failed: 7, FailedWithHistory: 6, Healthy: 15, Faults: 55,
				Flagged: DriveFigures{FailedFlagged: 3, HealthyFlagged: 2,
					Recall: ptr(3.0 / 7), HealthyFlaggedRate: ptr(2.0 / 15), Precision: ptr(0.6),
					LeadDays: &Spread{N: 3, Min: 6, P25: 6.5, Median: 7, P75: 8, Max: 9}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EvalBackblaze(tc.files, tc.ev, tc.classes)
			if err != nil {
				t.Fatal(err)
			}
			classes := got.Classes
			got.Files, got.Classes = nil, nil
			tc.want.Flagged.Class = ""
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %s\nwant %s", describeReport(got), describeReport(tc.want))
			}
			// One class raised: its figures are the total's.
			if len(classes) != 1 {
				t.Fatalf("classes %+v", classes)
			}
			c := classes[0]
			c.Class = ""
			if !reflect.DeepEqual(c, got.Flagged) {
				t.Errorf("class figures %+v, total %+v", c, got.Flagged)
			}
		})
	}
}

// TestEvalBackblazeClasses runs both rules as one evaluator: the figures
// per class are each rule's own, the total is their union, and a class
// filter keeps one.
func TestEvalBackblazeClasses(t *testing.T) {
	files := []string{"testdata/backblaze"} // the directory: all three files
	ev := func() Evaluator { return both{newGrowthRule()} }
	got, err := EvalBackblaze(files, ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Files) != 3 || len(got.Classes) != 2 || got.Classes[0].Class != BaselineClass || got.Classes[1].Class != growthClass {
		t.Fatalf("files %v classes %+v", got.Files, got.Classes)
	}
	if c := got.Classes[0]; c.FailedFlagged != 4 || c.HealthyFlagged != 5 {
		t.Errorf("baseline class %+v", c)
	}
	if c := got.Classes[1]; c.FailedFlagged != 3 || c.HealthyFlagged != 2 {
		t.Errorf("growth class %+v", c)
	}
	// The growth rule flags nothing the baseline does not, and not sooner.
	if f := got.Flagged; f.FailedFlagged != 4 || f.HealthyFlagged != 5 || f.LeadDays.Max != 23 {
		t.Errorf("union %+v", f)
	}
	only, err := EvalBackblaze(files, ev, []string{"disk.media_"}) // a prefix must end in "."
	if err != nil {
		t.Fatal(err)
	}
	if only.Faults != 0 || only.Flagged.FailedFlagged != 0 {
		t.Errorf("filter disk.media_ kept %+v", only.Flagged)
	}
	only, err = EvalBackblaze(files, ev, []string{growthClass})
	if err != nil {
		t.Fatal(err)
	}
	if len(only.Classes) != 1 || only.Flagged.FailedFlagged != 3 || only.Flagged.HealthyFlagged != 2 || only.Faults != 55 {
		t.Errorf("filter %s: %+v", growthClass, only)
	}
}

func TestClassFilter(t *testing.T) {
	for _, tc := range []struct {
		classes []string
		in      string
		want    bool
	}{
		{nil, "disk.media", true},
		{[]string{"disk."}, "disk.media", true},
		{[]string{"disk."}, "diskette.x", false},
		{[]string{"disk"}, "disk.media", false},
		{[]string{"memory.ue", "disk.media"}, "disk.media", true},
		{[]string{"memory.ue"}, "memory.uex", false},
	} {
		if got := ClassFilter(tc.classes)(tc.in); got != tc.want {
			t.Errorf("ClassFilter(%v)(%q) = %v", tc.classes, tc.in, got)
		}
	}
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want *Spread
	}{
		{nil, nil},
		{[]float64{5}, &Spread{N: 1, Min: 5, P25: 5, Median: 5, P75: 5, Max: 5}},
		{[]float64{4, 1}, &Spread{N: 2, Min: 1, P25: 1.75, Median: 2.5, P75: 3.25, Max: 4}},
		{[]float64{9, 1, 5, 3, 7}, &Spread{N: 5, Min: 1, P25: 3, Median: 5, P75: 7, Max: 9}},
	} {
		if got := spreadOf(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func describeReport(r DriveReport) string {
	var b strings.Builder
	b.WriteString("{")
	b.WriteString(strings.TrimSpace(strings.ReplaceAll(fmt.Sprintf("%+v", r.ReplayStats), "\n", " ")))
	b.WriteString(fmt.Sprintf(" failed %d hist %d healthy %d faults %d flagged %s}", r.Failed, r.FailedWithHistory, r.Healthy, r.Faults, describeFigures(r.Flagged)))
	return b.String()
}

func describeFigures(f DriveFigures) string {
	deref := func(p *float64) any {
		if p == nil {
			return nil
		}
		return *p
	}
	return fmt.Sprintf("{%s failed %d onday %d healthy %d recall %v rate %v precision %v lead %+v}", f.Class, f.FailedFlagged, f.OnFailureDay,
		f.HealthyFlagged, deref(f.Recall), deref(f.HealthyFlaggedRate), deref(f.Precision), f.LeadDays)
}
