package actuate

import (
	"fmt"

	"github.com/hwheal/hwheal/pkg/textclip"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// The actuator clips every update it reports to remediation/action's
// bounds (MaxStepName and the rest), which the collector enforces: the
// configuration refuses steps past them, and this is the net under it.

// clipMark stands where a clipped string was cut.
const clipMark = "…"

// clipStep bounds st's fields in place: a step the executor reports is
// handed over.
func clipStep(st *hwhealv1.ActionStep) {
	st.Name = clipEnd(st.Name, action.MaxStepName)
	if n := len(st.Command); n > action.MaxStepArgs {
		keep := action.MaxStepArgs - 1
		st.Command = append(st.Command[:keep:keep], fmt.Sprintf("%s %d more arguments", clipMark, n-keep))
	}
	for i, arg := range st.Command {
		st.Command[i] = clipEnd(arg, action.MaxStepArg)
	}
	st.Output = clipStart(st.Output, action.MaxStepOutput)
	st.Error = clipEnd(st.Error, action.MaxUpdateMessage)
}

// bound clips u and its steps to what the collector takes, and splits an
// update of more than action.MaxUpdateSteps steps into several: all but the last
// are RUNNING, without a message; the last has u's outcome and message.
// It keeps u when it can.
func bound(u *hwhealv1.ActionUpdate) []*hwhealv1.ActionUpdate {
	u.Message = clipEnd(u.Message, action.MaxUpdateMessage)
	steps := make([]*hwhealv1.ActionStep, 0, len(u.Steps))
	for _, st := range u.Steps {
		if st != nil { // the collector refuses an empty step
			clipStep(st)
			steps = append(steps, st)
		}
	}
	u.Steps = steps
	if len(steps) <= action.MaxUpdateSteps {
		return []*hwhealv1.ActionUpdate{u}
	}
	var out []*hwhealv1.ActionUpdate
	for len(steps) > action.MaxUpdateSteps {
		out = append(out, &hwhealv1.ActionUpdate{
			ActionId: u.ActionId, Outcome: hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING, Time: u.Time,
			Steps: steps[:action.MaxUpdateSteps:action.MaxUpdateSteps], BootId: u.BootId, DryRun: u.DryRun,
		})
		steps = steps[action.MaxUpdateSteps:]
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
