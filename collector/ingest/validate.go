package ingest

import (
	"fmt"
	"regexp"
	"unicode/utf8"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// Limits on what an agent may send. They bound the collector's memory and
// the store's rows per agent; gRPC's message size limit bounds the rest.
const (
	maxNodeName     = 253
	maxLabels       = 64
	maxLabelKey     = 63
	maxLabelValue   = 256
	maxStreamID     = 64
	maxSummary      = 1024
	maxSamples      = 512
	maxSourceName   = 64
	maxFaultClass   = 64
	maxPartName     = 256
	maxEvidenceText = 16 << 10
	maxGuardActions = 16
	// The bounds of an action update are remediation/action's MaxActionID
	// and the rest: the agent clips what it reports to the same numbers.
)

var (
	nodeNameRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
	labelKeyRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$`)
	faultClassRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$`)
)

func validateHello(h *hwhealv1.Hello) error {
	if h.GetNode() == "" {
		return fmt.Errorf("hello: node is empty")
	}
	if len(h.GetNode()) > maxNodeName || !nodeNameRE.MatchString(h.GetNode()) {
		return fmt.Errorf("hello: node %.64q is not a valid name (letters, digits, '.', '_', '-', at most %d)", h.GetNode(), maxNodeName)
	}
	if id := h.GetStreamId(); id == "" || len(id) > maxStreamID {
		return fmt.Errorf("hello: stream_id must be 1 to %d characters", maxStreamID)
	}
	if len(h.GetLabels()) > maxLabels {
		return fmt.Errorf("hello: %d labels, at most %d", len(h.GetLabels()), maxLabels)
	}
	if g := h.GetGuard(); g != nil && len(g.GetAllowed()) > maxGuardActions {
		return fmt.Errorf("hello: guard allows %d actions, at most %d", len(g.GetAllowed()), maxGuardActions)
	}
	if len(h.GetBootId()) > action.MaxBootID {
		return fmt.Errorf("hello: boot_id longer than %d", action.MaxBootID)
	}
	for k, v := range h.GetLabels() {
		if len(k) > maxLabelKey || !labelKeyRE.MatchString(k) {
			return fmt.Errorf("hello: label key %.64q is not valid", k)
		}
		if len(v) > maxLabelValue {
			return fmt.Errorf("hello: label %q value longer than %d", k, maxLabelValue)
		}
	}
	return nil
}

// validateBatch checks a batch before it reaches the store: the store trusts
// what ingest hands it.
func validateBatch(b *hwhealv1.ReportBatch, maxReports int) error {
	n := len(b.GetReports())
	if n == 0 {
		return fmt.Errorf("batch: no reports")
	}
	if n > maxReports {
		return fmt.Errorf("batch: %d reports, at most %d", n, maxReports)
	}
	var prev uint64
	for i, r := range b.GetReports() {
		if r.GetSeq() == 0 {
			return fmt.Errorf("batch: report %d: seq is 0", i)
		}
		if r.GetSeq() <= prev {
			return fmt.Errorf("batch: report %d: seq %d does not follow %d", i, r.GetSeq(), prev)
		}
		prev = r.GetSeq()
		// A report of a kind this collector does not know (a newer agent)
		// passes: the store keeps nothing of it but acknowledges it.
		switch item := r.GetItem().(type) {
		case *hwhealv1.Report_Fault:
			if err := validateFault(item.Fault); err != nil {
				return fmt.Errorf("batch: report seq %d: %w", r.GetSeq(), err)
			}
		case *hwhealv1.Report_Observation:
			if err := validateObservation(item.Observation); err != nil {
				return fmt.Errorf("batch: report seq %d: %w", r.GetSeq(), err)
			}
		case *hwhealv1.Report_ActionUpdate:
			if err := validateActionUpdate(item.ActionUpdate); err != nil {
				return fmt.Errorf("batch: report seq %d: %w", r.GetSeq(), err)
			}
		}
	}
	return nil
}

