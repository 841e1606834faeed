package detect_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/agent/source/blockio"
	"github.com/hwheal/hwheal/agent/source/netlink"
	"github.com/hwheal/hwheal/agent/source/rasevent"
	"github.com/hwheal/hwheal/pkg/smart"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// One good rule of each kind; the error cases below break them.
const (
	goodThreshold = `rules:
  - name: hot
    kind: threshold
    class: cpu.thermal
    severity: critical
    source: hwmon
    sample: "*_over_crit"
    at_least: 1
    for: 2m
`
	goodRate = `rules:
  - name: flap
    kind: rate
    class: nic.link_flap
    severity: warning
    source: netdev
    sample: carrier_changes
    increase: 6
    window: 10m
`
	goodSmart = `rules:
  - name: media
    kind: smart
    class: disk.media
    severity: warning
    any:
      - {attribute: 197, raw_above: 0}
      - {attribute: 5, raw_above: 0, growing: true}
`
	goodOutlier = `rules:
  - name: slow
    kind: outlier
    class: disk.latency_outlier
    severity: warning
    source: blockio
    sample: latency_p99_us
    peers: [role]
`
	goodAgent = `rules:
  - name: netlink-link-flap
    kind: agent
    mode: shadow
`
)

// TestLoadKindErrors feeds broken rules of every kind and checks that each
// error names the file, the line, the rule and the field.
func TestLoadKindErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown kind", strings.Replace(goodThreshold, "kind: threshold", "kind: gauge", 1),
			[]string{`test.yaml:3: rule "hot": kind: unknown kind "gauge"`}},
		{"key of another kind", goodThreshold + "    window: 10m\n",
			[]string{`test.yaml:10: rule "hot": unknown key "window" for a threshold rule`}},
		{"pattern key in a threshold rule", goodThreshold + "    pattern: x\n",
			[]string{`test.yaml:10: rule "hot": unknown key "pattern" for a threshold rule`}},
		{"unknown mode", goodThreshold + "    mode: dry-run\n",
			[]string{`test.yaml:10: rule "hot": mode: unknown mode "dry-run" (want enforce or shadow)`}},
		{"bad clear_after", goodThreshold + "    clear_after: 1d\n",
			[]string{`test.yaml:10: rule "hot": clear_after: "1d" is neither a duration such as 24h or 15m nor never`}},
		{"zero clear_after", goodThreshold + "    clear_after: 0s\n",
			[]string{`test.yaml:10: rule "hot": clear_after: 0s is not positive (write never`}},
		{"enabled not a bool", goodThreshold + "    enabled: yes please\n",
			[]string{`test.yaml:10: rule "hot": enabled: is "yes please", want true or false`}},
		{"threshold: no limit", strings.Replace(goodThreshold, "    at_least: 1\n", "", 1),
			[]string{`test.yaml:2: rule "hot": above: required: one of above, below, at_least or at_most`}},
		{"threshold: two limits", goodThreshold + "    below: 5\n",
			[]string{`test.yaml:10: rule "hot": below: give one of above, below, at_least or at_most, not at_least and below`}},
		{"threshold: limit not a number", strings.Replace(goodThreshold, "at_least: 1", "at_least: hot", 1),
			[]string{`test.yaml:8: rule "hot": at_least: is "hot", want a number`}},
		{"threshold: bad for", strings.Replace(goodThreshold, "for: 2m", "for: soon", 1),
			[]string{`test.yaml:9: rule "hot": for: "soon" is not a duration`}},
		{"threshold: no source", strings.Replace(goodThreshold, "    source: hwmon\n", "", 1),
			[]string{`test.yaml:2: rule "hot": source: required`}},
		{"threshold: sample matching everything", strings.Replace(goodThreshold, `"*_over_crit"`, `"**"`, 1),
			[]string{`test.yaml:7: rule "hot": sample: "**" matches every sample`}},
		{"threshold: summary names an unknown value", goodThreshold + "    summary: \"{device} is hot\"\n",
			[]string{`test.yaml:10: rule "hot": summary: capture "device" is not a value a threshold rule's summary can name (class, for, limit, model, part, rule, sample, serial, source, value)`}},
		{"rate: no window", strings.Replace(goodRate, "    window: 10m\n", "", 1),
			[]string{`test.yaml:2: rule "flap": window: required`}},
		{"rate: zero window", strings.Replace(goodRate, "window: 10m", "window: 0s", 1),
			[]string{`test.yaml:9: rule "flap": window: 0s is not positive`}},
		{"rate: negative increase", strings.Replace(goodRate, "increase: 6", "increase: -6", 1),
			[]string{`test.yaml:8: rule "flap": increase: -6 is not positive`}},
		{"rate: increase not a number", strings.Replace(goodRate, "increase: 6", "increase: [6]", 1),
			[]string{`test.yaml:8: rule "flap": increase: is a list, want a number`}},
		{"smart: no conditions", strings.Replace(goodSmart, "    any:\n      - {attribute: 197, raw_above: 0}\n      - {attribute: 5, raw_above: 0, growing: true}\n", "", 1),
			[]string{`test.yaml:2: rule "media": any: required`}},
		{"smart: condition without a test", goodSmart + "      - {attribute: 198}\n",
			[]string{`test.yaml:9: rule "media": any[2]: has no test`}},
		{"smart: condition names nothing", goodSmart + "      - {raw_above: 0}\n",
			[]string{`test.yaml:9: rule "media": any[2]: names neither attribute nor sample`}},
		{"smart: attribute and sample", goodSmart + "      - {attribute: 5, sample: x, raw_above: 0}\n",
			[]string{`test.yaml:9: rule "media": any[2].sample: give attribute or sample, not both`}},
		{"smart: attribute out of range", goodSmart + "      - {attribute: 300, raw_above: 0}\n",
			[]string{`test.yaml:9: rule "media": any[2].attribute: 300 is not an ATA attribute id`}},
		{"smart: unknown test", goodSmart + "      - {attribute: 5, raw_abve: 0}\n",
			[]string{`test.yaml:9: rule "media": any[2]: unknown key "raw_abve"`}},
		{"smart: growing false", goodSmart + "      - {attribute: 5, growing: false}\n",
			[]string{`test.yaml:9: rule "media": any[2].growing: false tests nothing`}},
		{"smart: at_threshold on a sample", goodSmart + "      - {sample: nvme_percentage_used, at_threshold: true}\n",
			[]string{`test.yaml:9: rule "media": any[2].at_threshold: needs an attribute`}},
		{"smart: every attribute with raw_above", goodSmart + "      - {attribute: \"*\", raw_above: 0}\n",
			[]string{`test.yaml:9: rule "media": any[2].attribute: * (every attribute) goes only with at_threshold`}},
		{"smart: bits out of range", goodSmart + "      - {sample: nvme_critical_warning, bits: 0x100}\n",
			[]string{`test.yaml:9: rule "media": any[2].bits: 0x100 is not a bit mask of 1 to 0xff`}},
		{"smart: condition severity", goodSmart + "      - {attribute: 198, raw_above: 0, severity: fatal}\n",
			[]string{`test.yaml:9: rule "media": any[2].severity: unknown severity "fatal"`}},
		{"smart: condition is a list", goodSmart + "      - [5]\n",
			[]string{`test.yaml:9: rule "media": any[2]: is a list, want a mapping`}},
		{"outlier: min_peers too small", goodOutlier + "    min_peers: 2\n",
			[]string{`test.yaml:9: rule "slow": min_peers: 2: want a whole number of at least 3`}},
		{"outlier: bad direction", goodOutlier + "    direction: up\n",
			[]string{`test.yaml:9: rule "slow": direction: unknown direction "up" (want high or low)`}},
		{"outlier: threshold under 1", goodOutlier + "    threshold: 0.5\n",
			[]string{`test.yaml:9: rule "slow": threshold: 0.5: want a robust z-score of at least 1`}},
		{"outlier: negative min_value", goodOutlier + "    min_value: -5\n",
			[]string{`test.yaml:9: rule "slow": min_value: -5: want a distance from the median of 0 or more`}},
		{"outlier: glob sample", strings.Replace(goodOutlier, "latency_p99_us", "latency_*", 1),
			[]string{`test.yaml:7: rule "slow": sample: "latency_*": a glob is not allowed here`}},
		{"outlier: peer listed twice", strings.Replace(goodOutlier, "[role]", "[role, role]", 1),
			[]string{`test.yaml:8: rule "slow": peers: label "role" listed twice`}},
		{"agent: name and name_prefix", goodAgent + "    name_prefix: netlink-\n",
			[]string{`test.yaml:5: rule "netlink-link-flap": name_prefix: give name or name_prefix, not both`}},
		{"agent: name with spaces", strings.Replace(goodAgent, "netlink-link-flap", "'link flap'", 1),
			[]string{`test.yaml:2: rule "link flap": name: "link flap" is not a rule name an agent sends`}},
		{"agent: no name", strings.Replace(goodAgent, "  - name: netlink-link-flap\n    kind: agent", "  - kind: agent", 1),
			[]string{`test.yaml:2: name: required (or name_prefix)`}},
		{"agent: summary", goodAgent + "    summary: x\n",
			[]string{`test.yaml:5: rule "netlink-link-flap": unknown key "summary" for a agent rule`}},
		{"agent: bad clear_after_by_class", goodAgent + "    clear_after_by_class: {memory: never, memory.ue: soon}\n",
			[]string{`test.yaml:5: rule "netlink-link-flap": clear_after_by_class: key "memory" is not a dotted lower-case class`,
				`test.yaml:5: rule "netlink-link-flap": clear_after: "soon" is neither a duration`}},
		{"name_prefix on a pattern rule", strings.Replace(goodRule, "  - name: disk-io-error", "  - name_prefix: disk-", 1),
			[]string{`test.yaml:2: rule "disk-*": unknown key "name_prefix" for a pattern rule`, `test.yaml:2: name: required`}},
		{"only patch keys, nothing to patch", "rules:\n  - name: nothing-here\n    mode: shadow\n",
			[]string{`test.yaml:2: rule "nothing-here": name: no earlier file defines this rule, so this is no patch`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := detect.Load(strings.NewReader(tc.yaml), "test.yaml")
			if err == nil {
				t.Fatalf("Load succeeded with %d rules, want an error", len(rs.Rules()))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			for _, e := range unjoin(err) {
				var le *detect.Error
				if !errors.As(e, &le) || le.File != "test.yaml" || le.Line == 0 {
					t.Errorf("error %v is not a *detect.Error naming test.yaml and a line", e)
				}
			}
		})
	}
	// The good ones load.
	for _, src := range []string{goodThreshold, goodRate, goodSmart, goodOutlier} {
		loadRules(t, src)
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// TestLoadDefaults checks what a rule gets when it does not say.
func TestLoadDefaults(t *testing.T) {
	rs := loadRules(t, strings.Join([]string{goodThreshold, goodRate[len("rules:\n"):], goodSmart[len("rules:\n"):], goodOutlier[len("rules:\n"):], goodRule[len("rules:\n"):]}, ""))
	want := map[string]struct {
		kind  detect.Kind
		clear time.Duration
	}{
		"hot":           {detect.KindThreshold, 15 * time.Minute},
		"flap":          {detect.KindRate, 10 * time.Minute}, // the window
		"media":         {detect.KindSmart, 2 * time.Hour},
		"slow":          {detect.KindOutlier, time.Hour},
		"disk-io-error": {detect.KindPattern, 24 * time.Hour},
	}
	for _, r := range rs.Rules() {
		w := want[r.Name]
		if r.Kind != w.kind || r.ClearAfter != w.clear || r.Mode != hwhealv1.RuleMode_RULE_MODE_ENFORCE || !r.Enabled || r.File != "test.yaml" {
			t.Errorf("rule %s: %+v; want kind %s, clear after %v, enforced, enabled", r.Name, r, w.kind, w.clear)
		}
	}
	if r, _ := rs.Lookup("media"); r.Source != detect.DefaultSmartSource {
		t.Errorf("smart rule source %q, want %q", r.Source, detect.DefaultSmartSource)
	}
	if r, _ := rs.Lookup("hot"); r.Source != "hwmon" || r.Sample != "*_over_crit" {
		t.Errorf("threshold rule source %q sample %q", r.Source, r.Sample)
	}
	o := rs.Outliers()
	if len(o) != 1 || o[0].MinPeers != detect.DefaultMinPeers || o[0].Threshold != detect.DefaultOutlierThreshold ||
		o[0].Direction != detect.DirectionHigh || o[0].MinValue != 0 || !slices.Equal(o[0].Peers, []string{"role"}) || o[0].Name != "slow" {
		t.Errorf("Outliers() = %+v", o)
	}
}

// TestOverrides loads a base file and an override file as the collector
// loads the shipped rules and /etc/hwheal/rules.d: a rule given only
// patch keys is patched, one given its kind's fields replaced, a new one
// added; a disabled rule never matches but is listed.
func TestOverrides(t *testing.T) {
	base := detect.File{Name: "base.yaml", Data: []byte(goodRule + strings.TrimPrefix(goodThreshold, "rules:\n") + strings.TrimPrefix(goodRate, "rules:\n") + strings.TrimPrefix(goodAgent, "rules:\n"))}
	local := detect.File{Name: "rules.d/local.yaml", Data: []byte(`rules:
  # Patch: into shadow, a new severity and clear time; the rest stays.
  - name: disk-io-error
    mode: shadow
    severity: info
    clear_after: never
  # Replace: a new limit.
  - name: hot
    kind: threshold
    class: cpu.thermal
    severity: warning
    source: hwmon
    sample: "*_celsius"
    above: 99
  # Off.
  - name: flap
    enabled: false
  # New.
  - name: cold
    kind: threshold
    class: node.cold
    severity: info
    source: hwmon
    sample: "*_celsius"
    below: 5
`)}
	rs, err := detect.LoadFiles(base, local)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rs.Rules() {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "disk-io-error,hot,flap,netlink-link-flap,cold" {
		t.Errorf("rules %s: want the base's order, replaced rules in place, new ones last", got)
	}

	io, _ := rs.Lookup("disk-io-error")
	if io.Mode != hwhealv1.RuleMode_RULE_MODE_SHADOW || io.Severity != hwhealv1.Severity_SEVERITY_INFO || io.ClearAfter != 0 ||
		io.File != "base.yaml" || io.Class != "disk.io_error" || !io.Enabled {
		t.Errorf("patched rule %+v", io)
	}
	fs := rs.Match(record("I/O error, dev sda, sector 1234"))
	if len(fs) != 1 || fs[0].GetSeverity() != hwhealv1.Severity_SEVERITY_INFO {
		t.Errorf("patched rule matched %s, want one info fault", describe(fs))
	}

	hot, _ := rs.Lookup("hot")
	if hot.File != "rules.d/local.yaml" || hot.Line != 8 || hot.Sample != "*_celsius" || hot.Severity != hwhealv1.Severity_SEVERITY_WARNING {
		t.Errorf("replaced rule %+v", hot)
	}
	ev := detect.NewEvaluator(rs, detect.EvaluatorOptions{})
	if fs := ev.Observe("n1", obs("hwmon", cpuChip, 0, "core_0_celsius", 100, "core_0_over_crit", 1)); len(fs) != 1 || fs[0].GetRule() != "hot" {
		t.Errorf("replaced rule raised %s, want hot from its new limit", describe(fs))
	}
	if fs := ev.Observe("n1", obs("hwmon", cpuChip, time.Hour, "core_0_celsius", 98, "core_0_over_crit", 1)); len(fs) != 0 {
		t.Errorf("replaced rule raised %s on its old condition", describe(fs))
	}
	if fs := ev.Observe("n1", obs("hwmon", cpuChip, 2*time.Hour, "core_0_celsius", 4)); len(fs) != 1 || fs[0].GetRule() != "cold" {
		t.Errorf("new rule raised %s", describe(fs))
	}

	flap, ok := rs.Lookup("flap")
	if !ok || flap.Enabled {
		t.Errorf("disabled rule: %+v (listed %v)", flap, ok)
	}
	ev.Observe("n1", obs("netdev", eth0, 0, "carrier_changes", 0))
	if fs := ev.Observe("n1", obs("netdev", eth0, time.Minute, "carrier_changes", 100)); len(fs) != 0 {
		t.Errorf("disabled rule raised %s", describe(fs))
	}

	// Errors across files are joined, each naming its own file and line;
	// the good rules of a file with errors still apply, so that a later
	// file reports only its own mistakes.
	broken := detect.File{Name: "broken.yaml", Data: []byte(goodRule + strings.Replace(strings.TrimPrefix(goodRate, "rules:\n"), "severity: warning", "severity: fatal", 1))}
	bad := detect.File{Name: "rules.d/bad.yaml", Data: []byte("rules:\n  - name: disk-io-error\n    mode: loud\n  - name: nope\n    enabled: false\n  - name: flap\n    enabled: false\n")}
	_, err = detect.LoadFiles(broken, bad)
	for _, w := range []string{
		`broken.yaml:13: rule "flap": severity: unknown severity "fatal"`,
		`rules.d/bad.yaml:3: rule "disk-io-error": mode: unknown mode "loud"`,
		`rules.d/bad.yaml:4: rule "nope": name: no earlier file defines this rule`,
		`rules.d/bad.yaml:6: rule "flap": name: no earlier file defines this rule`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\nwant it to contain %q", err, w)
		}
	}
	if err != nil && strings.Contains(err.Error(), `bad.yaml:2: rule "disk-io-error": name: no earlier`) {
		t.Errorf("error %v: a good rule of a file with errors was not applied", err)
	}
	if n := len(unjoin(err)); n != 4 {
		t.Errorf("%d errors, want 4: %v", n, err)
	}

	// A disabled pattern rule never matches, and its agents' faults are
	// dropped.
	rs, err = detect.LoadFiles(base, detect.File{Name: "off.yaml", Data: []byte("rules:\n  - name: disk-io-error\n    enabled: false\n")})
	if err != nil {
		t.Fatal(err)
	}
	if fs := rs.Match(record("I/O error, dev sda, sector 1234")); len(fs) != 0 {
		t.Errorf("disabled pattern rule matched %s", describe(fs))
	}
	if rs.Annotate(&hwhealv1.Fault{Rule: "disk-io-error"}) {
		t.Error("Annotate keeps a fault of a disabled rule")
	}

	// Within one file a name is defined once.
	dup := detect.File{Name: "dup.yaml", Data: []byte("rules:\n  - name: flap\n    mode: shadow\n  - name: flap\n    enabled: false\n")}
	if _, err := detect.LoadFiles(base, dup); err == nil || !strings.Contains(err.Error(), `dup.yaml:4: rule "flap": name: duplicate rule name (first defined at line 2)`) {
		t.Errorf("two patches of one rule in one file: err = %v", err)
	}
}

// TestAnnotate checks what the collector sets on faults agents report:
// mode and clear time from the rule the fault names, the severity where
// the rules fix it, and false for a disabled rule.
func TestAnnotate(t *testing.T) {
	files := append(detect.BuiltinFiles(), detect.File{Name: "local.yaml", Data: []byte(`rules:
  - name: nvidia-xid
    severity: info
  - name: netlink-bond-degraded
    enabled: false
  - name: mce-record
    mode: shadow
  # A family of agent rules, as a vendor plugin would raise them.
  - name_prefix: "vendor/"
    kind: agent
    part: disk
    clear_after: never
    clear_after_by_class:
      nvme.critical_warning: 24h
  # A replaced pattern rule: the agents still match the shipped one.
  - name: hung-task
    class: kernel.hung_task
    severity: info
    part: node
    contains: "blocked for more than"
    pattern: 'task (?P<task>\S+) blocked for more than'
    summary: "{task} hung"
`)})
	rs, err := detect.LoadFiles(files...)
	if err != nil {
		t.Fatal(err)
	}
	const never = time.Duration(-1)
	for _, tc := range []struct {
		name        string
		rule, class string
		sev         hwhealv1.Severity // the agent's
		wantSev     hwhealv1.Severity
		mode        hwhealv1.RuleMode
		clear       time.Duration
		keep        bool
	}{
		{"pattern rule", "blk-io-error", "disk.io_error", crit, crit, enforce, 24 * time.Hour, true},
		{"pattern rule that never clears", "edac-ue", "memory.ue", crit, crit, enforce, never, true},
		{"pattern rule whose severity_by the agent applied", "scsi-sense-error", "disk.scsi_error", crit, crit, enforce, 24 * time.Hour, true},
		{"severity patched by an override", "nvidia-xid", "gpu.xid", crit, info, enforce, 24 * time.Hour, true},
		{"pattern rule replaced by an override", "hung-task", "kernel.hung_task", warn, info, enforce, 24 * time.Hour, true},
		{"agent rule", "netlink-link-flap", "nic.link_flap", warn, warn, enforce, 24 * time.Hour, true},
		{"agent rule by class: ue", rasevent.RuleMCEvent, "memory.ue", crit, crit, enforce, never, true},
		{"agent rule by class: ce", rasevent.RuleMCEvent, "memory.ce", info, info, enforce, 24 * time.Hour, true},
		{"agent rule patched to shadow", rasevent.RuleMCERecord, "cpu.mce_corrected", info, info, shadow, 24 * time.Hour, true},
		{"agent rule by prefix", "vendor/ata.pending_sectors", "disk.media", warn, warn, enforce, never, true},
		{"agent rule by prefix and class", "vendor/nvme.temperature", "nvme.critical_warning", warn, warn, enforce, 24 * time.Hour, true},
		// The SMART source raises no faults (the collector's smart rules
		// judge its readings): nothing declares its old rule names.
		{"former SMART agent rule", "smart/" + smart.CodeATAPending, "disk.media", warn, warn, enforce, detect.DefaultClearAfter, true},
		{"disabled agent rule", netlink.RuleBondDegraded, "nic.bond_degraded", warn, warn, enforce, 24 * time.Hour, false},
		{"unknown rule", "gpu-ecc-sram", "gpu.memory", crit, crit, enforce, detect.DefaultClearAfter, true},
		{"no rule", "", "node.unknown", warn, warn, enforce, detect.DefaultClearAfter, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &hwhealv1.Fault{Rule: tc.rule, FaultClass: tc.class, Severity: tc.sev}
			keep := rs.Annotate(f)
			clear := never
			if f.GetClearAfter() != nil {
				clear = f.GetClearAfter().AsDuration()
			}
			if keep != tc.keep || f.GetMode() != tc.mode || clear != tc.clear || f.GetSeverity() != tc.wantSev {
				t.Errorf("Annotate = %v, mode %v, clear %v, severity %v; want %v, %v, %v, %v",
					keep, f.GetMode(), clear, f.GetSeverity(), tc.keep, tc.mode, tc.clear, tc.wantSev)
			}
		})
	}
}

