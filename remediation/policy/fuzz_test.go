package policy

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

var fuzzErrRE = regexp.MustCompile(`^fuzz\.yaml:[1-9][0-9]*: \S`)

// FuzzParse: Parse never panics; it returns a policy that keeps every
// invariant the planner relies on, or errors that each start with
// "fuzz.yaml:LINE: ".
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("shipped", "*.yaml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	for _, tc := range badPolicies {
		f.Add(tc.src)
	}
	f.Add(rulesYAML)
	f.Add("windows:\n  - {name: w, schedule: \"TZ=UTC\", duration: 1h}\n")
	f.Add("windows:\n  - {name: w, schedule: \"CRON_TZ=Europe/Berlin 0 1 * * *\", duration: 1h}\n")
	f.Add("a: &a [*a]\n")
	f.Fuzz(func(t *testing.T, doc string) {
		p, err := Parse([]byte(doc), "fuzz.yaml")
		if err != nil {
			if p != nil {
				t.Fatal("a policy with an error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !fuzzErrRE.MatchString(line) {
					t.Fatalf("error line %q lacks the fuzz.yaml:LINE: prefix", line)
				}
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("%v holds no *Error", err)
			}
			return
		}
		if err := p.check(); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		// The queries answer without panicking on whatever parsed.
		at := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
		p.Frozen(at)
		for _, r := range p.Rules {
			p.WindowOpen(r, at)
			for _, c := range r.Classes {
				p.RuleFor(c, hwhealv1.Severity_SEVERITY_CRITICAL)
			}
		}
		for _, w := range p.Windows {
			if w.Contains(w.NextOpen(at)) != !w.NextOpen(at).IsZero() {
				t.Fatalf("window %s: NextOpen(%v) = %v is not open", w.Name, at, w.NextOpen(at))
			}
		}
	})
}
