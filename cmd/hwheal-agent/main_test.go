package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// TestRemediationFlags: the file, --allow and --dry-run combine as the
// help says: no file and no --allow is monitoring only; --allow replaces
// the file's list (and may empty it); --dry-run forces a dry run.
func TestRemediationFlags(t *testing.T) {
	example := filepath.Join("..", "..", "agent", "hwheal-agent.example.yaml")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("remediation:\n  allow: [wipe]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		rf      remediationFlags
		allow   []hwhealv1.ActionType // nil with wantNil
		wantNil bool
		dry     bool
		err     string
	}{
		{name: "nothing", rf: remediationFlags{}, wantNil: true},
		{name: "dry run alone", rf: remediationFlags{dryRun: true}, wantNil: true},
		{name: "file", rf: remediationFlags{file: example}, allow: []hwhealv1.ActionType{action.Offline, action.Reboot, action.Migrate, action.Online}},
		{name: "allow overrides the file", rf: remediationFlags{file: example, allow: []string{"reboot"}, allowSet: true, dryRun: true},
			allow: []hwhealv1.ActionType{action.Reboot}, dry: true},
		{name: "empty allow", rf: remediationFlags{file: example, allow: nil, allowSet: true}, allow: []hwhealv1.ActionType{}},
		{name: "allow without file", rf: remediationFlags{allow: []string{"reboot"}, allowSet: true}, allow: []hwhealv1.ActionType{action.Reboot}},
		{name: "bad allow", rf: remediationFlags{allow: []string{"wipe"}, allowSet: true}, err: `allow: "wipe" is not an action`},
		{name: "bad file", rf: remediationFlags{file: bad}, err: bad + `:2: remediation.allow: "wipe" is not an action`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.rf.remediation()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNil {
				if r != nil {
					t.Fatalf("remediation %+v, want none", r)
				}
				return
			}
			if r == nil || !slices.Equal(r.Allow, tt.allow) && !(len(r.Allow) == 0 && len(tt.allow) == 0) || r.DryRun != tt.dry {
				t.Fatalf("remediation %+v, want allow %v dry %v", r, tt.allow, tt.dry)
			}
			if err := r.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
