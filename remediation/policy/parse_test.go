package policy

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// TestShipped parses every file under shipped/ (what an install puts
// beside the collector) and checks that Default is the embedded default
// file and what a fresh install promises: it acts on nothing.
func TestShipped(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("shipped", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("shipped/ holds %v, want default.yaml and example.yaml at least", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.check(); err != nil {
				t.Fatalf("parsed policy breaks an invariant: %v", err)
			}
			if p.File != f {
				t.Errorf("File = %q, want %q", p.File, f)
			}
		})
	}

	disk, err := os.ReadFile(filepath.Join("shipped", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(disk) != defaultYAML {
		t.Fatal("embedded default policy differs from shipped/default.yaml")
	}
	d := Default()
	if err := d.check(); err != nil {
		t.Fatal(err)
	}
	if d.File != "" || d.SHA256 != sha(disk) {
		t.Errorf("Default: File %q SHA256 %s, want \"\" and %s", d.File, d.SHA256, sha(disk))
	}
	if !d.DryRun || len(d.Rules) != 0 {
		t.Errorf("Default: DryRun %v with %d rules, want dry-run and no rules", d.DryRun, len(d.Rules))
	}
	for _, name := range action.TypeNames() {
		at, _ := action.ParseType(name)
		if m := d.ManualApproval(at).Mode; m != hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED {
			t.Errorf("Default: manual %s is %v, want REQUIRED", name, m)
		}
	}
	if got := d.Limits.MaxOutOfService.String(); got != "10%" {
		t.Errorf("Default: max_out_of_service %s, want 10%%", got)
	}
	if d.Breaker.Disabled || d.MaxPerNodePerWeek != 3 || d.Cooldown(action.Reboot) <= 0 {
		t.Errorf("Default: breaker %+v, cap %d, reboot cooldown %v: want on, 3, set", d.Breaker, d.MaxPerNodePerWeek, d.Cooldown(action.Reboot))
	}
	if Default() == d || Default().Manual[action.Reboot] != d.Manual[action.Reboot] {
		t.Error("Default must give each caller a policy of its own, equal to the others")
	}
}

// TestParseExample reads shipped/example.yaml field by field: it is what
// operators copy, so what it says in its comments must be what it does.
func TestParseExample(t *testing.T) {
	p, err := Load(filepath.Join("shipped", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		auto     = hwhealv1.ApprovalMode_APPROVAL_MODE_AUTO
		required = hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED
		twoP     = hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON
		deny     = hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_DENY
		proceed  = hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_PROCEED
	)
	if p.DryRun {
		t.Error("DryRun")
	}
	lim := p.Limits
	if lim.MaxOutOfService != (Quantity{N: 5, Percent: true, Set: true}) || lim.MinAvailable != (Quantity{N: 90, Percent: true, Set: true}) {
		t.Errorf("limits %+v", lim)
	}
	wantDomains := []DomainLimit{
		{Label: "rack", MaxOutOfService: Quantity{N: 1, Set: true}, Line: 23},
		{Label: "zone", MaxOutOfService: Quantity{N: 10, Percent: true, Set: true}, Line: 25},
	}
	if !slices.Equal(lim.Domains, wantDomains) {
		t.Errorf("domains %+v, want %+v", lim.Domains, wantDomains)
	}
	if p.Breaker != (Breaker{Nodes: 5, Percent: 5, Window: 15 * time.Minute}) {
		t.Errorf("breaker %+v", p.Breaker)
	}
	if p.Approval != (ApprovalDefaults{TTL: 24 * time.Hour, OnExpiry: deny}) {
		t.Errorf("approval %+v", p.Approval)
	}
	w := p.Windows["weeknights"]
	if len(p.Windows) != 1 || w == nil || w.Schedule != "0 22 * * 1-5" || w.Duration != 6*time.Hour || w.Location.String() != "Europe/Berlin" || w.Name != "weeknights" {
		t.Fatalf("windows %+v", p.Windows)
	}
	if len(p.Freezes) != 2 || p.Freezes[0].Name != "year-end" ||
		!p.Freezes[0].From.Equal(time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)) ||
		!p.Freezes[0].To.Equal(time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("freezes %+v", p.Freezes)
	}
	ny, _ := time.LoadLocation("America/New_York")
	if bf := p.Freezes[1]; !bf.From.Equal(time.Date(2026, 11, 27, 0, 0, 0, 0, ny)) || !bf.To.Equal(time.Date(2026, 11, 30, 0, 0, 0, 0, ny)) {
		t.Errorf("a date-only freeze is read in its time zone: %v .. %v", bf.From, bf.To)
	}
	if p.Cooldown(action.Reboot) != 24*time.Hour || p.Cooldown(action.Offline) != time.Hour || p.Cooldown(action.Online) != 0 {
		t.Errorf("cooldowns %v", p.Cooldowns)
	}
	if p.MaxPerNodePerWeek != 3 {
		t.Errorf("max_per_node_per_week %d", p.MaxPerNodePerWeek)
	}
	if p.ManualApproval(action.Online).Mode != auto || p.ManualApproval(action.Reboot).Mode != required {
		t.Errorf("manual %+v", p.Manual)
	}

	type step struct {
		act      hwhealv1.ActionType
		mode     hwhealv1.ApprovalMode
		ttl      time.Duration
		expiry   hwhealv1.ExpiryOutcome
		timeout  time.Duration
		line     int
		classes  []string
		windows  []string
		escalate time.Duration
	}
	want := map[string][]step{
		"memory-ce-storm":    {{act: action.Offline, mode: auto, ttl: 24 * time.Hour, expiry: deny, timeout: time.Hour, line: 87}},
		"fatal-hardware":     {{act: action.Offline, mode: required, ttl: 4 * time.Hour, expiry: deny, timeout: time.Hour, line: 96}},
		"kernel-lockup":      {{act: action.Reboot, mode: auto, ttl: 24 * time.Hour, expiry: deny, timeout: 20 * time.Minute, line: 108}, {act: action.Offline, mode: required, ttl: 8 * time.Hour, expiry: deny, timeout: 2 * time.Hour, line: 111}},
		"gpu-fallen-off-bus": {{act: action.Reboot, mode: auto, ttl: 24 * time.Hour, expiry: deny, timeout: 30 * time.Minute, line: 122}, {act: action.Offline, mode: required, ttl: 24 * time.Hour, expiry: deny, timeout: action.DefaultTimeout(action.Offline), line: 125}},
		"disk-failing":       {{act: action.Migrate, mode: required, ttl: 72 * time.Hour, expiry: proceed, timeout: 4 * time.Hour, line: 138}, {act: action.Offline, mode: required, ttl: 24 * time.Hour, expiry: deny, timeout: time.Hour, line: 143}},
		"cpu-thermal":        {{act: action.Offline, mode: twoP, ttl: 2 * time.Hour, expiry: deny, timeout: time.Hour, line: 152}},
	}
	order := []string{"memory-ce-storm", "fatal-hardware", "kernel-lockup", "gpu-fallen-off-bus", "disk-failing", "cpu-thermal"}
	if len(p.Rules) != len(order) {
		t.Fatalf("%d rules, want %d", len(p.Rules), len(order))
	}
	for i, r := range p.Rules {
		if r.Name != order[i] {
			t.Errorf("rule %d is %s, want %s", i, r.Name, order[i])
			continue
		}
		steps := want[r.Name]
		if len(r.Ladder) != len(steps) {
			t.Errorf("%s: %d steps, want %d", r.Name, len(r.Ladder), len(steps))
			continue
		}
		for j, s := range r.Ladder {
			w := steps[j]
			got := step{act: s.Action, mode: s.Approval.Mode, ttl: s.Approval.TTL, expiry: s.Approval.OnExpiry, timeout: s.Timeout, line: s.Line}
			w.classes, w.windows, w.escalate = nil, nil, 0
			if got.act != w.act || got.mode != w.mode || got.ttl != w.ttl || got.expiry != w.expiry || got.timeout != w.timeout || got.line != w.line {
				t.Errorf("%s step %d = %+v, want %+v", r.Name, j+1, got, w)
			}
		}
	}
	ll := p.Rules[2]
	if !slices.Equal(ll.Classes, []string{"kernel.lockup", "kernel.hung_*"}) || ll.MinSeverity != hwhealv1.Severity_SEVERITY_WARNING || ll.EscalateWithin != 24*time.Hour || ll.Line != 103 {
		t.Errorf("kernel-lockup %+v", ll)
	}
	if d := p.Rules[4]; !slices.Equal(d.Windows, []string{"weeknights"}) || d.EscalateWithin != 72*time.Hour {
		t.Errorf("disk-failing %+v", d)
	}
	if c := p.Rules[5]; c.MinSeverity != hwhealv1.Severity_SEVERITY_CRITICAL {
		t.Errorf("cpu-thermal %+v", c)
	}
}

// TestParseDocExample parses the example of the package documentation,
// so that the format it shows is the format Parse reads.
func TestParseDocExample(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var doc []string
	for _, line := range strings.Split(string(src), "\n") {
		if s, ok := strings.CutPrefix(line, "//\t"); ok {
			doc = append(doc, s)
		}
	}
	if len(doc) < 40 {
		t.Fatalf("found %d lines of example in doc.go", len(doc))
	}
	p, err := Parse([]byte(strings.Join(doc, "\n")), "doc.go")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != 1 || len(p.Freezes) != 2 || len(p.Limits.Domains) != 2 || p.ManualApproval(action.Online).Mode != hwhealv1.ApprovalMode_APPROVAL_MODE_AUTO {
		t.Errorf("doc example parsed to %+v", p)
	}
}

// TestParseDefaults: what a file leaves out takes the documented
// defaults.
func TestParseDefaults(t *testing.T) {
	const src = `
approval:
  ttl: 2h
  on_expiry: proceed
manual:
  reboot: {approval: two-person}
rules:
  - name: r
    classes: memory.ue
    ladder:
      - action: reboot
      - action: migrate
        ttl: 1h
`
	p, err := Parse([]byte(src), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
	if p.DryRun || p.Limits.MaxOutOfService.String() != "10%" || p.Limits.MinAvailable.Set || p.Limits.Domains != nil {
		t.Errorf("limits %+v", p.Limits)
	}
	if p.Breaker != (Breaker{Nodes: 5, Percent: 5, Window: 15 * time.Minute}) {
		t.Errorf("breaker %+v", p.Breaker)
	}
	if len(p.Cooldowns) != 0 || p.MaxPerNodePerWeek != 0 {
		t.Errorf("cooldowns %v, cap %d: want none", p.Cooldowns, p.MaxPerNodePerWeek)
	}
	// The defaults' proceed is for rules' planned work: a person's request
	// nobody answered expires.
	deny := hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_DENY
	if a := p.ManualApproval(action.Reboot); a != (Approval{Mode: hwhealv1.ApprovalMode_APPROVAL_MODE_TWO_PERSON, TTL: 2 * time.Hour, OnExpiry: deny}) {
		t.Errorf("manual reboot %+v", a)
	}
	if a := p.ManualApproval(action.Online); a != (Approval{Mode: hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED, TTL: 2 * time.Hour, OnExpiry: deny}) {
		t.Errorf("manual online %+v", a)
	}
	r := p.Rules[0]
	if !slices.Equal(r.Classes, []string{"memory.ue"}) || r.EscalateWithin != 24*time.Hour || r.MinSeverity != 0 || r.DryRun || len(r.Windows) != 0 {
		t.Errorf("rule %+v", r)
	}
	s0, s1 := r.Ladder[0], r.Ladder[1]
	if s0.Approval != (Approval{Mode: hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED, TTL: 2 * time.Hour, OnExpiry: hwhealv1.ExpiryOutcome_EXPIRY_OUTCOME_PROCEED}) || s0.Timeout != 20*time.Minute {
		t.Errorf("step 1 %+v", s0)
	}
	if s1.Approval.TTL != time.Hour || s1.Timeout != 2*time.Hour {
		t.Errorf("step 2 %+v", s1)
	}

	// An empty file is a policy of defaults, and so is a limits: key with
	// no fleet limit in it: the fleet limit stays 10%.
	for _, src := range []string{"", "# nothing\n", "limits:\n  min_available: 50%\n"} {
		p, err := Parse([]byte(src), "e.yaml")
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if err := p.check(); err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if p.Limits.MaxOutOfService.String() != "10%" || p.ManualApproval(action.Reboot).Mode != hwhealv1.ApprovalMode_APPROVAL_MODE_REQUIRED {
			t.Errorf("%q: %+v", src, p)
		}
	}
	if p, err := Parse([]byte("breaker:\n  enabled: false\n"), "b.yaml"); err != nil || !p.Breaker.Disabled {
		t.Errorf("enabled: false: %+v, %v", p, err)
	}
}

// TestParseAllowed: what looks odd but is meant.
func TestParseAllowed(t *testing.T) {
	tests := []struct{ name, src string }{
		{"two-person planned work proceeds at its deadline", "rules:\n  - name: r\n    classes: [disk.smart_failing]\n    ladder:\n      - {action: migrate, approval: two-person, ttl: 72h, on_expiry: proceed}\n"},
		{"a ladder that repeats an action", "rules:\n  - name: r\n    classes: [gpu.xid]\n    ladder: [{action: reboot, approval: auto}, {action: reboot}, {action: offline}]\n"},
		{"rules before the windows they name", "rules:\n  - {name: r, classes: [disk.media], windows: nights, ladder: [{action: migrate}]}\nwindows:\n  - {name: nights, schedule: \"0 1 * * *\", duration: 3h}\n"},
		{"a class at a higher severity than an earlier rule's", "rules:\n  - {name: a, classes: [\"disk.*\"], min_severity: critical, ladder: [{action: offline}]}\n  - {name: b, classes: [disk.media], ladder: [{action: migrate}]}\n"},
		{"a catch-all last", "rules:\n  - {name: a, classes: [disk.media], ladder: [{action: offline}]}\n  - {name: b, classes: [\"*\"], min_severity: critical, ladder: [{action: offline}]}\n"},
		{"zero limits hold everything", "limits: {max_out_of_service: 0, domains: [{label: rack, max_out_of_service: 0%}]}\n"},
		{"empty sections", "limits:\nbreaker:\nwindows:\nfreezes:\ncooldowns:\nmanual:\nrules:\n"},
		{"a percentage written without %", "breaker: {percent: 2.5}\n"},
		{"an auto step keeps the ttl it had when it was required", "rules:\n  - name: r\n    classes: [gpu.xid]\n    ladder: [{action: reboot, approval: auto, ttl: 4h, on_expiry: deny}]\n"},
		{"a freeze in local time", "freezes:\n  - {name: f, from: \"2026-12-24 12:00\", to: 2026-12-27, timezone: Europe/Berlin}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.src), "ok.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if err := p.check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// badPolicies are files Parse refuses: the line of the first error and
// a part of its message. FuzzParse starts from them too.
var badPolicies = []struct {
	name string
	src  string
	line int
	msg  string
}{
	{"manual request that proceeds unanswered", "manual:\n  reboot:\n    approval: two-person\n    on_expiry: proceed\n", 3,
		"manual: reboot: on_expiry proceed is for planned work"},
	{"unknown top key", "dry_run: true\nlimit:\n  max_out_of_service: 3\n", 2,
		`unknown key "limit" (want dry_run, limits, breaker, approval, windows, freezes, cooldowns, max_per_node_per_week, manual or rules)`},
	{"unknown step key", "rules:\n  - name: r\n    classes: [memory.ue]\n    ladder:\n      - action: offline\n        timout: 20m\n", 6,
		`rule "r": ladder step 1: unknown key "timout" (want action, approval, ttl, on_expiry or timeout)`},
	{"duplicate key", "dry_run: true\nlimits: {}\ndry_run: false\n", 3, `duplicate key "dry_run" (first at line 1)`},
	{"bad duration", "approval:\n  ttl: 24hours\n", 2, `approval: ttl: "24hours" is not a duration such as 15m, 4h or 72h`},
	{"duration without unit", "cooldowns:\n  reboot: 3600\n", 2, `cooldowns: reboot: 3600 has no unit`},
	{"zero duration", "breaker:\n  window: 0s\n", 2, `breaker: window: 0s is not longer than zero`},
	{"negative duration", "rules:\n  - name: r\n    classes: [memory.ue]\n    escalate_within: -1h\n    ladder: [{action: offline}]\n", 4,
		`rule "r": escalate_within: -1h is not longer than zero`},
	{"bad cron", "windows:\n  - name: w\n    schedule: \"0 25 * * *\"\n    duration: 1h\n", 3, `window "w": schedule: "0 25 * * *": end of range (25) above maximum (23)`},
	{"six-field cron", "windows:\n  - name: w\n    schedule: \"0 0 22 * * 1-5\"\n    duration: 1h\n", 3, `expected exactly 5 fields`},
	{"cron that never opens", "freezes:\n  - name: f\n    schedule: \"0 0 30 2 *\"\n    duration: 1h\n", 3, `freeze "f": schedule: "0 0 30 2 *": never opens`},
	{"zone in the cron", "windows:\n  - name: w\n    schedule: \"TZ=UTC\"\n    duration: 1h\n", 3, `name the time zone in timezone:`},
	{"@every", "windows:\n  - name: w\n    schedule: \"@every 1h\"\n    duration: 1h\n", 3, `@every names no time of day`},
	{"window without duration", "windows:\n  - name: w\n    schedule: \"0 22 * * *\"\n", 3, `window "w": missing duration`},
	{"unknown timezone", "windows:\n  - name: w\n    schedule: \"0 22 * * *\"\n    duration: 6h\n    timezone: Europe/Berln\n", 5,
		`window "w": timezone: unknown time zone "Europe/Berln"`},
	{"host timezone", "windows:\n  - name: w\n    schedule: \"0 22 * * *\"\n    duration: 6h\n    timezone: Local\n", 5, `name the zone`},
	{"schedule and from", "freezes:\n  - name: f\n    schedule: \"0 22 * * *\"\n    duration: 6h\n    from: 2026-01-01\n", 5,
		`freeze "f": from: a freeze either recurs (schedule and duration) or is a one-off (from and to), not both`},
	{"to before from", "freezes:\n  - name: f\n    from: 2026-01-02\n    to: 2026-01-01\n", 4, `freeze "f": to: 2026-01-01T00:00:00Z is not after from: 2026-01-02T00:00:00Z`},
	{"bad time", "freezes:\n  - name: f\n    from: tomorrow\n    to: 2026-01-01\n", 3, `freeze "f": from: "tomorrow" is not a time`},
	{"window with nothing", "windows:\n  - name: w\n", 2, `window "w": want schedule and duration (recurring) or from and to (a one-off)`},
	{"duplicate window", "windows:\n  - {name: w, from: 2026-01-01, to: 2026-01-02}\n  - {name: w, from: 2026-01-01, to: 2026-01-02}\n", 3, `window "w": defined twice (first at line 2)`},
	{"unknown action", "rules:\n  - name: r\n    classes: [memory.ue]\n    ladder:\n      - action: rebot\n", 5,
		`rule "r": ladder step 1: action: unknown action "rebot" (want migrate, reboot or offline)`},
	{"online in a ladder", "rules:\n  - name: r\n    classes: [memory.ue]\n    ladder:\n      - action: online\n", 5, `online brings a repaired node back`},
	{"unknown cooldown action", "cooldowns:\n  reboot: 1h\n  restart: 1h\n", 3, `cooldowns: unknown action "restart" (want migrate, reboot, offline or online)`},
	{"unknown manual action", "manual:\n  powercycle: required\n", 2, `manual: unknown action "powercycle"`},
	{"unknown approval mode", "manual:\n  reboot: two_person\n", 2, `manual: reboot: unknown approval "two_person" (want auto, required or two-person)`},
	{"unknown expiry", "approval:\n  on_expiry: allow\n", 2, `approval: on_expiry: unknown outcome "allow" (want deny or proceed)`},
	{"unknown window", "windows:\n  - {name: nights, schedule: \"0 22 * * *\", duration: 6h}\nrules:\n  - name: r\n    classes: [memory.ue]\n    windows: [weeknights]\n    ladder: [{action: offline}]\n", 6,
		`rule "r": windows: window "weeknights" is not defined (defined: nights)`},
	{"freeze is no window", "freezes:\n  - {name: f, from: 2026-01-01, to: 2026-01-02}\nrules:\n  - name: r\n    classes: [memory.ue]\n    windows: f\n    ladder: [{action: offline}]\n", 6,
		`window "f" is not defined (defined: none; add it under windows:)`},
	{"duplicate rule name", "rules:\n  - name: r\n    classes: [memory.ue]\n    ladder: [{action: offline}]\n  - name: r\n    classes: [cpu.thermal]\n    ladder: [{action: offline}]\n", 5,
		`rule "r": defined twice (first at line 2)`},
	{"empty ladder", "rules:\n  - name: r\n    classes: [memory.ue]\n    ladder: []\n", 4, `rule "r": ladder: is empty, want at least one step`},
	{"missing ladder", "rules:\n  - name: r\n    classes: [memory.ue]\n", 2, `rule "r": missing ladder`},
	{"missing name", "rules:\n  - classes: [memory.ue]\n    ladder: [{action: offline}]\n", 2, `rules item 1: missing name`},
	{"missing classes", "rules:\n  - name: r\n    ladder: [{action: offline}]\n", 2, `rule "r": missing classes`},
	{"bad class", "rules:\n  - name: r\n    classes: [Memory.UE]\n    ladder: [{action: offline}]\n", 3, `rule "r": classes: "Memory.UE" is not a fault class`},
	{"bad glob", "rules:\n  - name: r\n    classes: [\"disk.[\"]\n    ladder: [{action: offline}]\n", 3, `is not a glob: syntax error in pattern`},
	{"shadowed class", "rules:\n  - name: disks\n    classes: [\"disk.*\"]\n    ladder: [{action: migrate}]\n  - name: media\n    classes: [disk.media]\n    ladder: [{action: offline}]\n", 5,
		`rule "media": classes: rule "disks" (line 2) covers disk.media first, so this rule would never apply to it`},
	{"unknown severity", "rules:\n  - name: r\n    classes: [memory.ue]\n    min_severity: error\n    ladder: [{action: offline}]\n", 4, `unknown severity "error" (want info, warning or critical)`},
	{"percent above 100", "limits:\n  max_out_of_service: 120%\n", 2, `limits: max_out_of_service: 120% is out of range, want 0% to 100%`},
	{"negative count", "limits:\n  min_available: -1\n", 2, `limits: min_available: -1 is out of range`},
	{"negative percent", "limits:\n  domains:\n    - label: rack\n      max_out_of_service: -5%\n", 4, `limits: domain "rack": max_out_of_service: -5% is out of range`},
	{"fractional count", "limits:\n  max_out_of_service: 2.5\n", 2, `limits: max_out_of_service: is "2.5", want a count of nodes (3) or a percentage (5%)`},
	{"not a percentage", "limits:\n  max_out_of_service: NaN%\n", 2, `"NaN%" is not a percentage`},
	{"duplicate domain", "limits:\n  domains:\n    - {label: rack, max_out_of_service: 1}\n    - {label: rack, max_out_of_service: 2}\n", 4, `limits: domain "rack": the label is limited twice (first at line 3)`},
	{"domain without label", "limits:\n  domains:\n    - max_out_of_service: 1\n", 3, `limits: domains item 1: missing label`},
	{"breaker of no nodes", "breaker:\n  nodes: 0\n", 2, `breaker: nodes: 0 is out of range, want 1 or more`},
	{"negative cap", "max_per_node_per_week: -1\n", 1, `max_per_node_per_week: -1 is out of range`},
	{"wrong type: bool", "dry_run: yes\n", 1, `dry_run: is "yes", want true or false`},
	{"wrong type: list for mapping", "limits:\n  - max_out_of_service: 3\n", 2, `limits: is a list, want a mapping`},
	{"wrong type: mapping for list", "rules:\n  name: r\n", 2, `rules: is a mapping, want a list`},
	{"wrong type: string for int", "max_per_node_per_week: three\n", 1, `max_per_node_per_week: is "three", want a whole number`},
	{"wrong type: list for string", "rules:\n  - name: [a]\n    classes: [memory.ue]\n    ladder: [{action: offline}]\n", 2, `rules item 1: name: is a list, want a string`},
	{"null step", "rules:\n  - name: r\n    classes: [memory.ue]\n    ladder:\n      -\n", 5, `rule "r": ladder step 1: is empty, want a mapping (action: offline)`},
	{"null rule", "rules:\n  -\n", 2, `rules item 1: is empty, want a mapping (name, classes, ladder)`},
	{"null window", "freezes:\n  - \n", 2, `freezes item 1: is empty, want a mapping`},
	{"scalar domain", "limits:\n  domains: [rack]\n", 2, `limits: domains item 1: is "rack", want a mapping`},
	{"top level list", "- dry_run: true\n", 1, `the top level is a list, want a mapping`},
	{"second document", "dry_run: true\n---\ndry_run: false\n", 2, `more than one YAML document`},
	{"syntax error", "rules: [\n", 1, `did not find expected node content`},
	{"bad name", "rules:\n  - name: \"kernel lockup\"\n    classes: [memory.ue]\n    ladder: [{action: offline}]\n", 2, `rules item 1: name: "kernel lockup" is not a name`},
}

var errLineRE = regexp.MustCompile(`^bad\.yaml:(\d+): `)

// TestParseErrors: each bad file is refused, its first error at the
// line the problem is on, naming the key and what is wanted.
func TestParseErrors(t *testing.T) {
	for _, tc := range badPolicies {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.src), "bad.yaml")
			if err == nil {
				t.Fatalf("parsed %+v, want an error", p)
			}
			first := strings.SplitN(err.Error(), "\n", 2)[0]
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("%v holds no *Error", err)
			}
			if pe.File != "bad.yaml" || pe.Line != tc.line || !strings.HasPrefix(first, "bad.yaml:") {
				t.Errorf("error %q at line %d, want line %d", first, pe.Line, tc.line)
			}
			if !strings.Contains(first, tc.msg) {
				t.Errorf("error %q, want it to say %q", first, tc.msg)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !errLineRE.MatchString(line) {
					t.Errorf("error line %q lacks the bad.yaml:LINE: prefix", line)
				}
			}
		})
	}
}

