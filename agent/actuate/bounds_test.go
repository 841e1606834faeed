package actuate

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/executor"
)

// collectorRefuses is why the collector would refuse u, or "": its
// checks of an ActionUpdate (collector/ingest/validate.go), written out
// with its numbers rather than this package's constants, so that a wrong
// constant here fails too.
func collectorRefuses(u *hwhealv1.ActionUpdate) string {
	if _, err := proto.Marshal(u); err != nil {
		return fmt.Sprintf("does not marshal: %v", err)
	}
	switch {
	case u.GetActionId() == "" || len(u.GetActionId()) > 64:
		return "action id"
	case len(u.GetMessage()) > 4096:
		return fmt.Sprintf("message of %d bytes", len(u.GetMessage()))
	case len(u.GetBootId()) > 64:
		return "boot id"
	case len(u.GetSteps()) > 64:
		return fmt.Sprintf("%d steps", len(u.GetSteps()))
	}
	for i, st := range u.GetSteps() {
		switch {
		case st == nil:
			return fmt.Sprintf("step %d is nil", i)
		case len(st.GetName()) > 128:
			return fmt.Sprintf("step %d: name of %d bytes", i, len(st.GetName()))
		case len(st.GetError()) > 4096:
			return fmt.Sprintf("step %d: error of %d bytes", i, len(st.GetError()))
		case len(st.GetCommand()) > 64:
			return fmt.Sprintf("step %d: %d arguments", i, len(st.GetCommand()))
		case len(st.GetOutput()) > 16<<10:
			return fmt.Sprintf("step %d: output of %d bytes", i, len(st.GetOutput()))
		}
		for j, arg := range st.GetCommand() {
			if len(arg) > 4096 {
				return fmt.Sprintf("step %d: argument %d of %d bytes", i, j, len(arg))
			}
		}
	}
	return ""
}

// stepsExec reports its steps, then fails with err.
type stepsExec struct {
	steps []*hwhealv1.ActionStep
	err   error
}

func (e stepsExec) Run(_ context.Context, _ *hwhealv1.ActionOrder, _ executor.Env, report func(*hwhealv1.ActionStep)) error {
	for _, st := range e.steps {
		report(proto.Clone(st).(*hwhealv1.ActionStep))
	}
	return e.err
}

// TestReportsWithinBounds: steps built past the collector's bounds (the
// configuration refuses them; a runbook built in code need not) are
// reported clipped, each clipped field marked, and every update the
// actuator spools is one the collector takes.
func TestReportsWithinBounds(t *testing.T) {
	dir, work := t.TempDir(), t.TempDir()
	// 100 two-byte characters: the cut falls inside one.
	longName := strings.Repeat("é", 100)
	longArg := "exit 0 # " + strings.Repeat("x", 5000)
	manyArgs := sh(`exit 0`)
	for i := range 100 {
		manyArgs = append(manyArgs, "arg"+strconv.Itoa(i))
	}
	// Not found: the start error names the 5000-byte path, and the
	// final message the error.
	missing := filepath.Join(work, strings.Repeat("m", 250), strings.Repeat("n", 250))
	for len(missing) < 5000 {
		missing = filepath.Join(missing, strings.Repeat("p", 250))
	}
	s := newSink()
	cfg := baseConfig(t, dir, s,
		executor.Step{Name: longName, Run: sh(longArg)},
		executor.Step{Name: "many-args", Run: manyArgs},
		executor.Step{Name: "loud", Run: sh(`head -c 30000 /dev/zero | tr '\0' o`)},
		executor.Step{Name: "missing", Run: []string{missing}},
	)
	cfg.Allow = append(cfg.Allow, action.Online)
	// What no executor here reports, but one could: output past the bound,
	// an error past it, no step at all.
	cfg.Executors[action.Online] = stepsExec{
		steps: []*hwhealv1.ActionStep{
			{Name: "raw", Command: []string{"x"}, Output: strings.Repeat("o", 20000) + "end", Error: strings.Repeat("e", 5000)},
		},
		err: fmt.Errorf("%s", strings.Repeat("f", 5000)),
	}
	a, _ := start(t, cfg)
	a.Deliver(offline("b1"))
	a.Deliver(&hwhealv1.ActionOrder{Id: "b2", Type: action.Online})
	for _, id := range []string{"b1", "b2"} {
		if f := s.final(t, id); f.GetOutcome() != failed {
			t.Fatalf("%s: final %v, want FAILED", id, f)
		}
		for _, u := range s.of(id) {
			if why := collectorRefuses(u); why != "" {
				t.Errorf("%s: the collector would refuse update %v: %s", id, u, why)
			}
		}
	}

	st := s.steps("b1")
	if len(st) != 4 {
		t.Fatalf("steps %v, want 4", st)
	}
	clipped := func(what, got, prefix string) {
		t.Helper()
		if !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, prefix) || !utf8.ValidString(got) {
			t.Errorf("%s %.80q... (%d bytes) is not its start, clipped and marked", what, got, len(got))
		}
	}
	clipped("long name", st[0].GetName(), strings.Repeat("é", 62))
	if len(st[0].GetName()) != 127 { // 62 characters and the mark
		t.Errorf("long name clipped to %d bytes, want 127", len(st[0].GetName()))
	}
	clipped("long argument", st[0].GetCommand()[2], "exit 0 # xxx")
	if st[0].GetExitCode() != 0 {
		t.Errorf("the long step did not run: %v", st[0])
	}
	if cmd := st[1].GetCommand(); len(cmd) != 64 || cmd[62] != "arg59" || cmd[63] != "… 40 more arguments" {
		t.Errorf("command of 103 arguments reported as %d: ...%q", len(cmd), cmd[max(len(cmd)-2, 0):])
	}
	if out := st[2].GetOutput(); !strings.HasSuffix(out, "oooo") || len(out) > 16<<10 {
		t.Errorf("output %d bytes", len(out))
	}
	clipped("start error", st[3].GetError(), "stat "+missing[:100])
	f := s.final(t, "b1")
	clipped("final message", f.GetMessage(), `step 3 "missing" failed: could not start: stat `)

	raw := s.steps("b2")
	if len(raw) != 1 || !strings.HasPrefix(raw[0].GetOutput(), "…") || !strings.HasSuffix(raw[0].GetOutput(), "oend") {
		t.Errorf("output past the bound reported as %.40q...", raw[0].GetOutput())
	}
	clipped("step error", raw[0].GetError(), "eee")
	clipped("final message", s.final(t, "b2").GetMessage(), "fff")
}