// TestLookupPrefix: of several name_prefix rules the longest that fits
// wins, wherever it is in the files; an exact name wins over any prefix.
func TestLookupPrefix(t *testing.T) {
	rs := loadRules(t, `rules:
  - name_prefix: "vendor/"
    kind: agent
    clear_after: never
  - name_prefix: "vendor/nvme."
    kind: agent
    clear_after: 1h
  - name: vendor/nvme.media_errors
    kind: agent
    clear_after: 2h
`)
	for _, tc := range []struct {
		name, rule string
	}{
		{"vendor/ata.pending_sectors", "vendor/*"},
		{"vendor/nvme.percentage_used", "vendor/nvme.*"},
		{"vendor/nvme.media_errors", "vendor/nvme.media_errors"},
		{"vendor", ""},
		{"nvme.media_errors", ""},
	} {
		r, ok := rs.Lookup(tc.name)
		if r.Name != tc.rule || ok != (tc.rule != "") {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tc.name, r.Name, ok, tc.rule)
		}
	}
}

const (
	info    = hwhealv1.Severity_SEVERITY_INFO
	warn    = hwhealv1.Severity_SEVERITY_WARNING
	crit    = hwhealv1.Severity_SEVERITY_CRITICAL
	enforce = hwhealv1.RuleMode_RULE_MODE_ENFORCE
	shadow  = hwhealv1.RuleMode_RULE_MODE_SHADOW
)

