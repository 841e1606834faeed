package actuate

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/pkg/yamldoc"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/executor"
)

// exampleConfig is the commented example shipped for operators.
const exampleConfig = "../hwheal-agent.example.yaml"

// parseDoc parses a configuration document's remediation section the way
// the agent does, then validates it.
func parseDoc(data []byte, name string) (*Remediation, error) {
	root, yerr := yamldoc.Parse(data)
	if yerr != nil {
		return nil, yerr
	}
	if root == nil || root.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "remediation" {
			r, err := ParseRemediation(root.Content[i+1], name)
			if err != nil {
				return nil, err
			}
			return r, r.Validate()
		}
	}
	return nil, nil
}

// TestExampleConfig: the shipped example parses, validates and says what
// its comments say.
func TestExampleConfig(t *testing.T) {
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseDoc(data, exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Allow, []hwhealv1.ActionType{action.Offline, action.Reboot, action.Migrate, action.Online}) || r.DryRun {
		t.Fatalf("allow %v dry_run %v", r.Allow, r.DryRun)
	}
	if r.Reboot.Method != executor.RebootSystemctl || r.Reboot.Max != 2 || r.Reboot.Window != 24*time.Hour {
		t.Fatalf("reboot %+v", r.Reboot)
	}
	off := r.Runbooks[action.Offline]
	if len(off) != 4 || off[0].Name != "lb-weight-zero" || !slices.Equal(off[0].Run, []string{"/usr/local/bin/lbctl", "weight", "0"}) ||
		off[0].Timeout != 30*time.Second || off[0].Retries != 2 || off[0].RetryDelay != 5*time.Second ||
		off[1].Name != "wait-drained" || off[1].Timeout != 10*time.Minute || off[1].Retries != 0 {
		t.Fatalf("offline runbook %+v", off)
	}
	if !strings.Contains(off[1].Run[2], `ss -Htn state established '( sport = :443 )'`) {
		t.Fatalf("wait-drained script %q", off[1].Run[2])
	}
	ex := r.Executors()
	for _, typ := range r.Allow {
		if ex[typ] == nil {
			t.Errorf("no executor for %s", action.TypeLabel(typ))
		}
	}
}

