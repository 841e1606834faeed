package replay

import (
	"bytes"
	"encoding/csv"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func sampleMap(o *hwhealv1.Observation) map[string]float64 {
	m := map[string]float64{}
	for _, s := range o.GetSamples() {
		if _, dup := m[s.GetName()]; dup {
			panic("duplicate sample " + s.GetName())
		}
		m[s.GetName()] = s.GetValue()
	}
	return m
}

// TestReadBackblaze reads every row of the copied files and checks each
// observation against the row's own cells: a sample for every filled
// SMART cell, none for an empty one, the agent's named counters, and the
// part and time.
func TestReadBackblaze(t *testing.T) {
	for _, file := range []string{bbFailed, bbHealthy, bbDaily} {
		t.Run(file, func(t *testing.T) {
			data := readTestFile(t, file)
			recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			header := recs[0]
			var rows []Row
			if err := ReadBackblaze(bytes.NewReader(data), func(r Row) error { rows = append(rows, r); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(recs)-1 {
				t.Fatalf("%d rows, file has %d", len(rows), len(recs)-1)
			}
			filled := 0
			for i, r := range rows {
				rec := recs[i+1]
				if r.Line != i+2 || r.Serial != rec[1] || r.Model != rec[2] || r.Date.Format(time.DateOnly) != rec[0] || r.Failure != (rec[4] == "1") {
					t.Fatalf("row %d = %+v, file has %v", i, r, rec[:5])
				}
				o := r.Observation
				if o.GetSource() != smart.ObservationSource || !o.GetTime().AsTime().Equal(r.Date) || o.GetPart().GetKind() != hwhealv1.PartKind_PART_KIND_DISK ||
					o.GetPart().GetSerial() != rec[1] || o.GetPart().GetModel() != rec[2] || o.GetPart().GetName() != "" {
					t.Fatalf("row %d observation %v", i, o)
				}
				want := map[string]float64{smart.SampleStandby: 0, smart.SampleReadError: 0, smart.SampleReadBySmartctl: 1}
				for c, name := range header {
					if !strings.HasPrefix(name, "smart_") || rec[c] == "" {
						continue
					}
					filled++
					v, err := strconv.ParseFloat(rec[c], 64)
					if err != nil {
						t.Fatal(err)
					}
					id, kind, _ := strings.Cut(strings.TrimPrefix(name, "smart_"), "_")
					if kind == "normalized" {
						want["ata_attr_"+id+"_value"] = v
						continue
					}
					want["ata_attr_"+id+"_raw"] = v
					switch id {
					case "5":
						want[smart.SampleATAReallocated] = v
					case "9":
						want[smart.SamplePowerOnHours] = v
					case "194":
						want[smart.SampleTemperature] = v
					case "187":
						want[smart.SampleATAReportedUncorrect] = v
					case "188":
						want[smart.SampleATACommandTimeout] = v
					case "197":
						want[smart.SampleATAPending] = v
					case "198":
						want[smart.SampleATAOfflineUncorrectable] = v
					case "199":
						want[smart.SampleATAUDMACRCErrors] = v
					}
				}
				if got := sampleMap(o); !mapsEqual(got, want) {
					t.Fatalf("row %d (%s %s): samples\n got %v\nwant %v", i, r.Serial, rec[0], got, want)
				}
			}
			// This schema fills raw 1, 5, 9, 194 and 197 only.
			if filled != 5*len(rows) {
				t.Errorf("%d filled SMART cells in %d rows", filled, len(rows))
			}
		})
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestReadBackblazeErrors damages a real file in the ways exports go
// wrong and checks each fails naming the line and what is wrong.
func TestReadBackblazeErrors(t *testing.T) {
	data := string(readTestFile(t, bbFailed))
	header, rest, _ := strings.Cut(data, "\n")
	first, _, _ := strings.Cut(rest, "\n")
	cells := strings.Split(first, ",")
	with := func(i int, v string) string {
		c := slices.Clone(cells)
		c[i] = v
		return header + "\n" + first + "\n" + strings.Join(c, ",") + "\n"
	}
	col := func(name string) int { return slices.Index(strings.Split(header, ","), name) }
	for _, tc := range []struct {
		name, in, want string
		is             error
	}{
		{"empty", "", "empty input", ErrNotBackblaze},
		{"kernel log", "[   16.717702] ata2.00: failed command: WRITE FPDMA QUEUED\n", "no date, serial_number, model, failure column", ErrNotBackblaze},
		{"no failure column", strings.Replace(header, ",failure,", ",fail,", 1) + "\n" + first + "\n", "no failure column", ErrNotBackblaze},
		{"bad date", with(0, "10/04/2013"), `line 3: date "10/04/2013"`, nil},
		{"bad failure", with(col("failure"), "yes"), `line 3: failure "yes"`, nil},
		{"negative count", with(col("smart_5_raw"), "-1"), `line 3: smart_5_raw "-1"`, nil},
		{"text count", with(col("smart_197_raw"), "n/a"), `line 3: smart_197_raw "n/a"`, nil},
		{"empty serial", with(1, ""), "line 3: empty serial_number", nil},
		{"short row", header + "\n" + first + "\n" + strings.Join(cells[:10], ",") + "\n", "line 3: 10 fields, header has 85", nil},
		{"bad quote", header + "\n" + `2013-04-10,"5XW0,x` + "\n", "extraneous or missing", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			err := ReadBackblaze(strings.NewReader(tc.in), func(Row) error { n++; return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err %v is not %v", err, tc.is)
			}
		})
	}
	t.Run("fn error", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := ReadBackblaze(strings.NewReader(data), func(Row) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("err %v after %d rows", err, n)
		}
	})
	t.Run("floats and quotes", func(t *testing.T) {
		// pandas re-exports write counts as floats and may quote fields.
		c := slices.Clone(cells)
		c[col("smart_5_raw")] = "12.0"
		in := strings.ReplaceAll(header, "serial_number", `"serial_number"`) + "\n" + strings.Join(c, ",") + "\n"
		var got []Row
		if err := ReadBackblaze(strings.NewReader(in), func(r Row) error { got = append(got, r); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || sampleMap(got[0].Observation)[smart.SampleATAReallocated] != 12 {
			t.Errorf("rows %v", got)
		}
	})
}

// TestReplayBackblazeOrder replays the three copied files (two per-drive
// histories and one day of the whole fleet, which repeats 14 of their
// rows) in every order: each drive's rows come together, day by day, each
// (serial, day) once, and the result does not depend on the file order
// except for which copy of a duplicate is kept.
func TestReplayBackblazeOrder(t *testing.T) {
	type key struct {
		serial string
		day    string
	}
	var first []key
	for _, files := range [][]string{
		{bbFailed, bbHealthy, bbDaily},
		{bbDaily, bbHealthy, bbFailed},
		{bbHealthy, bbDaily, bbFailed},
	} {
		var got []key
		fileOf := map[key]string{}
		st, err := ReplayBackblaze(files, func(r Row) error {
			k := key{r.Serial, r.Date.Format(time.DateOnly)}
			got = append(got, k)
			fileOf[k] = r.File
			if r.Line < 2 {
				t.Errorf("row %v at line %d", k, r.Line)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if st != (ReplayStats{Rows: 418, Drives: 22, Duplicates: 14}) {
			t.Errorf("%v: stats %+v", files, st)
		}
		seen := map[string]bool{}
		for i, k := range got {
			if i > 0 && got[i-1].serial == k.serial {
				if got[i-1].day >= k.day {
					t.Fatalf("%v: %v after %v", files, k, got[i-1])
				}
				continue
			}
			if seen[k.serial] {
				t.Fatalf("%v: drive %s comes back at row %d", files, k.serial, i)
			}
			seen[k.serial] = true
		}
		// The duplicate kept is the one in the file given first.
		if k := (key{"6XW001M5", "2013-04-16"}); fileOf[k] != files[slices.IndexFunc(files, func(f string) bool { return f != bbFailed })] {
			t.Errorf("%v: %v read from %s", files, k, fileOf[k])
		}
		if first == nil {
			first = got
		} else if !slices.Equal(first, got) {
			t.Errorf("%v: order differs from %v's", files, files)
		}
	}
	t.Run("missing file", func(t *testing.T) {
		if _, err := ReplayBackblaze([]string{bbFailed, "testdata/none.csv"}, func(Row) error { return nil }); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("bad row names file", func(t *testing.T) {
		bad := t.TempDir() + "/bad.csv"
		data := readTestFile(t, bbDaily)
		if err := os.WriteFile(bad, bytes.Replace(data, []byte("2013-04-16,6XW001M5"), []byte("2013-16-04,6XW001M5"), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReplayBackblaze([]string{bbFailed, bad}, func(Row) error { return nil })
		if err == nil || !strings.Contains(err.Error(), bad+": line 8: date") {
			t.Errorf("err %v", err)
		}
	})
}
