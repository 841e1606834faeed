// Package health owns the rule that turns a node's open faults into its
// health state. It is pure so that every store backend and the fleet API
// agree on it.
package health

import hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"

// Of returns the health of a node from the highest severity among its open
// faults and how many there are.
//
//   - No open faults: HEALTHY.
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
