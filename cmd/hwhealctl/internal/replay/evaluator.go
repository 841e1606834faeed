package replay

import (
	"fmt"
	"strings"

	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Evaluator turns observations into faults: the observation rules
// (thresholds, growth, rates) of a rule set, or a rule written for a
// comparison. Observe is called with one node's observations in time
// order and returns the faults the newest one raises; it may keep state
// (a counter's last value) per node and part.
type Evaluator interface {
	Observe(node string, o *hwhealv1.Observation) []*hwhealv1.Fault
}

// EvaluatorFunc adapts a stateless function to Evaluator.
type EvaluatorFunc func(node string, o *hwhealv1.Observation) []*hwhealv1.Fault

// Observe calls f.
func (f EvaluatorFunc) Observe(node string, o *hwhealv1.Observation) []*hwhealv1.Fault {
	return f(node, o)
}

// NamedEvaluator is an evaluator with the name tables show it under.
type NamedEvaluator struct {
	Name string
	New  func() Evaluator
}

// The class and rule name of BaselineRule's faults.
const (
	BaselineClass    = "disk.media"
	BaselineRuleName = "baseline-smart-raw-nonzero"
)

// baselineCounters are the raw SMART counters Backblaze's own analysis
// (and most fleet tooling) treats as failure signs: reallocated (5),
// reported uncorrectable (187), command timeouts (188), pending (197) and
// offline uncorrectable (198) sectors.
var baselineCounters = []string{
	smart.SampleATAReallocated,
	smart.SampleATAReportedUncorrect,
	smart.SampleATACommandTimeout,
	smart.SampleATAPending,
	smart.SampleATAOfflineUncorrectable,
}

// BaselineRule is the plain rule the shipped rules are measured against: a
// drive is flagged on every reading where any of raw 5, 187, 188, 197 or
// 198 is above zero. It keeps no state.
type BaselineRule struct{}

// Observe raises one BaselineClass fault when a counter is above zero,
// with those counters as evidence.
func (BaselineRule) Observe(_ string, o *hwhealv1.Observation) []*hwhealv1.Fault {
	var over []*hwhealv1.Sample
	for _, s := range o.GetSamples() {
		for _, name := range baselineCounters {
			if s.GetName() == name && s.GetValue() > 0 {
				over = append(over, &hwhealv1.Sample{Name: s.GetName(), Value: s.GetValue()})
			}
		}
	}
	if len(over) == 0 {
		return nil
	}
	parts := make([]string, len(over))
	for i, s := range over {
		parts[i] = fmt.Sprintf("%s=%g", s.GetName(), s.GetValue())
	}
	return []*hwhealv1.Fault{{
		FaultClass: BaselineClass,
		Severity:   hwhealv1.Severity_SEVERITY_WARNING,
		Part:       o.GetPart(),
		Rule:       BaselineRuleName,
		Time:       o.GetTime(),
		Summary:    "SMART error counters above zero: " + strings.Join(parts, ", "),
		Evidence:   &hwhealv1.Evidence{Samples: over},
	}}
}
