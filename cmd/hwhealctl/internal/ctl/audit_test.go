package ctl

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/pkg/auditchain"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// auditLog is a chained log of n records, as the collector writes it.
func auditLog(n int) []*hwhealv1.AuditRecord {
	var out []*hwhealv1.AuditRecord
	prev := auditchain.Genesis
	kinds := []string{"action.created", "action.approved", "action.dispatched", "action.step", "action.succeeded"}
	for i := 1; i <= n; i++ {
		r := &hwhealv1.AuditRecord{Id: uint64(i), Time: timestamppb.New(fakeNow.Add(time.Duration(i) * time.Minute)), Actor: "alice",
			Kind: kinds[(i-1)%len(kinds)], Node: "web-1", ActionId: "a-1", Detail: fmt.Sprintf(`{"n": %d}`, i), PrevHash: prev}
		r.Hash = auditchain.RecordHash(r)
		prev = r.Hash
		out = append(out, r)
	}
	return out
}

func TestAudit(t *testing.T) {
	f := &fakeFleet{fakeData: fakeData{pageSize: 2, audit: auditLog(5)}}
	e := startFake(t, f)

	out := e.ctl(t, "vic", "audit", "--node", "web-1", "--action", "a-1")
	rows := table(t, out, "ID", "TIME", "ACTOR", "KIND", "NODE", "ACTION", "DETAIL")
	if len(rows) != 5 || strings.Join(rows[0], " ") != `1 2026-03-01T12:01:00Z alice action.created web-1 a-1 {"n": 1}` {
		t.Errorf("audit:\n%s", out)
	}
	calls := f.requests("ListAudit")
	if len(calls) != 3 {
		t.Fatalf("%d pages, want 3", len(calls))
	}
	if r := calls[0].req.(*hwhealv1.ListAuditRequest); r.GetNode() != "web-1" || r.GetActionId() != "a-1" {
		t.Errorf("request %v", r)
	}

	t.Run("limit", func(t *testing.T) {
		if rows := table(t, e.ctl(t, "vic", "audit", "--limit", "3"), "ID", "TIME", "ACTOR", "KIND", "NODE", "ACTION", "DETAIL"); len(rows) != 3 {
			t.Errorf("--limit 3 listed %d", len(rows))
		}
	})

	t.Run("json", func(t *testing.T) {
		var list []map[string]any
		if err := json.Unmarshal([]byte(e.ctl(t, "vic", "audit", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		if len(list) != 5 || list[4]["kind"] != "action.succeeded" || list[4]["hash"] == "" {
			t.Errorf("-o json: %v", list)
		}
	})
}

func TestAuditVerify(t *testing.T) {
	log := auditLog(5)
	f := &fakeFleet{fakeData: fakeData{pageSize: 2, audit: log}}
	e := startFake(t, f)

	var v auditchain.Verifier
	for _, r := range log {
		if err := v.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	out := e.ctl(t, "vic", "audit", "verify")
	if want := fmt.Sprintf("audit log verified: 5 records, head %s\n", v.Head()); out != want {
		t.Errorf("verify printed %q, want %q", out, want)
	}
	// From the start, unfiltered, page after page.
	calls := f.requests("ListAudit")
	if len(calls) != 3 {
		t.Fatalf("%d pages, want 3", len(calls))
	}
	for i, c := range calls {
		r := c.req.(*hwhealv1.ListAuditRequest)
		if r.GetNode() != "" || r.GetActionId() != "" || r.GetPageToken() != []string{"", "2", "4"}[i] {
			t.Errorf("page %d: request %v", i, r)
		}
	}

	t.Run("json", func(t *testing.T) {
		var got map[string]any
		if err := json.Unmarshal([]byte(e.ctl(t, "vic", "audit", "verify", "-o", "json")), &got); err != nil {
			t.Fatal(err)
		}
		if got["verified"] != true || got["records"] != float64(5) || got["head"] != v.Head() {
			t.Errorf("-o json: %v", got)
		}
	})

	t.Run("empty log", func(t *testing.T) {
		f.update(func(d *fakeData) { d.audit = nil })
		defer f.update(func(d *fakeData) { d.audit = log })
		if out := e.ctl(t, "vic", "audit", "verify"); !strings.HasPrefix(out, "audit log verified: 0 records, head 0000") {
			t.Errorf("empty log: %q", out)
		}
	})

	t.Run("expect", func(t *testing.T) {
		var at3 auditchain.Verifier
		for _, r := range log[:3] {
			if err := at3.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		noted := fmt.Sprintf("3:%s", at3.Head())
		if out := e.ctl(t, "vic", "audit", "verify", "--expect", noted); !strings.Contains(out, "the first 3 records are the ones written down") {
			t.Errorf("--expect on the same log: %q", out)
		}
		// The whole log rewritten with every hash recomputed: it verifies
		// on its own, but not against the head written down.
		rewritten := auditLog(5)
		rewritten[0].Actor = "mallory"
		prev := auditchain.Genesis
		for _, r := range rewritten {
			r.PrevHash = prev
			r.Hash = auditchain.RecordHash(r)
			prev = r.Hash
		}
		f.update(func(d *fakeData) { d.audit = rewritten })
		_, _, err := e.run(t, "vic", "audit", "verify", "--expect", noted)
		wantErr(t, err, "audit record 3 hashes to")
		// Cut short.
		f.update(func(d *fakeData) { d.audit = log[:2] })
		_, _, err = e.run(t, "vic", "audit", "verify", "--expect", noted)
		wantErr(t, err, "holds 2 records, fewer than the 3 written down")
		f.update(func(d *fakeData) { d.audit = log })
		_, _, err = e.run(t, "vic", "audit", "verify", "--expect", "3:abc")
		wantErr(t, err, "want N:HEAD")
	})

	broken := []struct {
		name   string
		change func([]*hwhealv1.AuditRecord) []*hwhealv1.AuditRecord
		want   string
	}{
		{"record changed", func(l []*hwhealv1.AuditRecord) []*hwhealv1.AuditRecord {
			l[2].Detail = `{"n": 30}`
			return l
		}, "audit record 3: its fields hash to"},
		{"record removed", func(l []*hwhealv1.AuditRecord) []*hwhealv1.AuditRecord {
			return append(l[:3:3], l[4:]...)
		}, "audit record 5: records 4..4 are missing"},
		{"record rehashed", func(l []*hwhealv1.AuditRecord) []*hwhealv1.AuditRecord {
			l[1].Actor = "mallory"
			l[1].Hash = auditchain.RecordHash(l[1])
			return l
		}, "audit record 3: prev_hash"},
	}
	for _, tt := range broken {
		t.Run(tt.name, func(t *testing.T) {
			l := make([]*hwhealv1.AuditRecord, len(log))
			for i, r := range log {
				l[i] = proto.Clone(r).(*hwhealv1.AuditRecord)
			}
			f.update(func(d *fakeData) { d.audit = tt.change(l) })
			defer f.update(func(d *fakeData) { d.audit = log })
			out, _, err := e.run(t, "vic", "audit", "verify")
			wantErr(t, err, tt.want)
			if strings.Contains(out, "verified") {
				t.Errorf("a broken log printed %q", out)
			}
		})
	}
}
