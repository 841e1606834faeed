package policy

import (
	"errors"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// eps absorbs float error in percentages (7% of 300 is 21, not
// 20.999999).
const eps = 1e-9

// Max is the limit q sets on a set of total nodes: a count as written,
// or the percentage of total rounded down but at least 1 when the
// percentage and total are above zero, so that a three-node lab with a 10%
// limit can still act on one node. Unset, it is total: no limit.
func (q Quantity) Max(total int) int {
	if !q.Set {
		return total
	}
	if !q.Percent {
		return int(q.N)
	}
	n := int(math.Floor(q.N*float64(total)/100 + eps))
	if n < 1 && q.N > 0 && total > 0 {
		return 1
	}
	return n
}

// Min is the floor q sets on a set of total nodes: a count as written, or
// the percentage of total rounded up. Unset, it is 0: no floor.
func (q Quantity) Min(total int) int {
	if !q.Set {
		return 0
	}
	if !q.Percent {
		return int(q.N)
	}
	return int(math.Ceil(q.N*float64(total)/100 - eps))
}

// String is q as a policy writes it: "5%", "3"; "" when unset.
func (q Quantity) String() string {
	if !q.Set {
		return ""
	}
	s := strconv.FormatFloat(q.N, 'f', -1, 64)
	if q.Percent {
		return s + "%"
	}
	return s
}

// RuleFor is the first rule, in file order, whose classes cover class
// (exactly or as a path.Match glob) and whose MinSeverity sev reaches;
// nil when none does: the fault is left to people.
func (p *Policy) RuleFor(class string, sev hwhealv1.Severity) *Rule {
	for _, r := range p.Rules {
		if sev >= r.MinSeverity && r.covers(class) {
			return r
		}
	}
	return nil
}

// covers reports whether one of r's classes is class or a glob matching
// it.
func (r *Rule) covers(class string) bool {
	for _, c := range r.Classes {
		if c == class {
			return true
		}
		if ok, _ := path.Match(c, class); ok {
			return true
		}
	}
	return false
}

// DryRunFor reports whether actions under rule r (nil: a manual request)
// only say what they would do: the whole policy or r is in dry-run.
func (p *Policy) DryRunFor(r *Rule) bool { return p.DryRun || (r != nil && r.DryRun) }

// Cooldown is how long after an action of type t on a node no automatic
// action of that type is dispatched to it; 0 when the policy names none.
func (p *Policy) Cooldown(t hwhealv1.ActionType) time.Duration { return p.Cooldowns[t] }

// ManualApproval is how an operator's request for an action of type t is
// approved: the manual: rule for t, or by default one approver with the
// approval defaults' ttl and on_expiry.
func (p *Policy) ManualApproval(t hwhealv1.ActionType) Approval {
	if a, ok := p.Manual[t]; ok {
		return a
	}
	return Approval{
		Mode:     hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED,
		TTL:      p.Approval.TTL,
		OnExpiry: p.Approval.OnExpiry,
	}
}

// Frozen is the first freeze, in file order, that contains t.
func (p *Policy) Frozen(t time.Time) (*Window, bool) {
	for _, w := range p.Freezes {
		if w.Contains(t) {
			return w, true
		}
	}
	return nil, false
}

// WindowOpen reports whether an action under rule r may be dispatched at
// t as far as maintenance windows go: r (or a manual request, nil) names
// no windows, or one of them contains t. Otherwise waiting says until
// when: "window weeknights opens 2026-12-08T22:00:00+01:00", the earliest
// of r's windows to open, in its time zone. Freezes are Frozen's.
func (p *Policy) WindowOpen(r *Rule, t time.Time) (open bool, waiting string) {
	if r == nil || len(r.Windows) == 0 {
		return true, ""
	}
	var (
		next     time.Time
		nextName string
	)
	for _, name := range r.Windows {
		w := p.Windows[name]
		if w == nil {
			continue // Parse refuses this; a hand-built policy may not
		}
		if w.Contains(t) {
			return true, ""
		}
		if o := w.NextOpen(t); !o.IsZero() && (next.IsZero() || o.Before(next)) {
			next, nextName = o, name
		}
	}
	if next.IsZero() {
		if len(r.Windows) == 1 {
			return false, "window " + r.Windows[0] + " does not open again"
		}
		return false, "windows " + strings.Join(r.Windows, ", ") + " do not open again"
	}
	return false, "window " + nextName + " opens " + next.Format(time.RFC3339)
}

// Contains reports whether w is open at t: for a schedule, some opening
// s <= t has t < s+Duration (openings in w's time zone, Duration elapsed
// time); for a one-off, From <= t < To.
func (w *Window) Contains(t time.Time) bool {
	if w.Schedule == "" {
		return !w.From.IsZero() && !t.Before(w.From) && t.Before(w.To)
	}
	sc := w.schedule()
	if sc == nil || w.Duration <= 0 {
		return false
	}
	// The first opening after t-Duration is the latest that can still
	// be open at t; it is open when it is not after t.
	from := t.Add(-w.Duration)
	s := sc.Next(from.In(w.loc()))
	return !s.IsZero() && s.After(from) && !s.After(t)
}

// NextOpen is t when w is open at t, else the time it next opens (in its
// time zone); zero when it never opens again (a one-off that is over).
func (w *Window) NextOpen(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	if w.Schedule == "" {
		if !w.From.IsZero() && t.Before(w.From) {
			return w.From
		}
		return time.Time{}
	}
	sc := w.schedule()
	if sc == nil || w.Duration <= 0 {
		return time.Time{}
	}
	return sc.Next(t.In(w.loc()))
}

func (w *Window) loc() *time.Location {
	if w.Location == nil {
		return time.UTC
	}
	return w.Location
}

// schedule is w's parsed schedule; a Window built in code rather than by
// Parse has none yet, and gets one each call (Windows stay read-only, so
// that the planner may share a policy between goroutines).
func (w *Window) schedule() schedule {
	if w.sched != nil {
		return w.sched
	}
	s, err := parseSchedule(w.Schedule)
	if err != nil {
		return nil
	}
	return s
}

// parseSchedule reads a five-field cron schedule (minute hour
// day-of-month month day-of-week, or a descriptor such as @daily). Its
// times are wall-clock times of the zone of the time Next is given.
func parseSchedule(spec string) (schedule, error) {
	spec = strings.TrimSpace(spec)
	switch {
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		// Also: cron's parser panics on "TZ=x" without a space.
		return nil, errors.New("name the time zone in timezone:, not in the schedule")
	case strings.HasPrefix(spec, "@every"):
		return nil, errors.New("@every names no time of day; want five fields such as \"0 22 * * 1-5\"")
	}
	p := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	s, err := p.Parse(spec)
	if err != nil {
		return nil, errors.New(err.Error() + ` (want five fields: minute hour day-of-month month day-of-week, such as "0 22 * * 1-5")`)
	}
	spec2, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, errors.New(`want five fields such as "0 22 * * 1-5"`)
	}
	// A schedule that names no real day (30 February) never opens;
	// cron's Next looks five years ahead, which covers every leap day.
	if spec2.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, errors.New("never opens: no day matches")
	}
	return spec2, nil
}
