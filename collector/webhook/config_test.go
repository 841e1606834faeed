package webhook

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestParseShippedExample(t *testing.T) {
	t.Setenv("HWHEAL_TEST_PAGER_TOKEN", "tok-123")
	t.Setenv("HWHEAL_TEST_CHAT_URL", "https://chat.example/hooks/T0/B0/xyz")
	f, err := os.Open("testdata/webhooks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f, "webhooks.yaml")
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	want := []Target{
		{
			Name: "oncall-pager", URL: "https://events.pager.example/v2/hwheal",
			Events:      []string{"fault.opened", "fault.reopened", "node.health_changed"},
			Classes:     []string{"disk.*", "memory.ue", "pcie.aer_fatal", "gpu.fallen_off_bus"},
			MinSeverity: sevCritical, Labels: map[string]string{"zone": "eu-1"},
			Headers: map[string]string{"Authorization": "Bearer tok-123"},
			Timeout: 5 * time.Second, MaxAttempts: 10, BackoffInitial: 2 * time.Second, BackoffMax: 10 * time.Minute,
			Start: StartEnd, Line: 5,
		},
		{
			Name: "chat", URL: "https://chat.example/hooks/T0/B0/xyz",
			Timeout: DefaultTimeout, MaxAttempts: DefaultMaxAttempts, BackoffInitial: DefaultBackoffInitial, BackoffMax: DefaultBackoffMax,
			Start: StartBeginning, Line: 21,
		},
		{
			Name: "rule-trials", URL: "http://rules-dashboard.internal:8080/events",
			Events: []string{"fault.*"}, IncludeShadow: true,
			Timeout: DefaultTimeout, MaxAttempts: DefaultMaxAttempts, BackoffInitial: DefaultBackoffInitial, BackoffMax: DefaultBackoffMax,
			Line: 26,
		},
	}
	if !reflect.DeepEqual(cfg.Targets, want) {
		t.Errorf("targets:\n got %+v\nwant %+v", cfg.Targets, want)
	}
	if _, err := New(cfg, newMemSource(), Options{}); err != nil {
		t.Errorf("New(parsed config): %v", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n", "webhooks:\n", "webhooks: []\n", "---\n"} {
		cfg, err := ParseConfig(strings.NewReader(doc), "w.yaml")
		if err != nil || len(cfg.Targets) != 0 {
			t.Errorf("ParseConfig(%q) = %+v, %v; want no targets", doc, cfg, err)
		}
	}
}

func TestDefaultBackoffFollowsMax(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader("webhooks:\n- {name: a, url: 'http://x', backoff_max: 200ms}\n- {name: b, url: 'http://x', backoff_initial: 10m}\n"), "w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Targets[0]; a.BackoffInitial != 200*time.Millisecond || a.BackoffMax != 200*time.Millisecond {
		t.Errorf("a: initial %v max %v, want 200ms both", a.BackoffInitial, a.BackoffMax)
	}
	if b := cfg.Targets[1]; b.BackoffInitial != 10*time.Minute || b.BackoffMax != 10*time.Minute {
		t.Errorf("b: initial %v max %v, want 10m both", b.BackoffInitial, b.BackoffMax)
	}
}

// configErrors returns every *Error in a (joined) error.
func configErrors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(e error) {
		if ce, ok := e.(*Error); ok {
			out = append(out, ce)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

func TestParseConfigErrors(t *testing.T) {
	const ok = "  - name: a\n    url: http://h/x\n"
	tests := []struct {
		name string
		doc  string
		line int
		want string // in the error text
	}{
		{"syntax", "webhooks:\n  - name: a\n    url: x: y\n", 3, "mapping values are not allowed"},
		{"top level list", "- a\n", 1, "top level is a list"},
		{"unknown top key", "webhook:\n" + ok, 1, `unknown key "webhook" (want webhooks)`},
		{"missing webhooks", "other: 1\n", 1, "missing webhooks: list"},
		{"webhooks not a list", "webhooks:\n  name: a\n", 2, "want a list of targets"},
		{"duplicate top key", "webhooks: []\nwebhooks: []\n", 2, "duplicate key"},
		{"two documents", "webhooks: []\n---\nwebhooks: []\n", 2, "more than one YAML document"},
		{"target not a mapping", "webhooks:\n  - just-a-name\n", 2, "target is a scalar"},
		{"missing name", "webhooks:\n  - url: http://h/\n", 2, "name: required"},
		{"bad name", "webhooks:\n  - name: 'a b'\n    url: http://h/\n", 2, `name: "a b" is not`},
		{"duplicate name", "webhooks:\n" + ok + ok, 4, "duplicate target name (first defined at line 2)"},
		{"missing url", "webhooks:\n  - name: a\n", 2, "url: required"},
		{"url scheme", "webhooks:\n  - name: a\n    url: ftp://h/x\n", 3, "scheme is not http or https"},
		{"url no host", "webhooks:\n  - name: a\n    url: 'http:///x'\n", 3, "no host"},
		{"url not a string", "webhooks:\n  - name: a\n    url: [x]\n", 3, "url: is a list, want a string"},
		{"unknown key", "webhooks:\n" + ok + "    retries: 3\n", 4, `unknown key "retries"`},
		{"duplicate key", "webhooks:\n" + ok + "    url: http://h/y\n", 4, "url: duplicate key"},
		{"unknown event", "webhooks:\n" + ok + "    events: [fault.opened, fault.closed]\n", 4, `"fault.closed" matches no event type`},
		{"bad event glob", "webhooks:\n" + ok + "    events: ['fault.[']\n", 4, "syntax error in pattern"},
		{"empty events", "webhooks:\n" + ok + "    events: []\n", 4, "events: empty"},
		{"bad class glob", "webhooks:\n" + ok + "    classes: ['disk.[']\n", 4, "is not a glob"},
		{"severity", "webhooks:\n" + ok + "    min_severity: fatal\n", 4, `unknown severity "fatal"`},
		{"labels not a map", "webhooks:\n" + ok + "    labels: [zone]\n", 4, "labels: is a list, want a mapping"},
		{"label value not a string", "webhooks:\n" + ok + "    labels:\n      zone: [a]\n", 5, "labels.zone: is a list"},
		{"header name", "webhooks:\n" + ok + "    headers:\n      'X Bad': v\n", 5, `"X Bad" is not a valid header name`},
		{"reserved header", "webhooks:\n" + ok + "    headers:\n      content-type: text/plain\n", 5, "Content-Type is set by the dispatcher"},
		{"duplicate header", "webhooks:\n" + ok + "    headers:\n      X-A: v\n      x-a: w\n", 6, `duplicate header "X-A"`},
		{"missing env", "webhooks:\n" + ok + "    headers:\n      Authorization: 'Bearer ${HWHEAL_TEST_UNSET_VAR}'\n", 5, "environment variable HWHEAL_TEST_UNSET_VAR is not set"},
		{"unterminated env", "webhooks:\n" + ok + "    headers:\n      X-A: '${OOPS'\n", 5, "unterminated ${"},
		{"bad env name", "webhooks:\n" + ok + "    headers:\n      X-A: '${1A}'\n", 5, "not an environment variable name"},
		{"missing env in url", "webhooks:\n  - name: a\n    url: '${HWHEAL_TEST_UNSET_VAR}'\n", 3, "url: environment variable HWHEAL_TEST_UNSET_VAR is not set"},
		{"timeout", "webhooks:\n" + ok + "    timeout: 10\n", 4, `"10" is not a duration`},
		{"negative timeout", "webhooks:\n" + ok + "    timeout: -1s\n", 4, "must be positive"},
		{"huge backoff", "webhooks:\n" + ok + "    backoff_max: 100h\n", 4, "backoff_max: 100h0m0s is above 24h0m0s"},
		{"max below initial", "webhooks:\n" + ok + "    backoff_initial: 1m\n    backoff_max: 1s\n", 5, "below backoff_initial"},
		{"max attempts text", "webhooks:\n" + ok + "    max_attempts: many\n", 4, `"many" is not an integer`},
		{"max attempts huge", "webhooks:\n" + ok + "    max_attempts: 1000\n", 4, "1000 is not between 0 (until delivered) and 100"},
		{"start", "webhooks:\n" + ok + "    start: now\n", 4, `"now" is not end or beginning`},
		{"include_shadow", "webhooks:\n" + ok + "    include_shadow: 'yes'\n", 4, "is not true or false"},
		{"second target's error", "webhooks:\n" + ok + "  - name: b\n    url: http://h/\n    min_severity: high\n", 6, `webhook "b": min_severity`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(tt.doc), "collector.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			errs := configErrors(err)
			if len(errs) == 0 {
				t.Fatalf("error %q holds no *Error", err)
			}
			for _, e := range errs {
				if e.File != "collector.yaml" {
					t.Errorf("error %q names file %q", e, e.File)
				}
			}
			found := false
			for _, e := range errs {
				if e.Line == tt.line && strings.Contains(e.Error(), tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("error %q: want one at line %d containing %q", err, tt.line, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "collector.yaml:") {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

func TestAllErrorsReported(t *testing.T) {
	doc := "webhooks:\n  - name: a\n    url: ftp://x\n    timeout: soon\n  - name: b\n    min_severity: high\n"
	_, err := ParseConfig(strings.NewReader(doc), "w.yaml")
	var lines []int
	for _, e := range configErrors(err) {
		lines = append(lines, e.Line)
	}
	slices.Sort(lines)
	// a: url (3), timeout (4); b: missing url (its line, 5), severity (6).
	if want := []int{3, 4, 5, 6}; !slices.Equal(lines, want) {
		t.Errorf("error lines %v, want %v: %v", lines, want, err)
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("HWHEAL_TEST_TOKEN", "s3cr3t")
	t.Setenv("HWHEAL_TEST_HOST", "hooks.example")
	t.Setenv("HWHEAL_TEST_EMPTY", "")
	doc := `webhooks:
  - name: a
    url: "https://${HWHEAL_TEST_HOST}/x?token=${HWHEAL_TEST_TOKEN}"
    headers:
      authorization: "Bearer ${HWHEAL_TEST_TOKEN}"
      X-Raw: "${HWHEAL_TEST_TOKEN}"
      X-Empty: "${HWHEAL_TEST_EMPTY}"
      X-Dollar: "cost $5"
`
	cfg, err := ParseConfig(strings.NewReader(doc), "w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tg := cfg.Targets[0]
	if tg.URL != "https://hooks.example/x?token=s3cr3t" {
		t.Errorf("url = %q", tg.URL)
	}
	want := map[string]string{"Authorization": "Bearer s3cr3t", "X-Raw": "s3cr3t", "X-Empty": "", "X-Dollar": "cost $5"}
	if !reflect.DeepEqual(tg.Headers, want) {
		t.Errorf("headers = %v, want %v", tg.Headers, want)
	}

	// A secret never appears in an error, even when the expanded URL is
	// wrong.
	t.Setenv("HWHEAL_TEST_BAD_URL", "ftp://user:s3cr3t@host/")
	_, err = ParseConfig(strings.NewReader("webhooks:\n  - name: a\n    url: ${HWHEAL_TEST_BAD_URL}\n"), "w.yaml")
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %v: want one that does not show the secret", err)
	}
}

func TestParseTargetsEmbedded(t *testing.T) {
	doc := `listen: 127.0.0.1:7400
store: sqlite:/var/lib/hwheal/hwheal.db
webhooks:
  - name: ok
    url: http://h/
  - name: bad
    url: http://h/
    events: [nope]
`
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	m := root.Content[0]
	var wh *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "webhooks" {
			wh = m.Content[i+1]
		}
	}
	_, err := ParseTargets(wh, "collector.yaml")
	errs := configErrors(err)
	if len(errs) != 1 || errs[0].Line != 8 || errs[0].Target != "bad" || errs[0].Field != "events" {
		t.Fatalf("ParseTargets error = %v, want one at line 8 of target bad", err)
	}
	if got := err.Error(); !strings.HasPrefix(got, `collector.yaml:8: webhook "bad": events: "nope" matches no event type`) {
		t.Errorf("error text %q", got)
	}
	if ts, err := ParseTargets(nil, "x"); ts != nil || err != nil {
		t.Errorf("ParseTargets(nil) = %v, %v", ts, err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Target{Name: "a", URL: "http://h/"}
	tests := []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"defaults fill in", Config{Targets: []Target{good}}, ""},
		{"duplicate", Config{Targets: []Target{good, good}}, "duplicate target name"},
		{"empty events", Config{Targets: []Target{{Name: "a", URL: "http://h/", Events: []string{}}}}, "events: empty"},
		{"bad severity", Config{Targets: []Target{{Name: "a", URL: "http://h/", MinSeverity: 42}}}, "unknown severity 42"},
		{"bad start", Config{Targets: []Target{{Name: "a", URL: "http://h/", Start: 7}}}, "unknown start 7"},
		{"negative attempts", Config{Targets: []Target{{Name: "a", URL: "http://h/", MaxAttempts: -1}}}, "max_attempts: -1"},
		{"header newline", Config{Targets: []Target{{Name: "a", URL: "http://h/", Headers: map[string]string{"X-A": "v\r\nX-Evil: 1"}}}}, "line break"},
		{"empty label name", Config{Targets: []Target{{Name: "a", URL: "http://h/", Labels: map[string]string{"": "x"}}}}, "empty label name"},
		{"line without file", Config{Targets: []Target{{Name: "a", URL: "gopher://h/", Line: 12}}}, `line 12: webhook "a": url`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestEventTypeNames(t *testing.T) {
	tests := []struct {
		typ  hwhealv1.EventType
		want string
	}{
		{hwhealv1.EventType_EVENT_TYPE_UNSPECIFIED, ""},
		{hwhealv1.EventType(999), ""},
		{evRegistered, "node.registered"},
		{evConnected, "node.connected"},
		{evDisconnected, "node.disconnected"},
		{hwhealv1.EventType_EVENT_TYPE_NODE_REBOOTED, "node.rebooted"},
		{evHealth, "node.health_changed"},
		{evOpened, "fault.opened"},
		{evUpdated, "fault.updated"},
		{evResolved, "fault.resolved"},
		{evAcked, "fault.acknowledged"},
		{hwhealv1.EventType_EVENT_TYPE_FAULT_REOPENED, "fault.reopened"},
	}
	for _, tt := range tests {
		if got := EventTypeName(tt.typ); got != tt.want {
			t.Errorf("EventTypeName(%v) = %q, want %q", tt.typ, got, tt.want)
		}
	}
	names := EventTypeNames()
	if len(names) != len(hwhealv1.EventType_name)-1 || !slices.IsSorted(names) {
		t.Errorf("EventTypeNames = %v: want every type but UNSPECIFIED, sorted", names)
	}
	def := DefaultEvents()
	if slices.Contains(def, "fault.updated") || len(def) != len(names)-1 {
		t.Errorf("DefaultEvents = %v: want every type but fault.updated", def)
	}
}

func TestErrorUnwrap(t *testing.T) {
	_, err := ParseConfig(strings.NewReader("webhooks:\n  - name: a\n"), "w.yaml")
	var ce *Error
	if !errors.As(err, &ce) || ce.Line != 2 || ce.Target != "a" || ce.Field != "url" {
		t.Errorf("errors.As = %+v from %v", ce, err)
	}
}

func FuzzParseConfig(f *testing.F) {
	example, err := os.ReadFile("testdata/webhooks.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	for _, s := range []string{
		"",
		"webhooks:\n  - name: a\n    url: http://h/\n",
		"webhooks:\n  - {name: a, url: 'http://h/', events: ['*'], classes: ['disk.*'], min_severity: info, labels: {a: b}}\n",
		"webhooks:\n  - &x {name: a, url: 'http://h/'}\n  - *x\n",
		"webhooks: &l\n  - name: a\n    url: http://h/\n    labels: *l\n",
		"webhooks:\n  - name: a\n    url: http://h/\n    headers: {X-A: '${HOME}', X-B: '${'}\n",
		"webhooks:\n  - name: a\n    url: http://h/\n    timeout: 1s\n    max_attempts: 3\n    start: beginning\n    include_shadow: true\n",
		"webhooks: [[[]]]\n",
		"a: b\n---\nc: d\n",
		"webhooks:\n  - name: a\n    url: http://h/\n    backoff_initial: 1ns\n    backoff_max: 24h\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		cfg, err := ParseConfig(strings.NewReader(doc), "fuzz.yaml")
		if err != nil {
			errs := configErrors(err)
			if len(errs) == 0 {
				t.Fatalf("error %q holds no *Error", err)
			}
			for _, e := range errs {
				if e.File != "fuzz.yaml" || e.Err == nil {
					t.Fatalf("bad *Error %+v", e)
				}
			}
			return
		}
		// What parses is what New accepts.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v\n%s", err, doc)
		}
		for _, tg := range cfg.Targets {
			if tg.Timeout <= 0 || tg.MaxAttempts < 0 || tg.BackoffInitial <= 0 || tg.BackoffMax < tg.BackoffInitial {
				t.Fatalf("defaults not applied: %+v", tg)
			}
		}
	})
}
