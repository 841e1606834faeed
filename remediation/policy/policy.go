package policy

import (
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Policy is one parsed and validated policy file.
type Policy struct {
	// File is where it was read from ("" for Default), SHA256 the hex
	// SHA-256 of its text.
	File   string
	SHA256 string
	// DryRun puts every rule and every manual request in dry-run: actions
	// are planned, limited and dispatched, and agents report what they
	// would do. A fresh install runs the default policy, which is dry-run.
	DryRun   bool
	Limits   Limits
	Breaker  Breaker
	Approval ApprovalDefaults
	// Windows are the named maintenance windows rules refer to.
	Windows map[string]*Window
	// Freezes are times when no automatic action is dispatched.
	Freezes []*Window
	// Cooldowns: no automatic action of a type on a node within this long
	// after the previous one of that type on that node was dispatched.
	Cooldowns map[hwhealv1.ActionType]time.Duration
	// MaxPerNodePerWeek caps the automatic actions dispatched to one node
	// in any 7 days; past it the node's faults go to people (escalated).
	// 0 means no cap.
	MaxPerNodePerWeek int
	// Manual is how operators' requests are approved, per action type.
	Manual map[hwhealv1.ActionType]Approval
	// Rules in file order; the first that covers a fault applies.
	Rules []*Rule
}

// Quantity is a count of nodes, absolute or a percentage of a total.
type Quantity struct {
	// N is the count, or the percentage when Percent is set.
	N       float64
	Percent bool
	// Set is false when the policy did not name it (no limit, no
	// floor).
	Set bool
}

// Limits hold the blast radius of automatic and manual actions.
type Limits struct {
	// MaxOutOfService bounds the nodes out of service at once (service
	// state other than IN_SERVICE, or an action in flight that takes
	// them out), fleet-wide. Parse sets it always: 10% unless the file
	// names it (100% lifts it).
	MaxOutOfService Quantity
	// MinAvailable is a floor on the nodes that are connected, in
	// service, not faulty and not busy with an action.
	MinAvailable Quantity
	// Domains bound the nodes out of service per value of a label.
	Domains []DomainLimit
}

// DomainLimit bounds the nodes out of service among the nodes that share
// one value of Label (a rack, a switch, a zone, a GPU pod).
type DomainLimit struct {
	Label           string
	MaxOutOfService Quantity
	Line            int
}

// Breaker is the storm circuit breaker: when enforced faults of one class
// open on at least Nodes nodes (or Percent of the fleet, whichever is
// more) within Window, every automatic action pauses until an operator
// resumes. Many nodes failing the same way at once is a bad rule, a
// firmware push or a power event, not broken parts.
type Breaker struct {
	Disabled bool
	Nodes    int
	Percent  float64
	Window   time.Duration
}

// ApprovalDefaults apply to steps and manual rules that name none.
type ApprovalDefaults struct {
	// TTL is how long an action waits for approval.
	TTL time.Duration
	// OnExpiry is what happens when nobody answered within TTL.
	OnExpiry hwhealv1.ExpiryOutcome
}

// Approval is who must agree to an action, and for how long it waits.
type Approval struct {
	Mode     hwhealv1.ApprovalMode
	TTL      time.Duration
	OnExpiry hwhealv1.ExpiryOutcome
}

// Window is a recurring maintenance window or freeze: it opens at every
// time Schedule (five-field cron) names, in Location, and stays open for
// Duration; or, for a one-off, it is open from From until To.
type Window struct {
	Name     string
	Schedule string
	Duration time.Duration
	Location *time.Location
	From, To time.Time
	Line     int
	// parsed schedule, set by Parse
	sched schedule
}

// schedule is the part of a cron schedule Window needs.
type schedule interface {
	Next(time.Time) time.Time
}

// Rule maps fault classes to an action ladder.
type Rule struct {
	Name string
	// Classes are fault classes or path.Match globs ("disk.*").
	Classes []string
	// MinSeverity: faults below it are left alone (UNSPECIFIED: all).
	MinSeverity hwhealv1.Severity
	// DryRun puts this rule alone in dry-run.
	DryRun bool
	// Windows names the maintenance windows its actions may be
	// dispatched in; empty means any time (outside freezes).
	Windows []string
	// Ladder is the order of steps: the first for a new fault; the next
	// when the fault shows new evidence within EscalateWithin after the
	// previous step finished, or when the previous step failed, timed out
	// or was refused by the agent.
	Ladder []*Step
	// EscalateWithin: new evidence later than this after a step finished
	// starts the ladder again from the first step.
	EscalateWithin time.Duration
	Line           int
}

// Step is one rung of a ladder.
type Step struct {
	Action   hwhealv1.ActionType
	Approval Approval
	// Timeout bounds the action from dispatch to its final update.
	Timeout time.Duration
	Line    int
}
