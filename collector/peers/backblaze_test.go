package peers

import (
	"compress/gzip"
	"encoding/csv"
	"os"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// backblazeDay is one real fleet: every drive Backblaze reported on
// 2013-04-10 (21 195 drives, about 40 models) with raw SMART 5
// (reallocated sectors), 194 (temperature) and 197 (pending sectors), and
// whether the drive failed by 2013-05-19. See testdata/SOURCE.txt.
type backblazeDay struct {
	in     []Input
	failed map[string]bool // by serial
}

func loadBackblaze(t testing.TB) backblazeDay {
	t.Helper()
	f, err := os.Open("testdata/backblaze-2013-04-10.csv.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(z).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	day := backblazeDay{failed: map[string]bool{}}
	cols := rows[0] // serial_number,model,smart_5_raw,smart_194_raw,smart_197_raw,failed_by_2013_05_19
	for _, row := range rows[1:] {
		obs := &hwhealv1.Observation{
			Time:   timestamppb.New(now.Add(-time.Minute)),
			Source: "smart",
			Part:   &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "sda", Serial: row[0], Model: row[1]},
		}
		for c := 2; c <= 4; c++ {
			if row[c] == "" { // the drive did not report the attribute
				continue
			}
			v, err := strconv.ParseFloat(row[c], 64)
			if err != nil {
				t.Fatalf("%s %s: %v", row[0], cols[c], err)
			}
			obs.Samples = append(obs.Samples, &hwhealv1.Sample{Name: cols[c], Value: v})
		}
		day.in = append(day.in, Input{Node: row[0], Observation: obs})
		if row[5] == "1" {
			day.failed[row[0]] = true
		}
	}
	return day
}

func smartRule(sample string, minValue float64) Rule {
	return Rule{Name: "smart-" + sample + "-outlier", Class: "disk.media", Severity: hwhealv1.Severity_SEVERITY_WARNING,
		Source: "smart", Sample: sample, MinValue: minValue}
}

// On a real fleet the selection path returns exactly what the naive
// sort-based reference computes, on a continuous value (temperature) and on
// counters that are 0 for most drives (the MAD = 0 fallback).
func TestBackblazeMatchesReference(t *testing.T) {
	day := loadBackblaze(t)
	for _, r := range []Rule{smartRule("smart_194_raw", 0), smartRule("smart_5_raw", 0), smartRule("smart_197_raw", 0), smartRule("smart_5_raw", 10)} {
		t.Run(r.Sample, func(t *testing.T) {
			checkAgainstReference(t, r.Name, r, day.in)
		})
	}
}

// Reallocated sectors (raw SMART 5) as a peer outlier, against what the
// drives did in the following 39 days. The rule is meant to pick the
// drives that stand out among their model's; if it picked at random, the
// drives it flags would fail at the fleet's base rate.
func TestBackblazeReallocatedOutliersPredictFailures(t *testing.T) {
	day := loadBackblaze(t)
	got, st := Evaluate(smartRule("smart_5_raw", 0), day.in, now)
	flaggedFailed := 0
	for _, f := range got {
		if day.failed[f.Node] {
			flaggedFailed++
		}
	}
	// The plain rule for comparison: raw 5 above zero.
	nonzero, nonzeroFailed := 0, 0
	for _, x := range day.in {
		if v, ok := sample(x.Observation, "smart_5_raw"); ok && v > 0 {
			nonzero++
			if day.failed[x.Node] {
				nonzeroFailed++
			}
		}
	}
	n, failed := len(day.in), len(day.failed)
	base := float64(failed) / float64(n)
	precision := float64(flaggedFailed) / float64(len(got))
	t.Logf("%d drives (%d scored in %d groups, %d in small groups skipped), %d failed by 2013-05-19 (base rate %.2f%%)",
		n, st.Evaluated, st.Groups-st.SkippedSmallGroups, st.SkippedSmallGroups, failed, 100*base)
	t.Logf("peer outlier: flags %d drives (%.1f%%), %d of them failed: precision %.1f%%, recall %.0f%%",
		len(got), 100*float64(len(got))/float64(n), flaggedFailed, 100*precision, 100*float64(flaggedFailed)/float64(failed))
	t.Logf("raw5 > 0:     flags %d drives (%.1f%%), %d of them failed: precision %.1f%%, recall %.0f%%",
		nonzero, 100*float64(nonzero)/float64(n), nonzeroFailed, 100*float64(nonzeroFailed)/float64(nonzero), 100*float64(nonzeroFailed)/float64(failed))
	if len(got) == 0 || len(got) > n/20 {
		t.Fatalf("flagged %d of %d drives, want some and at most 5%%", len(got), n)
	}
	if precision < 5*base {
		t.Errorf("flagged drives failed at %.2f%%, under 5x the base rate %.2f%%", 100*precision, 100*base)
	}
}

// Temperature is a continuous physical value with a tight spread per model:
// a robust z of 3.5 should name a handful of drives in 21 000, not hundreds.
func TestBackblazeTemperatureFlagsFew(t *testing.T) {
	day := loadBackblaze(t)
	got, st := Evaluate(smartRule("smart_194_raw", 0), day.in, now)
	for _, f := range got {
		t.Log(f.Fault.GetSummary())
	}
	if len(got) > st.Evaluated/1000 {
		t.Errorf("flagged %d of %d drives on temperature, want at most 0.1%%", len(got), st.Evaluated)
	}
}
