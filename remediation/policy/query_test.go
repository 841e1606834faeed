package policy

import (
	"testing"
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

func TestQuantity(t *testing.T) {
	pct := func(n float64) Quantity { return Quantity{N: n, Percent: true, Set: true} }
	cnt := func(n float64) Quantity { return Quantity{N: n, Set: true} }
	tests := []struct {
		q        Quantity
		total    int
		max, min int
		str      string
	}{
		{Quantity{}, 100, 100, 0, ""},
		{Quantity{}, 0, 0, 0, ""},
		{cnt(3), 100, 3, 3, "3"},
		{cnt(3), 2, 3, 3, "3"},
		{cnt(0), 100, 0, 0, "0"},
		{pct(5), 100, 5, 5, "5%"},
		{pct(5), 99, 4, 5, "5%"},
		{pct(5), 101, 5, 6, "5%"},
		// A three-node lab may still act on one node.
		{pct(10), 3, 1, 1, "10%"},
		{pct(10), 1, 1, 1, "10%"},
		{pct(10), 0, 0, 0, "10%"},
		{pct(0), 100, 0, 0, "0%"},
		{pct(100), 7, 7, 7, "100%"},
		{pct(90), 100, 90, 90, "90%"},
		{pct(90), 101, 90, 91, "90%"},
		{pct(90), 3, 2, 3, "90%"},
		// No float error: 7% of 300 is 21 both ways; 2.5% of 1000 is 25.
		{pct(7), 300, 21, 21, "7%"},
		{pct(2.5), 1000, 25, 25, "2.5%"},
		{pct(33.3), 1000, 333, 333, "33.3%"},
		{pct(0.1), 10000, 10, 10, "0.1%"},
	}
	for _, tc := range tests {
		if got := tc.q.Max(tc.total); got != tc.max {
			t.Errorf("%+v.Max(%d) = %d, want %d", tc.q, tc.total, got, tc.max)
		}
		if got := tc.q.Min(tc.total); got != tc.min {
			t.Errorf("%+v.Min(%d) = %d, want %d", tc.q, tc.total, got, tc.min)
		}
		if got := tc.q.String(); got != tc.str {
			t.Errorf("%+v.String() = %q, want %q", tc.q, got, tc.str)
		}
	}
}

const rulesYAML = `windows:
  - name: weeknights
    schedule: "0 22 * * 1-5"
    duration: 6h
    timezone: Europe/Berlin
  - name: sundays
    schedule: "0 10 * * 0"
    duration: 4h
    timezone: UTC
  - name: once
    from: 2020-01-01
    to: 2020-01-02
freezes:
  - name: year-end
    from: 2026-12-20T00:00:00Z
    to: 2027-01-04T00:00:00Z
  - name: fridays
    schedule: "0 12 * * 5"
    duration: 12h
    timezone: UTC
  - name: all-december
    from: 2026-12-01
    to: 2027-01-01
cooldowns:
  reboot: 24h
rules:
  - name: critical-disk
    classes: [disk.media]
    min_severity: critical
    ladder: [{action: offline}]
  - name: disks
    classes: ["disk.*"]
    dry_run: true
    windows: [weeknights]
    ladder: [{action: migrate}]
  - name: lockups
    classes: [kernel.lockup, "kernel.hung_?ask"]
    min_severity: warning
    windows: [weeknights, sundays]
    ladder: [{action: reboot}]
  - name: gone
    classes: [gpu.xid]
    windows: [once]
    ladder: [{action: reboot}]
  - name: anything
    classes: ["*"]
    min_severity: critical
    ladder: [{action: offline}]
`

func rulesPolicy(t *testing.T) *Policy {
	t.Helper()
	p, err := Parse([]byte(rulesYAML), "rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRuleFor: the first rule in file order whose classes cover the
// class and whose min_severity the fault reaches.
func TestRuleFor(t *testing.T) {
	p := rulesPolicy(t)
	const (
		info     = hwhealv1.Severity_SEVERITY_INFO
		warning  = hwhealv1.Severity_SEVERITY_WARNING
		critical = hwhealv1.Severity_SEVERITY_CRITICAL
	)
	tests := []struct {
		class string
		sev   hwhealv1.Severity
		want  string
	}{
		{"disk.media", critical, "critical-disk"},
		{"disk.media", warning, "disks"}, // below the first rule's severity: the glob's
		{"disk.smart_failing", info, "disks"},
		{"disk", critical, "anything"}, // "disk.*" needs the dot
		{"kernel.lockup", warning, "lockups"},
		{"kernel.lockup", info, ""},
		{"kernel.hung_task", critical, "lockups"},
		{"kernel.hung_tasks", critical, "anything"},
		{"memory.ue", critical, "anything"},
		{"memory.ue", warning, ""},
		{"", critical, "anything"},
	}
	for _, tc := range tests {
		r := p.RuleFor(tc.class, tc.sev)
		got := ""
		if r != nil {
			got = r.Name
		}
		if got != tc.want {
			t.Errorf("RuleFor(%q, %v) = %q, want %q", tc.class, tc.sev, got, tc.want)
		}
	}
	if r := (&Policy{}).RuleFor("disk.media", critical); r != nil {
		t.Errorf("a policy without rules gave %v", r)
	}
}

func TestDryRunFor(t *testing.T) {
	p := rulesPolicy(t)
	disks, lockups := p.Rules[1], p.Rules[2]
	if p.DryRunFor(nil) || p.DryRunFor(lockups) || !p.DryRunFor(disks) {
		t.Error("only the dry-run rule is dry-run")
	}
	p.DryRun = true
	if !p.DryRunFor(nil) || !p.DryRunFor(lockups) {
		t.Error("a dry-run policy puts everything in dry-run")
	}
}

func TestWindowOpen(t *testing.T) {
	p := rulesPolicy(t)
	disks, lockups, gone, critical := p.Rules[1], p.Rules[2], p.Rules[3], p.Rules[0]
	tests := []struct {
		name    string
		r       *Rule
		at      string
		open    bool
		waiting string
	}{
		{"manual request", nil, "2026-12-08T12:00:00Z", true, ""},
		{"rule without windows", critical, "2026-12-08T12:00:00Z", true, ""},
		{"Tuesday noon", disks, "2026-12-08T12:00:00Z", false, "window weeknights opens 2026-12-08T22:00:00+01:00"},
		{"Tuesday night", disks, "2026-12-08T21:30:00Z", true, ""},
		{"Saturday: Sunday's opens first", lockups, "2026-12-05T12:00:00Z", false, "window sundays opens 2026-12-06T10:00:00Z"},
		{"Sunday morning", lockups, "2026-12-06T11:00:00Z", true, ""},
		{"Sunday afternoon: weeknights next", lockups, "2026-12-06T15:00:00Z", false, "window weeknights opens 2026-12-07T22:00:00+01:00"},
		{"a window that is over", gone, "2026-12-06T15:00:00Z", false, "window once does not open again"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			open, waiting := p.WindowOpen(tc.r, utc(tc.at))
			if open != tc.open || waiting != tc.waiting {
				t.Errorf("WindowOpen = %v, %q; want %v, %q", open, waiting, tc.open, tc.waiting)
			}
		})
	}
	two := &Rule{Windows: []string{"once", "once-more"}}
	p.Windows["once-more"] = &Window{Name: "once-more", From: utc("2020-01-01T00:00:00Z"), To: utc("2020-01-02T00:00:00Z")}
	if open, waiting := p.WindowOpen(two, utc("2026-01-01T00:00:00Z")); open || waiting != "windows once, once-more do not open again" {
		t.Errorf("WindowOpen = %v, %q", open, waiting)
	}
}

// TestFrozen: the first freeze in file order containing t.
func TestFrozen(t *testing.T) {
	p := rulesPolicy(t)
	tests := []struct {
		at   string
		want string
	}{
		{"2026-12-08T12:00:00Z", "all-december"},
		{"2026-12-11T13:00:00Z", "fridays"}, // a Friday in December: fridays comes first
		{"2026-12-24T12:00:00Z", "year-end"},
		{"2027-01-03T23:59:59Z", "year-end"},
		{"2027-01-04T00:00:00Z", ""},
		{"2027-01-08T23:59:59Z", "fridays"},
		{"2027-01-09T00:00:00Z", ""},
	}
	for _, tc := range tests {
		w, ok := p.Frozen(utc(tc.at))
		got := ""
		if ok {
			got = w.Name
		}
		if got != tc.want || ok != (w != nil) {
			t.Errorf("Frozen(%s) = %q, %v; want %q", tc.at, got, ok, tc.want)
		}
	}
}

func TestCooldownAndManual(t *testing.T) {
	p := rulesPolicy(t)
	if p.Cooldown(action.Reboot) != 24*time.Hour || p.Cooldown(action.Offline) != 0 {
		t.Errorf("cooldowns %v", p.Cooldowns)
	}
	// A policy built in code without Manual still answers: one approver
	// with the approval defaults.
	bare := &Policy{Approval: ApprovalDefaults{TTL: time.Hour, OnExpiry: hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_PROCEED}}
	want := Approval{Mode: hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED, TTL: time.Hour, OnExpiry: hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_PROCEED}
	if got := bare.ManualApproval(action.Migrate); got != want {
		t.Errorf("ManualApproval = %+v, want %+v", got, want)
	}
}
