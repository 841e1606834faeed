package webhook

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/collector/store/sqlite"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// The collector's store is what the dispatcher reads in production.
var _ Source = (*sqlite.Store)(nil)

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return st
}

func diskFault(seq uint64, class string, sev hwhealv1.Severity, dev string, when time.Time) *hwhealv1.Report {
	return &hwhealv1.Report{Seq: seq, Item: &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{
		FaultClass: class,
		Severity:   sev,
		Part:       &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: dev, Serial: "SN-" + dev},
		Rule:       class + "-rule",
		Time:       timestamppb.New(when),
		Summary:    fmt.Sprintf("%s on %s", class, dev),
		Evidence: &hwhealv1.Evidence{
			KernelLog: &hwhealv1.KernelLogRecord{Sequence: seq, Message: fmt.Sprintf("blk_update_request: critical medium error, dev %s, sector %d", dev, 1000+seq)},
			Captures:  map[string]string{"device": dev},
		},
	}}}
}

func apply(t *testing.T, st *sqlite.Store, when time.Time, reports ...*hwhealv1.Report) []*hwhealv1.Event {
	t.Helper()
	res, err := st.Apply(t.Context(), []store.Batch{{Node: "n1", StreamID: "s1", Reports: reports, Received: when}})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res[0].Events
}

func allEvents(t *testing.T, st *sqlite.Store) []*hwhealv1.Event {
	t.Helper()
	evs, err := st.EventsAfter(t.Context(), 0, 1000)
	if err != nil {
		t.Fatalf("EventsAfter: %v", err)
	}
	return evs
}

func idsOf(evs []*hwhealv1.Event, keep func(*hwhealv1.Event) bool) []string {
	var out []string
	for _, ev := range evs {
		if keep(ev) {
			out = append(out, strconv.FormatUint(ev.GetId(), 10))
		}
	}
	return out
}

func cursorOf(t *testing.T, st *sqlite.Store, target string) uint64 {
	t.Helper()
	id, ok, err := st.Cursor(t.Context(), CursorPrefix+target)
	if err != nil || !ok {
		t.Fatalf("Cursor(%s) = %d, %v, %v", target, id, ok, err)
	}
	return id
}