func validateFault(f *hwhealv1.Fault) error {
	if f == nil {
		return fmt.Errorf("fault is empty")
	}
	if c := f.GetFaultClass(); len(c) > maxFaultClass || !faultClassRE.MatchString(c) {
		return fmt.Errorf("fault class %.64q is not valid (like disk.io_error)", c)
	}
	switch sev := f.GetSeverity(); {
	case sev <= hwhealv1.Severity_SEVERITY_UNSPECIFIED:
		return fmt.Errorf("fault %s: severity %d is not valid", f.GetFaultClass(), sev)
	case sev > hwhealv1.Severity_SEVERITY_CRITICAL:
		// Severities are ordered; one a newer agent knows and this
		// collector does not is at least critical.
		f.Severity = hwhealv1.Severity_SEVERITY_CRITICAL
	}
	if err := validatePart(f.GetPart()); err != nil {
		return fmt.Errorf("fault %s: %w", f.GetFaultClass(), err)
	}
	if len(f.GetSummary()) > maxSummary {
		return fmt.Errorf("fault %s: summary longer than %d", f.GetFaultClass(), maxSummary)
	}
	if len(f.GetEvidence().GetKernelLog().GetMessage()) > maxEvidenceText {
		return fmt.Errorf("fault %s: evidence message longer than %d", f.GetFaultClass(), maxEvidenceText)
	}
	if len(f.GetEvidence().GetSamples()) > maxSamples {
		return fmt.Errorf("fault %s: more than %d evidence samples", f.GetFaultClass(), maxSamples)
	}
	return nil
}

func validateObservation(o *hwhealv1.Observation) error {
	if o == nil {
		return fmt.Errorf("observation is empty")
	}
	if s := o.GetSource(); s == "" || len(s) > maxSourceName {
		return fmt.Errorf("observation: source must be 1 to %d characters", maxSourceName)
	}
	if err := validatePart(o.GetPart()); err != nil {
		return fmt.Errorf("observation %s: %w", o.GetSource(), err)
	}
	if len(o.GetSamples()) > maxSamples {
		return fmt.Errorf("observation %s: %d samples, at most %d", o.GetSource(), len(o.GetSamples()), maxSamples)
	}
	return nil
}

func validatePart(p *hwhealv1.Part) error {
	if p == nil {
		return nil
	}
	if p.GetKind() < 0 {
		return fmt.Errorf("part kind %d is not valid", p.GetKind())
	}
	// A kind a newer agent knows is kept as its number.
	// An array, not a map: this runs for every report ingested.
	for _, f := range [...]struct{ name, v string }{
		{"name", p.GetName()}, {"serial", p.GetSerial()}, {"model", p.GetModel()}, {"pci_address", p.GetPciAddress()},
	} {
		if len(f.v) > maxPartName {
			return fmt.Errorf("part %s longer than %d", f.name, maxPartName)
		}
	}
	return nil
}

func validateActionUpdate(u *hwhealv1.ActionUpdate) error {
	if u == nil {
		return fmt.Errorf("action update is empty")
	}
	if id := u.GetActionId(); id == "" || len(id) > action.MaxActionID || !utf8.ValidString(id) {
		return fmt.Errorf("action update: action_id must be 1 to %d bytes of UTF-8", action.MaxActionID)
	}
	if u.GetOutcome() == hwhealv1.ActionOutcome_ACTION_OUTCOME_UNSPECIFIED {
		return fmt.Errorf("action update %s: outcome is unset", u.GetActionId())
	}
	if len(u.GetMessage()) > action.MaxUpdateMessage {
		return fmt.Errorf("action update %s: message longer than %d", u.GetActionId(), action.MaxUpdateMessage)
	}
	if len(u.GetBootId()) > action.MaxBootID {
		return fmt.Errorf("action update %s: boot_id longer than %d", u.GetActionId(), action.MaxBootID)
	}
	if len(u.GetSteps()) > action.MaxUpdateSteps {
		return fmt.Errorf("action update %s: %d steps, at most %d", u.GetActionId(), len(u.GetSteps()), action.MaxUpdateSteps)
	}
	for i, st := range u.GetSteps() {
		if st == nil {
			return fmt.Errorf("action update %s: step %d is empty", u.GetActionId(), i)
		}
		if len(st.GetName()) > action.MaxStepName || len(st.GetError()) > action.MaxUpdateMessage {
			return fmt.Errorf("action update %s: step %d: name or error too long", u.GetActionId(), i)
		}
		if len(st.GetCommand()) > action.MaxStepArgs {
			return fmt.Errorf("action update %s: step %d: %d command arguments, at most %d", u.GetActionId(), i, len(st.GetCommand()), action.MaxStepArgs)
		}
		for _, arg := range st.GetCommand() {
			if len(arg) > action.MaxStepArg {
				return fmt.Errorf("action update %s: step %d: a command argument longer than %d", u.GetActionId(), i, action.MaxStepArg)
			}
		}
		if len(st.GetOutput()) > action.MaxStepOutput {
			return fmt.Errorf("action update %s: step %d: output longer than %d", u.GetActionId(), i, action.MaxStepOutput)
		}
	}
	return nil
}
