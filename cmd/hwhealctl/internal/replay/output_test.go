package replay

import (
	"bytes"
	"strings"
	"testing"
)

// TestCompareBackblaze prints the README's table for the copied slice:
// the figures of TestEvalBackblaze, one row per rule and per class.
func TestCompareBackblaze(t *testing.T) {
	var b bytes.Buffer
	reps, err := CompareBackblaze(&b, []string{bbFailed, bbHealthy, bbDaily}, nil, true,
		NamedEvaluator{"baseline", func() Evaluator { return BaselineRule{} }},
		NamedEvaluator{"197>0 or 5 growing", newGrowthRule})
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 || reps[0].Name != "baseline" || reps[1].Report.Flagged.FailedFlagged != 3 {
		t.Fatalf("reports %+v", reps)
	}
	want := `22 drives (7 failed, 6 of them with days before the failure; 15 healthy), 418 rows, 14 duplicate rows skipped

| rules | class | failed drives flagged before failure day | flagged only on failure day | lead days: median (p25-p75; min-max) | healthy drives flagged | precision |
|---|---|---|---|---|---|---|
| baseline | any | 4/7 (57.1%) | 1 | 8 (6.75-12.5; 6-23) | 5 (33.3%) | 44.4% |
| baseline | disk.media | 4/7 (57.1%) | 1 | 8 (6.75-12.5; 6-23) | 5 (33.3%) | 44.4% |
| 197>0 or 5 growing | any | 3/7 (42.9%) | 0 | 7 (6.5-8; 6-9) | 2 (13.3%) | 60.0% |
| 197>0 or 5 growing | disk.media_growth | 3/7 (42.9%) | 0 | 7 (6.5-8; 6-9) | 2 (13.3%) | 60.0% |
`
	if b.String() != want {
		t.Errorf("table\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteDriveTable(&b, reps, false); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n| "); n != 3 { // header and two rules
		t.Errorf("%d rows without classes:\n%s", n, b.String())
	}
	if _, err := CompareBackblaze(&b, []string{"testdata/none.csv"}, nil, false, NamedEvaluator{"x", func() Evaluator { return BaselineRule{} }}); err == nil || !strings.HasPrefix(err.Error(), "x: ") {
		t.Errorf("err %v", err)
	}
}

func TestWriteKernelTable(t *testing.T) {
	rep, err := EvalKernelLog([]string{"testdata/lkml_sample.jsonl"}, testMatch, KernelOptions{Disputes: readDisputes(t)})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteKernelTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"39 lines, 8 excluded by label disputes",
		"| scsi_blk_io | 2/2 (100.0%) | 1/1 (100.0%) | 66.7% | 3/4 (75.0%) | 0/0 (-) |",
		"| edac | 0/0 (-) | 0/3 (0.0%) | - | 4/4 (100.0%) | 0/3 (0.0%) |",
		"| all | 12/13 (92.3%) | 3/18 (16.7%) | 80.0% | 17/24 (70.8%) | 2/15 (13.3%) |",
		"| pcie | 2 | 2 | 1 | 50.0% | 66.7% |",
		"| pcie.boot | 0 | 2 | 0.0% |",
	} {
		if !strings.Contains(b.String(), line+"\n") {
			t.Errorf("no line %q in\n%s", line, b.String())
		}
	}
}