// TestAgentRulesDeclared fails when a rule the agent's code raises has no
// declaration in the shipped rules, so that its faults would fall back to
// the unknown-rule defaults. The names are the sources' own constants.
func TestAgentRulesDeclared(t *testing.T) {
	rs := builtin(t)
	names := []string{
		blockio.Rule,
		rasevent.RuleMCEvent, rasevent.RuleMCERecord, rasevent.RuleAEREvent, rasevent.RuleMemoryFailure,
		netlink.RuleLinkFlap, netlink.RuleBondDegraded,
	}
	for _, name := range names {
		r, ok := rs.Lookup(name)
		if !ok || r.Kind != detect.KindAgent {
			t.Errorf("agent rule %q: no agent declaration in rules/agent.yaml (found %+v)", name, r)
		}
	}
	// The SMART source raises none: the smart rules of hardware.yaml are
	// the one place a SMART reading becomes a fault.
	for _, r := range rs.Rules() {
		if r.Kind == detect.KindAgent && (r.Source == "smart" || strings.HasPrefix(r.Name, "smart")) {
			t.Errorf("agent rule %s declares SMART faults the agent no longer raises", r.Name)
		}
	}
}

// TestOutlierRules checks the shipped outlier rule as the collector gets
// it, and its summary.
func TestOutlierRules(t *testing.T) {
	rs := builtin(t)
	out := rs.Outliers()
	if len(out) != 1 {
		t.Fatalf("Outliers() = %+v, want the shipped disk latency rule", out)
	}
	o := out[0]
	if o.Name != "disk-latency-outlier" || o.Kind != detect.KindOutlier || o.Class != "disk.latency_outlier" ||
		o.Source != "blockio" || o.Sample != "latency_p99_us" || o.MinPeers != 8 || o.Threshold != 3.5 || o.MinValue != 20000 ||
		o.Direction != detect.DirectionHigh || o.Mode != hwhealv1.RuleMode_RULE_MODE_SHADOW || o.ClearAfter != time.Hour ||
		!slices.Equal(o.Peers, []string{"role"}) || !o.Enabled {
		t.Fatalf("shipped outlier rule %+v", o)
	}
	o.Peers[0] = "mutated"
	if rs.Outliers()[0].Peers[0] != "role" {
		t.Error("Outliers returns peers that write through to the rule set")
	}
	got := o.RenderSummary(detect.OutlierValues{Part: "sdc", Value: 90000, Median: 12000, MAD: 1000, Score: 52.61, Peers: 8})
	if got != "sdc p99 latency 90000 us, 52.6 robust z above the median 12000 us of 8 peers" {
		t.Errorf("RenderSummary = %q", got)
	}
	// A disabled outlier rule is listed, not run.
	rs, err := detect.LoadFiles(append(detect.BuiltinFiles(), detect.File{Name: "off.yaml", Data: []byte("rules:\n  - name: disk-latency-outlier\n    enabled: false\n")})...)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := rs.Lookup("disk-latency-outlier"); !ok || r.Enabled || len(rs.Outliers()) != 0 {
		t.Errorf("disabled outlier rule: listed %v %+v, Outliers() = %+v", ok, r, rs.Outliers())
	}
}

