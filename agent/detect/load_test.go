package detect_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hwheal/hwheal/agent/detect"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// TestShippedRules parses every shipped rule file, embedded and on disk
// (they are the same bytes; the test catches an embed that went stale),
// alone and together, and checks what every rule must have.
func TestShippedRules(t *testing.T) {
	rs := builtin(t)
	disk, err := filepath.Glob(filepath.Join("rules", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	embedded := detect.BuiltinFiles()
	if len(embedded) != len(disk) || len(embedded) < 3 {
		t.Fatalf("BuiltinFiles gives %d files, rules/ holds %d (%v)", len(embedded), len(disk), disk)
	}
	total := 0
	defined := map[string]string{}
	for i, f := range embedded {
		t.Run(f.Name, func(t *testing.T) {
			data, err := os.ReadFile(disk[i])
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(disk[i]) != f.Name || string(data) != string(f.Data) {
				t.Fatalf("embedded %s differs from %s on disk", f.Name, disk[i])
			}
			one, err := detect.Load(strings.NewReader(string(data)), f.Name)
			if err != nil {
				t.Fatalf("Load(%s): %v", f.Name, err)
			}
			total += len(one.Rules())
			// A name shipped twice would silently be an override.
			for _, r := range one.Rules() {
				if prev, dup := defined[r.Name]; dup {
					t.Errorf("rule %s is defined in %s and in %s", r.Name, prev, f.Name)
				}
				defined[r.Name] = f.Name
				if r.File != f.Name {
					t.Errorf("rule %s: File = %q, want %q", r.Name, r.File, f.Name)
				}
			}
			if f.Name == detect.BuiltinFile && len(one.Rules()) != 73 {
				t.Errorf("%s has %d rules, want the 73 kernel log rules", f.Name, len(one.Rules()))
			}
		})
	}
	if len(rs.Rules()) != total {
		t.Fatalf("Builtin has %d rules, the files %d", len(rs.Rules()), total)
	}
	classes := map[string]bool{}
	kinds := map[detect.Kind]int{}
	for _, r := range rs.Rules() {
		kinds[r.Kind]++
		if r.Class != "" && (len(r.Classes) == 0 || r.Classes[0] != r.Class) {
			t.Errorf("rule %s: Classes %v does not start with its class %s", r.Name, r.Classes, r.Class)
		}
		if !r.Enabled || r.Description == "" || r.Line == 0 {
			t.Errorf("rule %s: shipped disabled, or without description or line: %+v", r.Name, r)
		}
		if r.Mode != hwhealv1.RuleMode_RULE_MODE_ENFORCE && r.Mode != hwhealv1.RuleMode_RULE_MODE_SHADOW {
			t.Errorf("rule %s: mode %v", r.Name, r.Mode)
		}
		for _, c := range r.Classes {
			classes[c] = true
		}
	}
	for _, k := range []detect.Kind{detect.KindPattern, detect.KindThreshold, detect.KindRate, detect.KindSmart, detect.KindOutlier, detect.KindAgent} {
		if kinds[k] == 0 {
			t.Errorf("no shipped rule of kind %s", k)
		}
	}
	// The classes the rest of hwheal keys on; renaming one is a contract change.
	for _, c := range []string{
		"disk.io_error", "disk.medium_error", "disk.ata_error", "disk.ata_link_error", "disk.scsi_error",
		"disk.nvme_timeout", "disk.nvme_controller_failed", "memory.ce", "memory.ue", "memory.failure",
		"cpu.mce", "pcie.aer_corrected", "pcie.aer_nonfatal", "pcie.aer_fatal", "nic.link_down",
		"gpu.xid", "gpu.fallen_off_bus", "cpu.thermal", "kernel.lockup", "kernel.hung_task", "fs.error",
		"gpu.memory", "gpu.nvlink", "gpu.gsp", "gpu.app", "node.thermal_shutdown",
		"disk.media", "disk.smart_failing", "disk.latency_outlier", "nvme.critical_warning", "nvme.spare_low",
		"nvme.media_errors", "nvme.wear_out", "memory.ce_storm", "pcie.link_degraded", "nic.link_flap", "nic.errors",
	} {
		if !classes[c] {
			t.Errorf("no shipped rule raises %s", c)
		}
	}
	// Rules whose part is gone or condemned once they fire must not
	// clear by silence.
	for _, name := range []string{"edac-ue", "aer-fatal", "pcie-bus-error-fatal", "gpu-fallen-off-bus", "memory-ue-count"} {
		if r, ok := rs.Lookup(name); !ok || r.ClearAfter != 0 {
			t.Errorf("rule %s: clear after %v (found %v), want never", name, r.ClearAfter, ok)
		}
	}
}

const goodRule = `rules:
  - name: disk-io-error
    class: disk.io_error
    severity: critical
    part: disk
    contains: ["I/O error, dev "]
    pattern: 'I/O error, dev (?P<device>[a-z0-9]+), sector (?P<sector>\d+)'
    part_name: "{device}"
    summary: "I/O error on {device} at sector {sector}"
`

// TestLoadErrors feeds broken rule files and checks that each error names
// the file, the line and, where it can, the rule and the key.
func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // substrings of the error, in any order
	}{
		{
			name: "bad regex",
			yaml: strings.Replace(goodRule, `(?P<sector>\d+)'`, `(?P<sector>\d+'`, 1),
			want: []string{`test.yaml:7: rule "disk-io-error": pattern: error parsing regexp: missing closing )`},
		},
		{
			name: "unknown key",
			yaml: goodRule + "    severety: warning\n",
			want: []string{`test.yaml:10: rule "disk-io-error": unknown key "severety"`},
		},
		{
			name: "unknown top-level key",
			yaml: "version: 2\n" + goodRule,
			want: []string{`test.yaml:1: unknown key "version"`},
		},
		{
			name: "missing class",
			yaml: strings.Replace(goodRule, "    class: disk.io_error\n", "", 1),
			want: []string{`test.yaml:2: rule "disk-io-error": class: required`},
		},
		{
			name: "unknown severity",
			yaml: strings.Replace(goodRule, "severity: critical", "severity: fatal", 1),
			want: []string{`test.yaml:4: rule "disk-io-error": severity: unknown severity "fatal"`},
		},
		{
			name: "unknown part",
			yaml: strings.Replace(goodRule, "part: disk", "part: fan", 1),
			want: []string{`test.yaml:5: rule "disk-io-error": part: unknown part kind "fan"`},
		},
		{
			name: "duplicate name",
			yaml: goodRule + strings.TrimPrefix(goodRule, "rules:\n"),
			want: []string{`test.yaml:10: rule "disk-io-error": name: duplicate rule name (first defined at line 2)`},
		},
		{
			name: "capture in template missing from pattern",
			yaml: strings.Replace(goodRule, `part_name: "{device}"`, `part_name: "{disk}"`, 1),
			want: []string{`test.yaml:8: rule "disk-io-error": part_name: capture "disk" is not a named group of the pattern`},
		},
		{
			name: "capture in summary alternative missing from pattern",
			yaml: strings.Replace(goodRule, `summary: "I/O error on {device} at sector {sector}"`, `summary: ["I/O error on {device}", "at {lba}"]`, 1),
			want: []string{`test.yaml:9: rule "disk-io-error": summary: capture "lba" is not a named group`},
		},
		{
			name: "unterminated template",
			yaml: strings.Replace(goodRule, `part_name: "{device}"`, `part_name: "{device"`, 1),
			want: []string{`test.yaml:8: rule "disk-io-error": part_name: unterminated {`},
		},
		{
			name: "missing contains",
			yaml: strings.Replace(goodRule, "    contains: [\"I/O error, dev \"]\n", "", 1),
			want: []string{`test.yaml:2: rule "disk-io-error": contains: required`},
		},
		{
			name: "literal too short",
			yaml: strings.Replace(goodRule, `contains: ["I/O error, dev "]`, `contains: ["I/O error, dev ", "IO"]`, 1),
			want: []string{`test.yaml:6: rule "disk-io-error": contains: literal "IO" is shorter than 3 bytes`},
		},
		{
			name: "any literal too short",
			yaml: strings.Replace(goodRule, `contains: ["I/O error, dev "]`, `any: ["I/O error", "IO"]`, 1),
			want: []string{`test.yaml:6: rule "disk-io-error": any: literal "IO" is shorter than 3 bytes`},
		},
		{
			name: "missing summary",
			yaml: strings.Replace(goodRule, "    summary: \"I/O error on {device} at sector {sector}\"\n", "", 1),
			want: []string{`test.yaml:2: rule "disk-io-error": summary: required`},
		},
		{
			name: "name not kebab-case",
			yaml: strings.Replace(goodRule, "name: disk-io-error", "name: Disk_IO", 1),
			want: []string{`test.yaml:2: rule "Disk_IO": name: "Disk_IO" is not kebab-case`},
		},
		{
			name: "class not dotted",
			yaml: strings.Replace(goodRule, "class: disk.io_error", "class: DiskError", 1),
			want: []string{`test.yaml:3: rule "disk-io-error": class: "DiskError" is not a dotted lower-case class`},
		},
		{
			name: "severity_by capture missing",
			yaml: goodRule + "    severity_by:\n      capture: lba\n      warning: [\"0\"]\n",
			want: []string{`test.yaml:11: rule "disk-io-error": severity_by: capture "lba" is not a named group of the pattern`},
		},
		{
			name: "severity_by value twice",
			yaml: goodRule + "    severity_by:\n      capture: device\n      warning: [sda]\n      info: [sda]\n",
			want: []string{`rule "disk-io-error": severity_by: value "sda" listed under both warning and info`},
		},
		{
			name: "class_by capture missing",
			yaml: goodRule + "    class_by:\n      capture: lba\n      disk.other: [\"0\"]\n",
			want: []string{`test.yaml:11: rule "disk-io-error": class_by: capture "lba" is not a named group of the pattern`},
		},
		{
			name: "class_by without capture",
			yaml: goodRule + "    class_by:\n      disk.other: [\"0\"]\n",
			want: []string{`test.yaml:11: rule "disk-io-error": class_by: capture: required`},
		},
		{
			name: "class_by value under two classes",
			yaml: goodRule + "    class_by:\n      capture: device\n      disk.one: [sda, sdb]\n      disk.two: [sdc, sda]\n",
			want: []string{`test.yaml:13: rule "disk-io-error": class_by: value "sda" listed under both disk.one and disk.two`},
		},
		{
			name: "class_by key that is not a class",
			yaml: goodRule + "    class_by:\n      capture: device\n      critical: [sda]\n",
			want: []string{`test.yaml:12: rule "disk-io-error": class_by: key "critical" is neither capture nor a dotted lower-case class`},
		},
		{
			name: "class_by is a list",
			yaml: goodRule + "    class_by: [device]\n",
			want: []string{`test.yaml:10: rule "disk-io-error": class_by: is a list, want a mapping`},
		},
		{
			name: "class_by class with no values",
			yaml: goodRule + "    class_by:\n      capture: device\n      disk.one: []\n",
			want: []string{`test.yaml:12: rule "disk-io-error": class_by: class disk.one lists no values`},
		},
		{
			name: "class_by duplicate class",
			yaml: goodRule + "    class_by:\n      capture: device\n      disk.one: [sda]\n      disk.one: [sdb]\n",
			want: []string{`test.yaml:13: rule "disk-io-error": class_by: duplicate key "disk.one"`},
		},
		{
			name: "class_by value is a mapping",
			yaml: goodRule + "    class_by:\n      capture: device\n      disk.one: {a: b}\n",
			want: []string{`test.yaml:12: rule "disk-io-error": class_by.disk.one: is a mapping, want a string or a list of strings`},
		},
		{
			name: "contains is a mapping",
			yaml: strings.Replace(goodRule, `contains: ["I/O error, dev "]`, `contains: {a: b}`, 1),
			want: []string{`test.yaml:6: rule "disk-io-error": contains: is a mapping, want a string or a list of strings`},
		},
		{
			name: "duplicate key in a rule",
			yaml: goodRule + "    class: disk.other\n",
			want: []string{`test.yaml:10: rule "disk-io-error": class: duplicate key`},
		},
		{
			name: "syntax error",
			yaml: "rules:\n  - name: x\n    class: [disk\n",
			want: []string{`test.yaml:`},
		},
		{
			name: "rules is not a list",
			yaml: "rules: {}\n",
			want: []string{`test.yaml:1: rules: is a mapping, want a list`},
		},
		{
			name: "empty file",
			yaml: "",
			want: []string{`test.yaml: empty rule file`},
		},
		{
			name: "two documents",
			yaml: goodRule + "---\nrules: []\n",
			want: []string{`test.yaml:10: more than one YAML document`},
		},
		{
			name: "several errors reported together",
			yaml: strings.Replace(strings.Replace(goodRule, "severity: critical", "severity: fatal", 1), "part: disk", "part: fan", 1),
			want: []string{`test.yaml:4: rule "disk-io-error": severity:`, `test.yaml:5: rule "disk-io-error": part:`},
		},
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
			var le *detect.Error
			if !errors.As(err, &le) || le.File != "test.yaml" {
				t.Errorf("error %v is not a *detect.Error naming test.yaml", err)
			}
		})
	}
}

