// Package health owns the rule that turns a node's open faults into its
// health state. It is pure so that every store backend and the fleet API
// agree on it.
package health

import hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"

// Enforced reports whether a fault raised in mode counts towards its node's
// health. A SHADOW rule's faults are stored, listed and announced, but a
// rule on trial must not mark a node for attention or remediation; every
// other mode (UNSPECIFIED means ENFORCE) counts.
func Enforced(mode hwhealv1.RuleMode) bool {
	return mode != hwhealv1.RuleMode_RULE_MODE_SHADOW
}

// Of returns the health of a node from the highest severity among its open,
// enforced faults and how many there are. Backends aggregate in their own
// query language and call it with the result; OfFaults is the same rule over
// fault records.
//
//   - No open enforced faults: HEALTHY.
//   - Highest severity CRITICAL (or anything above it, since a larger
//     severity is worse): FAULTY.
//   - Highest severity WARNING: SUSPECT.
//   - Only INFO (or UNSPECIFIED) faults open: HEALTHY. Informational faults
//     are kept and listed, but they must not mark a node for attention or
//     remediation; a rule that wants that has to say WARNING.
func Of(maxOpenSeverity hwhealv1.Severity, openFaults int) hwhealv1.NodeHealth {
	switch {
	case openFaults <= 0:
		return hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY
	case maxOpenSeverity >= hwhealv1.Severity_SEVERITY_CRITICAL:
		return hwhealv1.NodeHealth_NODE_HEALTH_FAULTY
	case maxOpenSeverity == hwhealv1.Severity_SEVERITY_WARNING:
		return hwhealv1.NodeHealth_NODE_HEALTH_SUSPECT
	default:
		return hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY
	}
}

// OfFaults returns the health of a node from its fault records: Of over
// those that are open and enforced. Resolved and shadow faults are ignored,
// so a node's whole fault list may be passed.
func OfFaults(faults []*hwhealv1.FaultRecord) hwhealv1.NodeHealth {
	var (
		maxSev hwhealv1.Severity
		open   int
	)
	for _, f := range faults {
		if f.GetState() != hwhealv1.FaultState_FAULT_STATE_OPEN || !Enforced(f.GetMode()) {
			continue
		}
		open++
		maxSev = max(maxSev, f.GetSeverity())
	}
	return Of(maxSev, open)
}