// TestLoadDir loads the shipped rules with a rules.d directory as the
// collector does: *.yaml files in name order, others ignored; a missing
// directory adds nothing.
func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("20-off.yaml", "rules:\n  - name: nic-errors\n    enabled: false\n")
	write("10-shadow.yaml", "rules:\n  - name: nic-errors\n    mode: enforce\n  - name: edac-ue\n    mode: shadow\n")
	write("README", "not rules")
	write(".10-shadow.yaml.swp.yaml", "garbage: [")
	if err := os.Mkdir(filepath.Join(dir, "old.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	rs, names, err := detect.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "10-shadow.yaml"), filepath.Join(dir, "20-off.yaml")}; !slices.Equal(names, want) {
		t.Errorf("files read %v, want %v", names, want)
	}
	if r, _ := rs.Lookup("nic-errors"); r.Enabled || r.Mode != hwhealv1.RuleMode_RULE_MODE_ENFORCE {
		t.Errorf("nic-errors %+v: want enforce from 10-, then disabled by 20-", r)
	}
	if r, _ := rs.Lookup("edac-ue"); r.Mode != hwhealv1.RuleMode_RULE_MODE_SHADOW {
		t.Errorf("edac-ue mode %v, want shadow", r.Mode)
	}

	rs, names, err = detect.LoadDir(filepath.Join(dir, "absent"))
	if err != nil || len(names) != 0 || len(rs.Rules()) != len(builtin(t).Rules()) {
		t.Errorf("missing directory: %d rules, files %v, err %v; want the shipped rules alone", len(rs.Rules()), names, err)
	}
	if _, err := detect.ReadDir(filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadDir(absent) = %v, want fs.ErrNotExist", err)
	}

	write("30-bad.yaml", "rules:\n  - name: nic-errors\n    mode: loud\n")
	if _, _, err := detect.LoadDir(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "30-bad.yaml")+`:3: rule "nic-errors": mode:`) {
		t.Errorf("bad file: err = %v, want its path and line", err)
	}
}