// TestLoadFeatures loads small rule sets that use every feature of the
// format and checks the faults they give.
func TestLoadFeatures(t *testing.T) {
	const src = `rules:
  - name: xid
    class: gpu.xid
    severity: warning
    severity_by:
      capture: xid
      critical: ["48", "79"]
      info: "106"
    part: gpu
    contains: "NVRM: Xid ("
    not_contains: [fallen off the bus]
    pattern: 'Xid \(PCI:(?P<pci>[0-9a-f:]+)\): (?P<xid>\d+)(?:, (?P<detail>.*))?'
    part_name: "{pci}.0"
    pci_address: "{pci}.0"
    summary: ["Xid {xid}: {detail}", "Xid {xid} {{no detail}}"]
    description: test rule
  - name: fell-off
    class: gpu.fallen_off_bus
    severity: critical
    part: gpu
    contains: [fallen off the bus, "NVRM: "]
    pattern: 'GPU (?P<pci>\S+): GPU has fallen off the bus'
    part_name: "{pci}"
    summary: "GPU {pci} has fallen off the bus"
  - name: link-down
    class: nic.link_down
    severity: warning
    part: nic
    any: ["Link is Down", "Link down"]
    not_contains: [pciehp]
    pattern: '(?P<iface>\w+): (?:NIC )?Link (?:is )?[Dd]own'
    part_name: "{iface}"
    summary: "{iface} down"
`
	rs, err := detect.Load(strings.NewReader(src), "features.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const gpu, nic = hwhealv1.PartKind_PART_KIND_GPU, hwhealv1.PartKind_PART_KIND_NIC
	for _, tc := range []struct {
		msg, rule, sev, part, summary string
		kind                          hwhealv1.PartKind
	}{
		{"NVRM: Xid (PCI:0000:19:00): 48, pid=1, DBE", "xid", "critical", "0000:19:00.0", "Xid 48: pid=1, DBE", gpu},
		{"NVRM: Xid (PCI:0000:19:00): 13, pid=1, Graphics Exception", "xid", "warning", "0000:19:00.0", "Xid 13: pid=1, Graphics Exception", gpu},
		{"NVRM: Xid (PCI:0000:19:00): 106", "xid", "info", "0000:19:00.0", "Xid 106 {no detail}", gpu},
		{"NVRM: Xid (PCI:0000:19:00): 79, pid=1, GPU has fallen off the bus.", "", "", "", "", 0}, // vetoed by not_contains
		{"NVRM: GPU 0000:09:00.0: GPU has fallen off the bus.", "fell-off", "critical", "0000:09:00.0", "GPU 0000:09:00.0 has fallen off the bus", gpu},
		{"GPU 0000:09:00.0: GPU has fallen off the bus.", "", "", "", "", 0}, // second contains literal absent
		{"e1000e 0000:00:1f.6 eth0: NIC Link is Down", "link-down", "warning", "eth0", "eth0 down", nic},
		{"mlx5_core 0000:9d:00.1 enp157s0f1np1: Link down", "link-down", "warning", "enp157s0f1np1", "enp157s0f1np1 down", nic},
		{"eth0: Link is Up", "", "", "", "", 0},
		{"pcieport 0000:00:1c.0: pciehp: Slot(8): Link Down", "", "", "", "", 0}, // vetoed by not_contains
	} {
		fs := rs.Match(record(tc.msg))
		if tc.rule == "" {
			if len(fs) != 0 {
				t.Errorf("Match(%q) = %s, want nothing", tc.msg, describe(fs))
			}
			continue
		}
		if len(fs) != 1 {
			t.Errorf("Match(%q) = %s, want one fault from %s", tc.msg, describe(fs), tc.rule)
			continue
		}
		f := fs[0]
		if f.GetRule() != tc.rule || severityName(f.GetSeverity()) != tc.sev || f.GetPart().GetName() != tc.part ||
			f.GetSummary() != tc.summary || f.GetPart().GetKind() != tc.kind {
			t.Errorf("Match(%q) = %s kind %v summary %q; want [%s %s part=%q] %v %q",
				tc.msg, describe(fs), f.GetPart().GetKind(), f.GetSummary(), tc.rule, tc.sev, tc.part, tc.kind, tc.summary)
		}
	}
	if got := rs.Rules()[0]; got.Severity != hwhealv1.Severity_SEVERITY_WARNING || got.Description != "test rule" || got.Line != 2 {
		t.Errorf("Rules()[0] = %+v", got)
	}
}

// TestLoadClassBy checks that class_by picks the class from a capture,
// falls back to the rule's class, works beside severity_by on the same
// capture, and that Rules lists every class a rule can raise.
func TestLoadClassBy(t *testing.T) {
	const src = `rules:
  - name: xid
    class: gpu.xid
    severity: warning
    severity_by:
      capture: xid
      critical: ["48", "74"]
    class_by:
      capture: xid
      gpu.memory: ["48", "63"]
      gpu.nvlink: "74"
      gpu.xid: ["8"]
    part: gpu
    contains: "NVRM: Xid ("
    pattern: 'Xid \(PCI:(?P<pci>[0-9a-f:]+)\): (?P<xid>\d+)'
    summary: "Xid {xid}"
  - name: plain
    class: gpu.xid
    severity: info
    part: gpu
    contains: "plain xid"
    pattern: 'plain xid (?P<xid>\d+)'
    summary: "{xid}"
`
	rs, err := detect.Load(strings.NewReader(src), "classby.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ msg, class, sev string }{
		{"NVRM: Xid (PCI:0000:19:00): 48", "gpu.memory", "critical"},
		{"NVRM: Xid (PCI:0000:19:00): 63", "gpu.memory", "warning"},
		{"NVRM: Xid (PCI:0000:19:00): 74", "gpu.nvlink", "critical"},
		{"NVRM: Xid (PCI:0000:19:00): 8", "gpu.xid", "warning"},
		{"NVRM: Xid (PCI:0000:19:00): 999", "gpu.xid", "warning"},
		{"NVRM: Xid (PCI:0000:19:00): 480", "gpu.xid", "warning"}, // whole value, not a prefix
		{"plain xid 48", "gpu.xid", "info"},
	} {
		fs := rs.Match(record(tc.msg))
		if len(fs) != 1 || fs[0].GetFaultClass() != tc.class || severityName(fs[0].GetSeverity()) != tc.sev {
			t.Errorf("Match(%q) = %s, want class %s severity %s", tc.msg, describe(fs), tc.class, tc.sev)
		}
	}
	rules := rs.Rules()
	if got := strings.Join(rules[0].Classes, ","); got != "gpu.xid,gpu.memory,gpu.nvlink" {
		t.Errorf("Rules()[0].Classes = %s, want the default first, then class_by's in file order, each once", got)
	}
	if got := strings.Join(rules[1].Classes, ","); got != "gpu.xid" {
		t.Errorf("Rules()[1].Classes = %s, want gpu.xid", got)
	}
	rules[0].Classes[0] = "mutated"
	if rs.Rules()[0].Classes[0] != "gpu.xid" {
		t.Error("Rules returns a Classes slice that writes through to the rule set")
	}
}

// TestLoadManyRules checks the prefilter across many rules sharing and not
// sharing keywords, and the rule-count bound.
func TestLoadManyRules(t *testing.T) {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := 0; i < detect.MaxRules; i++ {
		kw := "keyword" + strings.Repeat("x", i%7) + "-" + string(rune('a'+i%26))
		b.WriteString("  - name: r" + strconv.Itoa(i) + "\n    class: test.c\n    severity: info\n    part: node\n")
		b.WriteString("    contains: [\"" + kw + "\"]\n    pattern: '" + kw + " (?P<n>\\d+)'\n    summary: \"{n}\"\n")
	}
	rs, err := detect.Load(strings.NewReader(b.String()), "many.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// "keywordxx-c 7": the rules whose keyword is exactly "keywordxx-c",
	// in file order.
	var want []string
	for i := 0; i < detect.MaxRules; i++ {
		if i%7 == 2 && i%26 == 2 {
			want = append(want, "r"+strconv.Itoa(i))
		}
	}
	var got []string
	for _, f := range rs.Match(record("prefix keywordxx-c 7 suffix")) {
		got = append(got, f.GetRule())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Match gave faults from %v, want %v", got, want)
	}
	b.WriteString("  - name: one-too-many\n    class: test.c\n    severity: info\n    part: node\n    contains: [\"abc\"]\n    pattern: abc\n    summary: x\n")
	if _, err := detect.Load(strings.NewReader(b.String()), "many.yaml"); err == nil || !strings.Contains(err.Error(), "at most 512") {
		t.Errorf("Load of %d rules: err = %v, want a limit error", detect.MaxRules+1, err)
	}
}