func TestParseRemediation(t *testing.T) {
	const step = "    - name: a\n      run: [/bin/true]\n"
	tests := []struct {
		name, in string
		want     string // "" for no error
		check    func(t *testing.T, r *Remediation)
	}{
		{name: "empty section", in: "remediation:\n", check: func(t *testing.T, r *Remediation) {
			if len(r.Allow) != 0 || r.Reboot.Max != DefaultMaxReboots || r.Reboot.Window != DefaultRebootWindow {
				t.Fatalf("%+v", r)
			}
		}},
		{name: "defaults", in: "remediation:\n  allow: [offline]\n  offline:\n" + step, check: func(t *testing.T, r *Remediation) {
			s := r.Runbooks[action.Offline][0]
			if s.Timeout != executor.DefaultStepTimeout || s.Retries != 0 || r.Reboot.Method != executor.RebootSystemctl {
				t.Fatalf("%+v %+v", s, r.Reboot)
			}
		}},
		{name: "reboot by command", in: "remediation:\n  allow: [reboot]\n  reboot:\n    method: command\n    command: [/sbin/reboot, -f]\n    max: 1\n    window: 1h\n",
			check: func(t *testing.T, r *Remediation) {
				if !slices.Equal(r.Reboot.Command, []string{"/sbin/reboot", "-f"}) || r.Reboot.Max != 1 || r.Reboot.Window != time.Hour {
					t.Fatalf("%+v", r.Reboot)
				}
			}},
		{name: "dry run needs no runbook", in: "remediation:\n  allow: [offline, migrate]\n  dry_run: true\n"},
		{name: "anchors", in: "steps: &s\n  - {name: a, run: [/bin/true]}\nremediation:\n  allow: [online]\n  online: *s\n"},

		{name: "unknown key", in: "remediation:\n  allw: [offline]\n", want: `cfg.yaml:2: remediation: unknown key "allw"`},
		{name: "duplicate key", in: "remediation:\n  dry_run: true\n  dry_run: false\n", want: `cfg.yaml:3: remediation: duplicate key "dry_run" (first at line 2)`},
		{name: "not a mapping", in: "remediation: [offline]\n", want: `cfg.yaml:1: remediation: is a list, want a mapping`},
		{name: "unknown action", in: "remediation:\n  allow: [offline, format-disk]\n", want: `cfg.yaml:2: remediation.allow: "format-disk" is not an action`},
		{name: "allow not a list", in: "remediation:\n  allow: offline\n", want: `cfg.yaml:2: remediation.allow: is a scalar, want a list of actions`},
		{name: "dry_run not a bool", in: "remediation:\n  dry_run: yes\n", want: `cfg.yaml:2: remediation.dry_run: "yes" is not true or false`},
		{name: "run as a string", in: "remediation:\n  offline:\n    - name: a\n      run: lbctl weight 0\n", want: `cfg.yaml:4: remediation.offline[0].run: is a single string, want a list (argv)`},
		{name: "empty run", in: "remediation:\n  offline:\n    - name: a\n      run: []\n", want: `cfg.yaml:4: remediation.offline[0].run: is empty`},
		{name: "relative command", in: "remediation:\n  offline:\n    - name: a\n      run: [bin/lbctl]\n", want: `command "bin/lbctl" is not an absolute path or a bare name`},
		{name: "timeout without unit", in: "remediation:\n  offline:\n" + step + "      timeout: 30\n", want: `cfg.yaml:5: remediation.offline[0].timeout: "30" is not a duration like 30s or 10m`},
		{name: "timeout too long", in: "remediation:\n  offline:\n" + step + "      timeout: 48h\n", want: `remediation.offline[0].timeout: 48h0m0s is not within 1s and 24h0m0s`},
		{name: "negative retries", in: "remediation:\n  offline:\n" + step + "      retries: -1\n", want: `cfg.yaml:5: remediation.offline[0].retries: -1 is not within 0 and 100`},
		{name: "retries not a number", in: "remediation:\n  offline:\n" + step + "      retries: two\n", want: `remediation.offline[0].retries: "two" is not a whole number`},
		{name: "unknown step key", in: "remediation:\n  offline:\n" + step + "      sleep: 5s\n", want: `cfg.yaml:5: remediation.offline[0]: unknown key "sleep"`},
		{name: "step without name", in: "remediation:\n  offline:\n    - run: [/bin/true]\n", want: `cfg.yaml:3: remediation.offline[0]: has no name`},
		{name: "step without run", in: "remediation:\n  offline:\n    - name: a\n", want: `cfg.yaml:3: remediation.offline[0]: has no run`},
		{name: "duplicate step names", in: "remediation:\n  offline:\n" + step + step, want: `cfg.yaml:5: remediation.offline[1].name: "a" names another step too (line 3)`},
		{name: "runbook not a list", in: "remediation:\n  offline: {name: a}\n", want: `cfg.yaml:2: remediation.offline: is a mapping, want a list of steps`},
		{name: "reboot method", in: "remediation:\n  reboot:\n    method: ipmi\n", want: `cfg.yaml:3: remediation.reboot.method: "ipmi" is not one of systemctl, logind, command`},
		{name: "command method without command", in: "remediation:\n  reboot:\n    method: command\n", want: `cfg.yaml:3: remediation.reboot: method command needs a command`},
		{name: "command without command method", in: "remediation:\n  reboot:\n    command: [/sbin/reboot]\n", want: `cfg.yaml:3: remediation.reboot.command: is only for method: command`},
		{name: "max zero", in: "remediation:\n  reboot:\n    max: 0\n", want: `cfg.yaml:3: remediation.reboot.max: 0 is not within 1 and 100`},
		{name: "window too long", in: "remediation:\n  reboot:\n    window: 3000h\n", want: `remediation.reboot.window: 3000h0m0s is not within 1m0s and 2160h0m0s`},
		{name: "allowed without runbook", in: "remediation:\n  allow: [reboot, offline]\n", want: `cfg.yaml:2: remediation: offline is allowed but remediation.offline has no runbook steps`},
		{name: "allowed with empty runbook", in: "remediation:\n  allow: [migrate]\n  migrate: []\n", want: `cfg.yaml:3: remediation: migrate is allowed but remediation.migrate has no runbook steps`},
		{name: "at the collector's bounds", in: "remediation:\n  offline:\n    - name: " + strings.Repeat("n", 128) + "\n      run: [/bin/sh, -c, " + strings.Repeat("x", 4096) + strings.Repeat(", a", 61) + "]\n"},
		{name: "long argument", in: "remediation:\n  offline:\n    - name: a\n      run:\n        - /bin/sh\n        - -c\n        - " + strings.Repeat("x", 4097) + "\n",
			want: `cfg.yaml:7: remediation.offline[0].run[2]: is 4097 bytes, at most 4096: put a long script in a file and run that`},
		{name: "long block script", in: "remediation:\n  offline:\n    - name: a\n      run:\n        - /bin/sh\n        - -c\n        - |\n" + strings.Repeat("          echo "+strings.Repeat("x", 95)+"\n", 50),
			want: `cfg.yaml:7: remediation.offline[0].run[2]: is 5050 bytes, at most 4096: put a long script in a file`},
		{name: "too many arguments", in: "remediation:\n  online:\n    - name: a\n      run: [/bin/echo" + strings.Repeat(", a", 64) + "]\n",
			want: `cfg.yaml:4: remediation.online[0].run: has 65 arguments, at most 64: put a long script in a file`},
		{name: "long reboot command", in: "remediation:\n  reboot:\n    method: command\n    command: [/bin/sh, -c, " + strings.Repeat("x", 5000) + "]\n",
			want: `cfg.yaml:4: remediation.reboot.command[2]: is 5000 bytes, at most 4096`},
		{name: "long step name", in: "remediation:\n  migrate:\n    - name: " + strings.Repeat("n", 129) + "\n      run: [/bin/true]\n",
			want: `cfg.yaml:3: remediation.migrate[0].name: is 129 bytes, at most 128`},
		{name: "every problem reported", in: "remediation:\n  allw: 1\n  dry_run: 2\n", want: "cfg.yaml:2: remediation: unknown key \"allw\" (want one of allow, dry_run, reboot, offline, migrate, online)\ncfg.yaml:3: remediation.dry_run: \"2\" is not true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseDoc([]byte(tt.in), "cfg.yaml")
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r == nil {
					t.Fatal("no remediation section")
				}
				if tt.check != nil {
					tt.check(t, r)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// TestValidateFlags: an allow-list from --allow names no line.
func TestValidateFlags(t *testing.T) {
	r := &Remediation{}
	types, err := ParseAllow([]string{"offline", " reboot", "offline", ""})
	if err != nil {
		t.Fatal(err)
	}
	r.SetAllow(types)
	if !slices.Equal(r.Allow, []hwhealv1.ActionType{action.Offline, action.Reboot}) {
		t.Fatalf("allow %v", r.Allow)
	}
	want := "remediation: offline is allowed (--allow) but the configuration file has no remediation.offline runbook"
	if err := r.Validate(); err == nil || err.Error() != want {
		t.Fatalf("Validate: %v, want %q", err, want)
	}
	if _, err := ParseAllow([]string{"reboot", "wipe"}); err == nil || !strings.Contains(err.Error(), `"wipe" is not an action`) {
		t.Fatalf("ParseAllow: %v", err)
	}
}

// FuzzParseRemediation: any input either parses into steps the executor
// can run or fails with errors that each name the file and a line.
func FuzzParseRemediation(f *testing.F) {
	if data, err := os.ReadFile(exampleConfig); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"remediation:\n",
		"remediation:\n  allow: [offline]\n  offline:\n    - name: a\n      run: [/bin/true]\n      timeout: 1s\n      retries: 3\n      retry_delay: 1s\n",
		"remediation:\n  allw: [offline]\n",
		"remediation:\n  offline:\n    - name: a\n      run: lbctl weight 0\n",
		"remediation:\n  reboot:\n    method: command\n",
		"remediation:\n  reboot: {method: command, command: [/sbin/reboot], max: 2, window: 24h}\n",
		"remediation:\n  allow: [reboot, offline]\n",
		"remediation:\n  dry_run: true\n  dry_run: false\n",
		"steps: &s\n  - {name: a, run: [/bin/true]}\nremediation:\n  allow: [online]\n  online: *s\n",
		"remediation: [offline]\n",
		"remediation:\n  offline:\n    - name: a\n      run: [\"/bin/sh\", \"-c\", \"\\0\"]\n",
		"remediation:\n  offline:\n    - name: a\n      run: [/bin/sh, -c, " + strings.Repeat("x", 4097) + "]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseDoc(data, "fuzz.yaml")
		if err != nil {
			if _, ok := err.(*yamldoc.Error); ok {
				return
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml:") && !strings.HasPrefix(line, "remediation") {
					t.Fatalf("error line %q names no file and line", line)
				}
			}
			return
		}
		if r == nil {
			return
		}
		for typ, steps := range r.Runbooks {
			for _, s := range steps {
				if s.Name == "" || len(s.Run) == 0 || s.Run[0] == "" || s.Timeout <= 0 || s.Retries < 0 || s.Retries > maxRetries || s.RetryDelay < 0 {
					t.Fatalf("%s: step %+v accepted", action.TypeLabel(typ), s)
				}
				// Past the collector's bounds every report of the step
				// would be refused.
				if len(s.Name) > action.MaxStepName || len(s.Run) > action.MaxStepArgs || slices.ContainsFunc(s.Run, func(a string) bool { return len(a) > action.MaxStepArg }) {
					t.Fatalf("%s: step %.200q accepted past the bounds", action.TypeLabel(typ), s.Name)
				}
			}
		}
		if r.Reboot.Max < 1 || r.Reboot.Window <= 0 || r.Reboot.Window > MaxRebootWindow {
			t.Fatalf("reboot %+v accepted", r.Reboot)
		}
		for _, typ := range r.Allow {
			if slices.Contains(runbookTypes, typ) && len(r.Runbooks[typ]) == 0 && !r.DryRun {
				t.Fatalf("%s allowed without a runbook", action.TypeLabel(typ))
			}
		}
	})
}