// TestParseErrorsAll: one pass reports every problem, each at its line,
// and does not repeat a broken window as a missing one.
func TestParseErrorsAll(t *testing.T) {
	const src = `dry_run: maybe
limits:
  max_out_of_service: 200%
windows:
  - name: nights
    schedule: "0 22 * *"
    duration: 6h
rules:
  - name: r
    classes: [memory.ue]
    windows: [nights]
    ladder:
      - action: explode
`
	_, err := Parse([]byte(src), "bad.yaml")
	if err == nil {
		t.Fatal("parsed")
	}
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		lines = append(lines, errLineRE.FindStringSubmatch(l)[1])
	}
	if want := []string{"1", "3", "6", "13"}; !slices.Equal(lines, want) {
		t.Errorf("errors at lines %v, want %v:\n%v", lines, want, err)
	}
}

// TestParseAliases: anchors and aliases work where values are expected;
// merge keys are refused as unknown keys rather than half-supported.
func TestParseAliases(t *testing.T) {
	const src = `approval:
  ttl: &day 24h
cooldowns:
  reboot: *day
rules:
  - name: a
    classes: &fatal [memory.ue, pcie.aer_fatal]
    ladder: &off [{action: offline}]
  - name: b
    classes: [cpu.thermal]
    ladder: *off
`
	p, err := Parse([]byte(src), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Cooldown(action.Reboot) != 24*time.Hour || len(p.Rules) != 2 || p.Rules[1].Ladder[0].Action != action.Offline {
		t.Errorf("%+v", p)
	}
	_, err = Parse([]byte("base: &b {ttl: 1h}\napproval:\n  <<: *b\n"), "m.yaml")
	if err == nil || !strings.Contains(err.Error(), `m.yaml:1: unknown key "base"`) || !strings.Contains(err.Error(), `m.yaml:3: approval: unknown key "<<"`) {
		t.Errorf("merge key: %v", err)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want ErrNotExist", err)
	}
}