// TestSQLiteDeliverAndResume runs the dispatcher on the collector's real
// store: events recorded through the store's API reach a real HTTP
// receiver as CloudEvents, and a dispatcher started again on the reopened
// store resumes from the persisted cursors with nothing lost or repeated.
func TestSQLiteDeliverAndResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hwheal.db")
	st := openStore(t, path)
	first := st
	t.Cleanup(func() { _ = first.Close() }) // closed below unless the test stops early
	ctx := t.Context()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	if _, err := st.Hello(ctx, store.Hello{Node: "n1", Labels: map[string]string{"zone": "eu-1", "rack": "r7"},
		StreamID: "s1", BootID: "boot-1", AgentVersion: "v1", Time: base}); err != nil {
		t.Fatal(err)
	}
	opened := apply(t, st, base.Add(time.Second), diskFault(1, "disk.media", sevCritical, "sda", base.Add(time.Second)))
	var faultID uint64
	for _, ev := range opened {
		if ev.GetType() == evOpened {
			faultID = ev.GetFault().GetId()
		}
	}
	if faultID == 0 {
		t.Fatalf("no fault.opened among %v", opened)
	}

	all, pager, late := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	t.Setenv("HWHEAL_TEST_WEBHOOK_TOKEN", "tok-9")
	config := func(withLate bool) Config {
		t.Helper()
		doc := fmt.Sprintf(`webhooks:
  - name: all
    url: %s/all
    start: beginning
    headers:
      Authorization: "Bearer ${HWHEAL_TEST_WEBHOOK_TOKEN}"
    backoff_initial: 1ms
  - name: pager
    url: %s/pager
    start: beginning
    classes: ["disk.*"]
    min_severity: critical
    labels: {zone: eu-1}
`, all.srv.URL, pager.srv.URL)
		if withLate {
			doc += fmt.Sprintf("  - name: late\n    url: %s/late\n", late.srv.URL)
		}
		cfg, err := ParseConfig(strings.NewReader(doc), "collector.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	// First run: the recorded history goes out.
	r1 := start(t, st, Options{SourceURI: "urn:hwheal:test"}, config(false).Targets...)
	recorded := allEvents(t, st)
	if len(recorded) != 4 {
		t.Fatalf("recorded %d events, want registered, connected, fault opened, health changed", len(recorded))
	}
	reqs := all.waitRequests(t, len(recorded))
	for i, req := range reqs {
		ev := recorded[i]
		if req.method != http.MethodPost || req.header.Get("Content-Type") != ContentType || req.header.Get("Authorization") != "Bearer tok-9" {
			t.Errorf("event %d: %s, Content-Type %q, Authorization %q", ev.GetId(), req.method, req.header.Get("Content-Type"), req.header.Get("Authorization"))
		}
		ce := req.ce
		wantType := TypePrefix + EventTypeName(ev.GetType())
		if ce.SpecVersion != "1.0" || ce.ID != strconv.FormatUint(ev.GetId(), 10) || ce.Source != "urn:hwheal:test" ||
			ce.Type != wantType || ce.Subject != "n1" || ce.DataContentType != "application/json" {
			t.Errorf("event %d: envelope %+v, want id %d type %s", ev.GetId(), ce, ev.GetId(), wantType)
		}
		if got, err := time.Parse(time.RFC3339Nano, ce.Time); err != nil || !got.Equal(ev.GetTime().AsTime()) {
			t.Errorf("event %d: time %q, want %v", ev.GetId(), ce.Time, ev.GetTime().AsTime())
		}
		var data hwhealv1.Event
		if err := protojson.Unmarshal(ce.Data, &data); err != nil {
			t.Fatalf("event %d: data: %v", ev.GetId(), err)
		}
		if !proto.Equal(&data, ev) {
			t.Errorf("event %d: data\n got %v\nwant %v", ev.GetId(), &data, ev)
		}
	}
	if got := []string{reqs[2].ce.Type, reqs[3].ce.Type}; !slices.Equal(got, []string{"io.hwheal.fault.opened", "io.hwheal.node.health_changed"}) {
		t.Errorf("types %v", got)
	}
	head := recorded[len(recorded)-1].GetId()
	// A request the receiver got but whose response the dispatcher has not
	// read yet would be sent again after the restart: wait for both.
	waitFor(t, "every target caught up", func() bool {
		return r1.d.targetByName("all").pos.Load() == head && r1.d.targetByName("pager").pos.Load() == head
	})
	r1.stop()
	for _, name := range []string{"all", "pager"} {
		if got := cursorOf(t, st, name); got != head {
			t.Errorf("stored cursor of %s = %d after shutdown, want %d", name, got, head)
		}
	}

	// The collector is down for webhooks (store closed and reopened) while
	// more happens.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openStore(t, path)
	t.Cleanup(func() { st.Close() })
	apply(t, st, base.Add(2*time.Second), diskFault(2, "disk.media", sevCritical, "sda", base.Add(2*time.Second))) // fault.updated
	apply(t, st, base.Add(3*time.Second), diskFault(3, "disk.io_error", sevWarning, "sdb", base.Add(3*time.Second)))
	if _, err := st.AcknowledgeFault(ctx, faultID, store.Note{Actor: "alice", Reason: "disk ordered", Time: base.Add(4 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Disconnected(ctx, "n1", base.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	recorded = allEvents(t, st)
	head = recorded[len(recorded)-1].GetId()

	// Second run, with a new target that starts at the end.
	r2 := start(t, st, Options{SourceURI: "urn:hwheal:test"}, config(true).Targets...)
	notUpdated := func(ev *hwhealv1.Event) bool { return ev.GetType() != evUpdated }
	wantAll := idsOf(recorded, notUpdated)
	all.waitRequests(t, len(wantAll))
	waitFor(t, "every target caught up", func() bool {
		for _, tg := range r2.d.targets {
			if tg.pos.Load() != head {
				return false
			}
		}
		return true
	})
	if _, ok, _ := st.Cursor(ctx, CursorPrefix+"late"); !ok {
		t.Error("the new target stored no cursor")
	}

	// Live: an event recorded while the dispatcher runs, announced by
	// Notify, reaches every target that wants it, the new one included.
	if _, err := st.Hello(ctx, store.Hello{Node: "n1", Labels: map[string]string{"zone": "eu-1", "rack": "r7"},
		StreamID: "s1", BootID: "boot-2", AgentVersion: "v1", Time: base.Add(6 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	r2.d.Notify()
	recorded = allEvents(t, st)
	newHead := recorded[len(recorded)-1].GetId()
	waitFor(t, "every target caught up again", func() bool {
		for _, tg := range r2.d.targets {
			if tg.pos.Load() != newHead {
				return false
			}
		}
		return true
	})
	r2.stop()

	if got, want := all.ids(), idsOf(recorded, notUpdated); !slices.Equal(got, want) {
		t.Errorf("all received %v, want %v: each event but fault.updated exactly once, in order", got, want)
	}
	isPage := func(ev *hwhealv1.Event) bool {
		f := ev.GetFault()
		return notUpdated(ev) && f != nil && strings.HasPrefix(f.GetFaultClass(), "disk.") && f.GetSeverity() == sevCritical
	}
	if got, want := pager.ids(), idsOf(recorded, isPage); !slices.Equal(got, want) || len(want) != 2 {
		t.Errorf("pager received %v, want %v (critical disk fault opened, then acknowledged)", got, want)
	}
	afterHead := func(ev *hwhealv1.Event) bool { return ev.GetId() > head }
	if got, want := late.ids(), idsOf(recorded, afterHead); !slices.Equal(got, want) || len(want) == 0 {
		t.Errorf("late (start: end) received %v, want only the live events %v", got, want)
	}
	for _, name := range []string{"all", "pager", "late"} {
		if got := cursorOf(t, st, name); got != newHead {
			t.Errorf("stored cursor of %s = %d, want %d", name, got, newHead)
		}
	}
	var acked *request
	for _, req := range pager.requests() {
		if req.ce.Type == "io.hwheal.fault.acknowledged" {
			acked = &req
		}
	}
	if acked == nil {
		t.Fatal("pager got no fault.acknowledged")
	}
	var ev hwhealv1.Event
	if err := protojson.Unmarshal(acked.ce.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.GetActor() != "alice" || ev.GetFault().GetAcknowledged().GetReason() != "disk ordered" {
		t.Errorf("acknowledged event data: actor %q, note %v", ev.GetActor(), ev.GetFault().GetAcknowledged())
	}
}
