package collector

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFileConfig(t *testing.T) {
	tests := []struct {
		name, in string
		targets  int
		err      string // substring; "" for none
	}{
		{name: "empty", in: ""},
		{name: "webhooks", in: "webhooks:\n  - name: chat\n    url: http://chat.example/hook\n", targets: 1},
		{name: "unknown key", in: "webhooks: []\npolicy: x\n", err: "c.yaml:2: unknown key \"policy\""},
		{name: "not a mapping", in: "- a\n", err: "c.yaml:1: the top level must be a mapping"},
		{name: "bad yaml", in: "webhooks: [\n", err: "c.yaml"},
		{name: "second document", in: "webhooks: []\n---\nwebhooks: []\n", err: "more than one YAML document"},
		{name: "duplicate key", in: "webhooks: []\nwebhooks: []\n", err: "c.yaml:2: duplicate key \"webhooks\""},
		{name: "bad target names its line", in: "webhooks:\n  - name: chat\n    url: ftp://x\n", err: "c.yaml:3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseFileConfig([]byte(tt.in), "c.yaml")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Webhooks.Targets) != tt.targets {
				t.Errorf("%d targets, want %d", len(cfg.Webhooks.Targets), tt.targets)
			}
		})
	}
}

// A collector with a broken rule file or config refuses to start, naming
// the file and line, rather than running without the operator's rules.
func TestNewRefusesBadRulesAndConfig(t *testing.T) {
	rules := t.TempDir()
	if err := os.WriteFile(filepath.Join(rules, "10-x.yaml"), []byte("rules:\n  - name: blk-io-error\n    mode: loud\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), Config{StateDir: t.TempDir(), RulesDir: rules, Insecure: true})
	if err == nil || !strings.Contains(err.Error(), "10-x.yaml:3") {
		t.Errorf("bad rules: %v, want an error naming 10-x.yaml:3", err)
	}
	cfgFile := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(cfgFile, []byte("webhook:\n  - name: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), Config{StateDir: t.TempDir(), RulesDir: t.TempDir(), ConfigFile: cfgFile, Insecure: true})
	if err == nil || !strings.Contains(err.Error(), "collector.yaml:1") {
		t.Errorf("bad config: %v, want an error naming collector.yaml:1", err)
	}
}
