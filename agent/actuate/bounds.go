package actuate

import (
	"fmt"

	"github.com/hwheal/hwheal/pkg/textclip"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Bounds of one ActionUpdate: the collector refuses an update past any of
// them with InvalidArgument, and a refused report holds the agent's whole
// stream up for a couple of backoffs before it is skipped, lost. The
// collector keeps its own copy (maxActionID... in
// collector/ingest/validate.go): the agent links no collector code, and
// TestBoundsMatchCollector compares the two. The configuration refuses
// steps past them; the actuator clips what it reports anyway.
const (
	MaxActionID    = 64
	MaxUpdateSteps = 64
	MaxStepName    = 128
	MaxStepArgs    = 64
	MaxStepArg     = 4096
	MaxStepOutput  = 16 << 10
	// MaxUpdateMessage bounds an update's message and a step's error.
	MaxUpdateMessage = 4096
	MaxBootID        = 64
)

// clipMark stands where a clipped string was cut.
const clipMark = "…"

// clipStep bounds st's fields in place: a step the executor reports is
// handed over.
func clipStep(st *hwhealv1.ActionStep) {
	st.Name = clipEnd(st.Name, MaxStepName)
	if n := len(st.Command); n > MaxStepArgs {
		keep := MaxStepArgs - 1
		st.Command = append(st.Command[:keep:keep], fmt.Sprintf("%s %d more arguments", clipMark, n-keep))
	}
	for i, arg := range st.Command {
		st.Command[i] = clipEnd(arg, MaxStepArg)
	}
	st.Output = clipStart(st.Output, MaxStepOutput)
	st.Error = clipEnd(st.Error, MaxUpdateMessage)
}

// bound clips u and its steps to what the collector takes, and splits an
// update of more than MaxUpdateSteps steps into several: all but the last
// are RUNNING, without a message; the last has u's outcome and message.
// It keeps u when it can.
func bound(u *hwhealv1.ActionUpdate) []*hwhealv1.ActionUpdate {
	u.Message = clipEnd(u.Message, MaxUpdateMessage)
	steps := make([]*hwhealv1.ActionStep, 0, len(u.Steps))
	for _, st := range u.Steps {
		if st != nil { // the collector refuses an empty step
			clipStep(st)
			steps = append(steps, st)
		}
	}
	u.Steps = steps
	if len(steps) <= MaxUpdateSteps {
		return []*hwhealv1.ActionUpdate{u}
	}
	var out []*hwhealv1.ActionUpdate
	for len(steps) > MaxUpdateSteps {
		out = append(out, &hwhealv1.ActionUpdate{
			ActionId: u.ActionId, Outcome: hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING, Time: u.Time,
			Steps: steps[:MaxUpdateSteps:MaxUpdateSteps], BootId: u.BootId, DryRun: u.DryRun,
		})
		steps = steps[MaxUpdateSteps:]
	}
	u.Steps = steps
	return append(out, u)
}

// clipEnd is s as valid UTF-8 (a proto string must be), at most max bytes,
// its start kept and a cut marked.
func clipEnd(s string, max int) string { return textclip.Head(s, max, clipMark) }

// clipStart is clipEnd keeping the end: the end of a command's output says
// how it ended.
func clipStart(s string, max int) string { return textclip.Tail(s, max, clipMark) }