// TestDeliverDropsLongIDs: an order whose id the collector would refuse
// in every update is not run.
func TestDeliverDropsLongIDs(t *testing.T) {
	dir, work := t.TempDir(), t.TempDir()
	ran := filepath.Join(work, "ran")
	s := newSink()
	a, _ := start(t, baseConfig(t, dir, s, executor.Step{Name: "record", Run: sh(`echo "$HWHEAL_ACTION_ID" >> ` + ran)}))
	long := strings.Repeat("a", 65)
	a.Deliver(offline(long))
	a.Deliver(offline(long[:64]))
	s.final(t, long[:64])
	if got := lines(t, ran); len(got) != 1 || got[0] != long[:64] {
		t.Fatalf("ran %v, want the 64-byte id only", got)
	}
	if n := len(s.of(long)); n != 0 {
		t.Fatalf("%d updates for the 65-byte id", n)
	}
}

// TestBoundSplitsSteps: an update of more steps than the collector takes
// in one goes as several, RUNNING but the last, which has the outcome
// and the message; the steps stay in order.
func TestBoundSplitsSteps(t *testing.T) {
	for _, tc := range []struct{ steps, updates int }{{0, 1}, {1, 1}, {64, 1}, {65, 2}, {150, 3}} {
		t.Run(strconv.Itoa(tc.steps), func(t *testing.T) {
			u := &hwhealv1.ActionUpdate{ActionId: "s1", Outcome: failed, Message: "m", BootId: "boot-a", DryRun: true}
			for i := range tc.steps {
				u.Steps = append(u.Steps, &hwhealv1.ActionStep{Index: uint32(i), Name: "s"})
			}
			u.Steps = append(u.Steps, nil) // dropped: the collector refuses it
			out := bound(u)
			if len(out) != tc.updates {
				t.Fatalf("%d updates, want %d", len(out), tc.updates)
			}
			next := 0
			for i, b := range out {
				if why := collectorRefuses(b); why != "" {
					t.Fatalf("update %d refused: %s", i, why)
				}
				last := i == len(out)-1
				if b.GetActionId() != "s1" || b.GetBootId() != "boot-a" || !b.GetDryRun() ||
					(last && (b.GetOutcome() != failed || b.GetMessage() != "m")) ||
					(!last && (b.GetOutcome() != running || b.GetMessage() != "")) {
					t.Fatalf("update %d of %d: %v", i, len(out), b)
				}
				for _, st := range b.GetSteps() {
					if int(st.GetIndex()) != next {
						t.Fatalf("step %d where %d was next", st.GetIndex(), next)
					}
					next++
				}
			}
			if next != tc.steps {
				t.Fatalf("%d steps in all, want %d", next, tc.steps)
			}
		})
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		name, in   string
		max        int
		end, start string // what clipEnd and clipStart return
	}{
		{name: "fits", in: "abc", max: 3, end: "abc", start: "abc"},
		{name: "ascii", in: "abcdefgh", max: 6, end: "abc…", start: "…fgh"},
		{name: "cut in a character", in: "aéééb", max: 6, end: "aé…", start: "…éb"},
		{name: "invalid UTF-8", in: "a\xffb", max: 10, end: "a\uFFFDb", start: "a\uFFFDb"},
		{name: "mark only", in: "éééé", max: 4, end: "…", start: "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clipEnd(tt.in, tt.max); got != tt.end || len(got) > tt.max {
				t.Errorf("clipEnd(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.end)
			}
			if got := clipStart(tt.in, tt.max); got != tt.start || len(got) > tt.max {
				t.Errorf("clipStart(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.start)
			}
		})
	}
}
