package replay

import (
	"cmp"
	"slices"

	"bytes"
	"errors"
	"google.golang.org/protobuf/proto"
	"math"
	"strings"
	"testing"

	"github.com/hwheal/hwheal/pkg/smart"
)

// FuzzReadBackblaze: any input either fails or gives rows whose
// observations are sane: finite, non-negative samples, each name once,
// every row's serial set.
func FuzzReadBackblaze(f *testing.F) {
	for _, file := range []string{bbFailed, bbDaily} {
		data := readTestFile(f, file)
		f.Add(data[:min(len(data), 2000)])
	}
	f.Add([]byte("date,serial_number,model,failure,smart_5_raw,smart_5_normalized\n2013-04-10,S,M,1,1e3,\n"))
	f.Add([]byte("date,serial_number,model,failure\n\"2013-04-10\",\"S\"\"x\",M,0\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := ReadBackblaze(bytes.NewReader(data), func(r Row) error {
			if r.Serial == "" || r.Observation == nil || r.Line < 2 {
				t.Fatalf("row %+v", r)
			}
			seen := map[string]bool{}
			for _, s := range r.Observation.GetSamples() {
				if seen[s.GetName()] || math.IsNaN(s.GetValue()) || math.IsInf(s.GetValue(), 0) || s.GetValue() < 0 {
					t.Fatalf("sample %v (seen %v)", s, seen[s.GetName()])
				}
				seen[s.GetName()] = true
			}
			return nil
		})
		_ = err
	})
}

// FuzzReadSmartctl: any input either fails with one of pkg/smart's errors
// naming the input, or gives a disk observation.
func FuzzReadSmartctl(f *testing.F) {
	for _, file := range []string{"smart-fail2.json", "04_malformed.json", "05_empty.json", "smartctl_scan_nvme.json", "nvme-null-Samsung_SSD_970_EVO_Plus_250GB-nvme0.json"} {
		f.Add(readTestFile(f, smartctlFile(file)))
	}
	f.Add([]byte(`{"device":{"name":"/dev/sda","protocol":"ATA"},"local_time":{"time_t":"x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ReadSmartctl(bytes.NewReader(data), "in")
		if err != nil {
			if o != nil || !strings.HasPrefix(err.Error(), "in: ") {
				t.Fatalf("observation %v with err %v", o, err)
			}
			if !errors.Is(err, smart.ErrMalformed) && !errors.Is(err, smart.ErrNoDevice) && !errors.Is(err, smart.ErrSmartctlFailed) && !strings.Contains(err.Error(), "protocol") {
				t.Fatalf("err %v is none of pkg/smart's", err)
			}
			return
		}
		if o.GetPart().GetKind() == 0 || len(o.GetSamples()) == 0 {
			t.Fatalf("observation %v", o)
		}
	})
}

// FuzzDetectFormat: the detection never panics and returns a known format.
func FuzzDetectFormat(f *testing.F) {
	f.Add("a.json", readTestFile(f, smartctlFile("smart-fail2.json"))[:300])
	f.Add("-", readTestFile(f, bbDaily)[:300])
	f.Add("kern.log", []byte("[ 1.0] x\n"))
	f.Fuzz(func(t *testing.T, name string, head []byte) {
		if _, err := ParseFormat(string(DetectFormat(name, head))); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzReplayBackblaze: where ReadBackblaze reads an input, the indexed
// replay reads the same rows (each row's bytes re-read from its offsets),
// grouped by drive, day by day, first copy of a (serial, day) kept.
func FuzzReplayBackblaze(f *testing.F) {
	f.Add(readTestFile(f, bbDaily))
	f.Add([]byte("date,serial_number,model,failure,smart_5_raw\r\n2013-04-11,B,M,0,1\r\n2013-04-10,B,M,0,\r\n2013-04-10,A,\"M\nX\",1,2\r\n2013-04-10,B,M,1,3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		type key struct {
			serial string
			day    int64
		}
		var want []Row
		seen := map[key]bool{}
		if ReadBackblaze(bytes.NewReader(data), func(r Row) error {
			if k := (key{r.Serial, r.Date.Unix()}); !seen[k] {
				seen[k] = true
				want = append(want, r)
			}
			return nil
		}) != nil {
			return
		}
		slices.SortStableFunc(want, func(a, b Row) int {
			return cmp.Or(strings.Compare(a.Serial, b.Serial), a.Date.Compare(b.Date))
		})
		var got []Row
		st, err := replayBackblaze([]bbSource{{name: "f", r: bytes.NewReader(data), size: int64(len(data))}}, func(r Row) error {
			got = append(got, r)
			return nil
		})
		if err != nil {
			t.Fatalf("ReadBackblaze read it, replay: %v", err)
		}
		if len(got) != len(want) || st.Rows != len(got) {
			t.Fatalf("%d rows, want %d", len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.Serial != w.Serial || !g.Date.Equal(w.Date) || g.Line != w.Line || g.Model != w.Model || g.Failure != w.Failure ||
				!proto.Equal(g.Observation, w.Observation) {
				t.Fatalf("row %d: %+v, want %+v", i, g, w)
			}
		}
	})
}
