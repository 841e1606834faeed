package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// check is what every policy Parse returns holds: the planner relies on
// it without checking again.
func (p *Policy) check() error {
	if len(p.SHA256) != 64 {
		return fmt.Errorf("SHA256 %q", p.SHA256)
	}
	if err := checkQuantity(p.Limits.MaxOutOfService, "max_out_of_service"); err != nil {
		return err
	}
	if !p.Limits.MaxOutOfService.Set {
		return fmt.Errorf("max_out_of_service unset")
	}
	if p.Limits.MinAvailable.Set {
		if err := checkQuantity(p.Limits.MinAvailable, "min_available"); err != nil {
			return err
		}
	}
	labels := map[string]bool{}
	for _, d := range p.Limits.Domains {
		if d.Label == "" || labels[d.Label] || !d.MaxOutOfService.Set || d.Line < 1 {
			return fmt.Errorf("domain %+v", d)
		}
		labels[d.Label] = true
		if err := checkQuantity(d.MaxOutOfService, d.Label); err != nil {
			return err
		}
	}
	if b := p.Breaker; b.Nodes < 1 || b.Percent < 0 || b.Percent > 100 || b.Window <= 0 {
		return fmt.Errorf("breaker %+v", b)
	}
	if err := checkApproval(Approval{Mode: hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED, TTL: p.Approval.TTL, OnExpiry: p.Approval.OnExpiry}); err != nil {
		return fmt.Errorf("approval defaults: %w", err)
	}
	for name, w := range p.Windows {
		if w.Name != name {
			return fmt.Errorf("window %q under %q", w.Name, name)
		}
		if err := checkWindow(w); err != nil {
			return err
		}
	}
	for _, w := range p.Freezes {
		if err := checkWindow(w); err != nil {
			return err
		}
	}
	for t, d := range p.Cooldowns {
		if action.TypeName(t) == "" || d <= 0 {
			return fmt.Errorf("cooldown %v %v", t, d)
		}
	}
	if p.MaxPerNodePerWeek < 0 {
		return fmt.Errorf("max_per_node_per_week %d", p.MaxPerNodePerWeek)
	}
	if len(p.Manual) != len(action.TypeNames()) {
		return fmt.Errorf("manual names %d types", len(p.Manual))
	}
	for t, a := range p.Manual {
		if action.TypeName(t) == "" {
			return fmt.Errorf("manual %v", t)
		}
		if err := checkApproval(a); err != nil {
			return fmt.Errorf("manual %v: %w", t, err)
		}
		if p.ManualApproval(t) != a {
			return fmt.Errorf("ManualApproval(%v) differs from Manual", t)
		}
	}
	names := map[string]bool{}
	for _, r := range p.Rules {
		if r.Name == "" || names[r.Name] || len(r.Classes) == 0 || len(r.Ladder) == 0 || r.EscalateWithin <= 0 || r.Line < 1 {
			return fmt.Errorf("rule %+v", r)
		}
		names[r.Name] = true
		if r.MinSeverity < 0 || r.MinSeverity > hwhealv1.Severity_SEVERITY_CRITICAL {
			return fmt.Errorf("rule %s: severity %v", r.Name, r.MinSeverity)
		}
		for _, c := range r.Classes {
			if _, err := path.Match(c, "x"); err != nil || c == "" {
				return fmt.Errorf("rule %s: class %q", r.Name, c)
			}
			// Parse refuses a class an earlier rule covers first, so a
			// rule gets every fault of its exact classes at its
			// severity.
			if !isGlob(c) {
				if got := p.RuleFor(c, r.MinSeverity); got != r {
					return fmt.Errorf("rule %s: RuleFor(%s, %v) = %v", r.Name, c, r.MinSeverity, got)
				}
			}
		}
		for _, w := range r.Windows {
			if p.Windows[w] == nil {
				return fmt.Errorf("rule %s: window %s undefined", r.Name, w)
			}
		}
		for _, s := range r.Ladder {
			if action.TypeName(s.Action) == "" || s.Action == action.Online || s.Timeout <= 0 || s.Line < 1 {
				return fmt.Errorf("rule %s: step %+v", r.Name, s)
			}
			if err := checkApproval(s.Approval); err != nil {
				return fmt.Errorf("rule %s: %w", r.Name, err)
			}
		}
	}
	return nil
}

func checkQuantity(q Quantity, name string) error {
	if !q.Set || q.N < 0 || (q.Percent && q.N > 100) || (!q.Percent && q.N != float64(int(q.N))) {
		return fmt.Errorf("%s: %+v", name, q)
	}
	return nil
}

func checkApproval(a Approval) error {
	switch a.Mode {
	case hwhealv1.ApprovalMode_APPROVAL_MODE_AUTO, hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED, hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON:
	default:
		return fmt.Errorf("mode %v", a.Mode)
	}
	switch a.OnExpiry {
	case hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_DENY, hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_PROCEED:
	default:
		return fmt.Errorf("on_expiry %v", a.OnExpiry)
	}
	if a.TTL <= 0 {
		return fmt.Errorf("ttl %v", a.TTL)
	}
	return nil
}

func checkWindow(w *Window) error {
	if w.Name == "" || w.Location == nil || w.Line < 1 {
		return fmt.Errorf("window %+v", w)
	}
	if w.Schedule != "" {
		if w.sched == nil || w.Duration <= 0 || w.Duration > maxWindowDuration || !w.From.IsZero() || !w.To.IsZero() {
			return fmt.Errorf("window %s: %+v", w.Name, w)
		}
		return nil
	}
	if w.From.IsZero() || !w.To.After(w.From) || w.Duration != 0 {
		return fmt.Errorf("window %s: %+v", w.Name, w)
	}
	return nil
}
