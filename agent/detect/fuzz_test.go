package detect

// White-box tests: the prefilter against plain strings.Contains, and fuzz
// targets that hold Match to a matcher without the prefilter.

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// scan runs the prefilter over s and returns the keywords found, sorted.
func (p *prefilter) scan(s string) []int {
	var out []int
	row := int32(0)
	for i := 0; i < len(s); i++ {
		var ends bool
		row, ends = p.step(row, s[i])
		if ends {
			out = append(out, p.outs[int(row)/p.nclass]...)
		} else if len(p.outs[int(row)/p.nclass]) > 0 {
			panic("keywords end in a state not marked as such")
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestPrefilterAgainstContains builds automata over random keyword sets
// drawn from a small alphabet (so that keywords overlap, nest and share
// suffixes) and checks every keyword is reported exactly when
// strings.Contains says it occurs.
func TestPrefilterAgainstContains(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcab c:"[rng.IntN(8)]
		}
		return string(b)
	}
	for round := 0; round < 300; round++ {
		var kws []string
		for i := 0; i < 1+rng.IntN(12); i++ {
			kws = append(kws, word(1+rng.IntN(5)))
		}
		p := newPrefilter(kws)
		for j := 0; j < 30; j++ {
			s := word(rng.IntN(40))
			var want []int
			for id, k := range kws {
				if strings.Contains(s, k) {
					want = append(want, id)
				}
			}
			if got := p.scan(s); !slices.Equal(got, want) {
				t.Fatalf("keywords %q in %q: prefilter found %v, want %v", kws, s, got, want)
			}
		}
	}
}

// naiveMatch is Match without the prefilter: every rule is tried.
func naiveMatch(rs *RuleSet, rec kernlog.Record) []*hwhealv1.Fault {
	var out []*hwhealv1.Fault
	for _, r := range rs.rules {
		if !slices.ContainsFunc(r.keys, func(k string) bool { return strings.Contains(rec.Message, k) }) {
			continue
		}
		if f := r.match(rec); f != nil {
			out = append(out, f)
		}
	}
	return out
}

func ruleNames(fs []*hwhealv1.Fault) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.GetRule())
	}
	return out
}

// seedLines are the real example lines, the starting points of the fuzzer.
func seedLines(f *testing.F) []string {
	data, err := os.ReadFile(filepath.Join("testdata", "examples.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	var ex struct {
		Positive []struct{ Line string } `yaml:"positive"`
		Negative []struct{ Line string } `yaml:"negative"`
	}
	if err := yaml.Unmarshal(data, &ex); err != nil {
		f.Fatal(err)
	}
	var out []string
	for _, e := range ex.Positive {
		out = append(out, e.Line)
	}
	for _, e := range ex.Negative {
		out = append(out, e.Line)
	}
	return out
}

// FuzzMatch feeds arbitrary messages: Match must not panic, must agree with
// the matcher that skips the prefilter, and every fault must be complete.
func FuzzMatch(f *testing.F) {
	rs, err := Builtin()
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range seedLines(f) {
		f.Add(l)
	}
	f.Add("")
	f.Add("\x00\xff\xfe{}")
	f.Add(strings.Repeat("I/O error, dev ", 200))
	f.Add("EDAC MC0: 1 UE on (((((((")
	f.Fuzz(func(t *testing.T, msg string) {
		rec := kernlog.Record{Level: -1, Facility: -1, Message: msg}
		got := rs.Match(rec)
		if want := naiveMatch(rs, rec); !slices.Equal(ruleNames(got), ruleNames(want)) {
			t.Fatalf("Match(%q) = %v, without prefilter %v", msg, ruleNames(got), ruleNames(want))
		}
		for _, flt := range got {
			if flt.GetRule() == "" || flt.GetFaultClass() == "" || flt.GetSummary() == "" ||
				flt.GetSeverity() < hwhealv1.Severity_SEVERITY_INFO || flt.GetSeverity() > hwhealv1.Severity_SEVERITY_CRITICAL ||
				flt.GetPart().GetKind() == hwhealv1.PartKind_PART_KIND_UNSPECIFIED ||
				flt.GetEvidence().GetKernelLog().GetMessage() != msg {
				t.Fatalf("Match(%q): incomplete fault %v", msg, flt)
			}
		}
	})
}

// FuzzLoad feeds arbitrary rule files: Load must not panic; an error must
// name the file on every line; a set that loads must match without panic.
func FuzzLoad(f *testing.F) {
	for _, bf := range BuiltinFiles() {
		f.Add(bf.Data)
	}
	f.Add([]byte("rules:\n  - name: a-b\n    class: x.y\n    severity: info\n    part: node\n    contains: [abc]\n    pattern: 'abc(?P<n>\\d)'\n    summary: [\"{n}\", \"{{}}\"]\n"))
	f.Add([]byte("rules: [{name: x, class: a.b, severity: warning, part: cpu, contains: xyz, pattern: '(', summary: s}]"))
	f.Add([]byte("rules:\n  - &a {name: x}\n  - *a\n"))
	f.Add([]byte("rules:\n  - name: a-b\n    class: x.y\n    severity: info\n    part: gpu\n    contains: [abc]\n    pattern: 'abc(?P<n>\\d)'\n    class_by: {capture: n, x.z: ['1', '2'], x.w: '3'}\n    summary: \"{n}\"\n"))
	f.Add([]byte("{"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Load(bytes.NewReader(data), "fuzz.yaml")
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml") {
					t.Fatalf("error line %q does not name the file", line)
				}
			}
			return
		}
		if len(rs.rules) > MaxRules {
			t.Fatalf("%d pattern rules loaded", len(rs.rules))
		}
		for _, msg := range []string{"", "abc1", string(data)} {
			rs.Match(kernlog.Record{Message: msg})
		}
	})
}
