package sqlite

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/pkg/auditchain"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// remediationWorkload writes an action through its life and a pause: a few
// audit records of each origin.
func remediationWorkload(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, err := s.Hello(ctx, store.Hello{Node: "n1", StreamID: "s1", BootID: "b1", Time: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAction(ctx, &hwhealv1.Action{Id: "a1", Node: "n1", Type: action.Offline, State: action.Approved,
		RequestedBy: "alice", Reason: "disk", Created: timestamppb.New(t0)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ChangeAction(ctx, store.ActionChange{ID: "a1", To: action.Dispatched, Actor: "policy:r1", Time: t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, []store.Batch{{Node: "n1", StreamID: "s1", Received: t0.Add(2 * time.Second), Reports: []*hwhealv1.Report{
		{Seq: 1, Item: &hwhealv1.Report_ActionUpdate{ActionUpdate: &hwhealv1.ActionUpdate{ActionId: "a1", Outcome: hwhealv1.ActionOutcome_ACTION_OUTCOME_SUCCEEDED,
			Steps: []*hwhealv1.ActionStep{{Index: 0, Name: "lb-weight-0", Attempt: 1}, {Index: 1, Name: "mark-out", Attempt: 1}}}}},
	}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SetPaused(ctx, true, store.Note{Actor: "bob", Reason: "freeze", Time: t0.Add(3 * time.Second)}); err != nil {
		t.Fatal(err)
	}
}

// verify runs auditchain.Verifier over the whole log.
func verify(t *testing.T, s *Store) error {
	t.Helper()
	recs, _, err := s.ListAudit(t.Context(), store.AuditFilter{}, store.Page{Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var v auditchain.Verifier
	for _, r := range recs {
		if err := v.Add(r); err != nil {
			return err
		}
	}
	return nil
}

// TestAuditTamperDetected changes, removes and inserts records behind the
// store's back: the schema refuses changes while its triggers are there,
// and the chain names the first record that no longer holds once they are
// dropped.
func TestAuditTamperDetected(t *testing.T) {
	tests := []struct {
		name string
		sql  []string
		want string // in the verifier's error
	}{
		{"detail changed", []string{`UPDATE audit SET detail = '{"from":"approved","to":"dispatched","reason":"all fine"}' WHERE id = 3`}, "audit record 3: its fields hash"},
		{"actor changed", []string{`UPDATE audit SET actor = 'carol' WHERE id = 1`}, "audit record 1: its fields hash"},
		{"time changed", []string{`UPDATE audit SET time = time + 1 WHERE id = 5`}, "audit record 5: its fields hash"},
		{"record removed", []string{`DELETE FROM audit WHERE id = 2`}, "audit record 3: records 2..2 are missing"},
		{"hash overwritten", []string{`UPDATE audit SET hash = X'00' WHERE id = 4`}, "audit record 4: its fields hash"},
		// A record changed and its hash recomputed: the next record's
		// prev_hash no longer matches (see also the rehash case below).
		{"record rewritten with a fresh hash", nil, "audit record 5: prev_hash"},
		{"last record removed, ids renumbered", []string{`DELETE FROM audit WHERE id = 2`, `UPDATE audit SET id = id - 1 WHERE id > 2`}, "audit record 2: prev_hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := t.TempDir() + "/db"
			s, err := Open(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			remediationWorkload(t, s)
			if err := verify(t, s); err != nil {
				t.Fatalf("untouched log: %v", err)
			}
			db := rawWriter(t, path)
			for _, q := range tt.sql {
				if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
					t.Fatalf("%s with the triggers in place: %v, want refused as append-only", q, err)
				}
			}
			for _, q := range append([]string{`DROP TRIGGER audit_no_update`, `DROP TRIGGER audit_no_delete`}, tt.sql...) {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if tt.sql == nil {
				recs, _, err := s.ListAudit(t.Context(), store.AuditFilter{}, store.Page{})
				if err != nil || len(recs) < 5 {
					t.Fatalf("ListAudit: %d records, %v", len(recs), err)
				}
				r := recs[3]
				r.Kind = "action.cancelled"
				if _, err := db.Exec(`UPDATE audit SET kind = ?, hash = ? WHERE id = ?`, r.Kind, auditchain.RecordHash(r), r.Id); err != nil {
					t.Fatal(err)
				}
			}
			err = verify(t, s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("verify after %q: %v, want an error with %q", tt.sql, err, tt.want)
			}
		})
	}
}

// TestActiveIndexMatchesStateMachine: the partial index actions_active and
// the queries that use it say "state < 6" for the states that have not
// ended; that must stay what remediation/action says.
func TestActiveIndexMatchesStateMachine(t *testing.T) {
	if activeSQL != `a.state < 6` {
		t.Fatalf("activeSQL %q: update this test and migration's actions_active together", activeSQL)
	}
	for v := range hwhealv1.ActionState_name {
		st := hwhealv1.ActionState(v)
		if st == hwhealv1.ActionState_ACTION_STATE_UNSPECIFIED {
			continue
		}
		if got := v < 6; got != !action.IsFinal(st) {
			t.Errorf("%v: in actions_active %v, final %v", st, got, action.IsFinal(st))
		}
	}
	mig, err := migrationFiles.ReadFile("migrations/0005_remediation.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mig), "CREATE INDEX actions_active ON actions (created, id) WHERE state < 6;") {
		t.Error("migration 0005 no longer defines actions_active as this test expects")
	}
}

// TestRemediationPlans checks that the remediation queries walk the index
// made for them, in page order, on a database without statistics.
func TestRemediationPlans(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	active := []hwhealv1.ActionState{action.Proposed, action.AwaitingApproval, action.Approved, action.Dispatched, action.Running}
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	after := &actionKey{created: 1, id: "x"}
	type plan struct {
		name string
		sql  string
		args []any
		want string
	}
	var tests []plan
	for _, c := range []struct {
		name string
		f    store.ActionFilter
		want string
	}{
		{"all", store.ActionFilter{}, "USING INDEX actions_created"},
		{"not ended", store.ActionFilter{States: active}, "USING INDEX actions_active"},
		{"in flight", store.ActionFilter{States: []hwhealv1.ActionState{action.Dispatched, action.Running}}, "USING INDEX actions_active"},
		{"not ended on a node", store.ActionFilter{Node: "n", States: active}, "USING INDEX actions_active"},
		{"node", store.ActionFilter{Node: "n"}, "SEARCH a USING INDEX actions_node (node=?"},
		{"node and final states", store.ActionFilter{Node: "n", States: []hwhealv1.ActionState{action.Succeeded}}, "SEARCH a USING INDEX actions_node (node=?"},
		{"node and rule since", store.ActionFilter{Node: "n", Rule: "r", CreatedSince: since}, "SEARCH a USING INDEX actions_node_rule (node=? AND rule=? AND created>?"},
		{"rule", store.ActionFilter{Rule: "r"}, "USING INDEX actions_created"},
		{"since", store.ActionFilter{CreatedSince: since}, "SEARCH a USING INDEX actions_created (created>?"},
	} {
		for _, k := range []*actionKey{nil, after} {
			q, args := actionsQuery(c.f, k, 101)
			name := c.name
			if k != nil {
				name += " after a key"
			}
			tests = append(tests, plan{name, q, args, c.want})
		}
	}
	tests = append(tests,
		plan{"action with steps", actionStepsSQL, []any{"a"}, "SEARCH s USING INDEX sqlite_autoindex_action_steps_1 (action_id=?)"},
		plan{"next step", stepNextSQL, []any{"a"}, "SEARCH action_steps USING COVERING INDEX sqlite_autoindex_action_steps_1 (action_id=?)"},
		plan{"audit head", auditHeadSQL, nil, "SCAN audit"},
	)
	for _, f := range []store.AuditFilter{{}, {Node: "n"}, {ActionID: "a"}, {Node: "n", ActionID: "a"}} {
		q, args := auditQuery(f, 5, 101)
		want := "SEARCH audit USING INTEGER PRIMARY KEY (rowid>?)"
		switch {
		case f.ActionID != "":
			want = "SEARCH audit USING INDEX audit_action (action_id=? AND id>?)"
		case f.Node != "":
			want = "SEARCH audit USING INDEX audit_node (node=? AND id>?)"
		}
		tests = append(tests, plan{"audit " + f.Node + f.ActionID, q, args, want})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := explain(t, s, tt.sql, tt.args...)
			for _, step := range p {
				if strings.Contains(step, "TEMP B-TREE") {
					t.Errorf("plan step %q\nquery %s\nplan %q", step, tt.sql, p)
				}
			}
			if !slices.ContainsFunc(p, func(step string) bool { return strings.Contains(step, tt.want) }) {
				t.Errorf("no plan step %q\nquery %s\nplan %q", tt.want, tt.sql, p)
			}
		})
	}
}

// TestMigration0005KeepsNodes: nodes stored before remediation are in
// service, with no guard, and remediation runs.
func TestMigration0005KeepsNodes(t *testing.T) {
	known, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/db"
	db := rawWriter(t, path)
	if _, err := migrate(t.Context(), db, known[:4], time.Unix(0, 0), discard()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO nodes (name, health, first_seen, last_seen, open_faults, boot_id) VALUES ('old', 1, 0, 0, 0, 'b0')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n, err := s.GetNode(t.Context(), "old")
	if err != nil {
		t.Fatal(err)
	}
	if n.GetServiceState() != action.InService || n.GetServiceChanged() != nil || n.GetGuard() != nil {
		t.Errorf("node after migration: service %v changed %v guard %v", n.GetServiceState(), n.GetServiceChanged(), n.GetGuard())
	}
	if nodes, _, err := s.ListNodes(t.Context(), store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{action.InService}}, store.Page{}); err != nil || len(nodes) != 1 {
		t.Errorf("in service after migration: %v, %v", nodes, err)
	}
	if rs, err := s.RemediationState(t.Context()); err != nil || rs.Paused {
		t.Errorf("remediation after migration: %+v, %v", rs, err)
	}
	if _, err := s.CreateAction(t.Context(), &hwhealv1.Action{Id: "a", Node: "old", Type: action.Reboot, State: action.Proposed, RequestedBy: "x"}); err != nil {
		t.Errorf("CreateAction after migration: %v", err)
	}
	if a, err := s.GetAction(t.Context(), "a"); err != nil || a.GetPlannedBootId() != "b0" {
		t.Errorf("action after migration: %v, %v", a, err)
	}
}

// TestDetailJSON: what the detail builder writes is a JSON object that
// encoding/json reads back as written, whatever the text.
func TestDetailJSON(t *testing.T) {
	texts := []string{"", "plain", `quote " and \ back`, "line\nbreak\ttab\r", "\x00\x01\x1f", "<html>&", "é€😀", "bad\xffutf8", "\u2028\u2029"}
	for _, s := range texts {
		d := newDetail().str("s", s).int("i", -3).uint("u", 7).bool("b", true).bool("f", false).uints("ids", []uint64{1, 2})
		var m map[string]any
		if err := json.Unmarshal([]byte(d.String()), &m); err != nil {
			t.Fatalf("%q: %s: %v", s, d, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if got, _ := m["s"].(string); s != "" && got != want {
			t.Errorf("%q: read back %q", s, got)
		}
		if _, ok := m["f"]; ok || m["b"] != true || m["i"] != -3.0 || m["u"] != 7.0 {
			t.Errorf("%q: %s", s, d)
		}
	}
	if got := newDetail().String(); got != "{}" {
		t.Errorf("empty detail %q", got)
	}
}
