package actuate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/executor"
)

func writeLedger(t *testing.T, dir string, content []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, ledgerFile), content, 0o600); err != nil {
		t.Fatal(err)
	}
}

func recLine(t *testing.T, r record) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestLedgerTornTail: a last line cut short by a crash is cut away (its
// action never started: the start is fsynced before anything runs); the
// rest is kept and its unfinished action recovered.
func TestLedgerTornTail(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	var buf bytes.Buffer
	buf.Write(recLine(t, record{ID: "x", Event: evStarted, Type: "offline", BootID: "boot-a", Time: now}))
	buf.WriteString(`{"id":"y","event":"sta`)
	writeLedger(t, dir, buf.Bytes())
	s := newSink()
	_, stop := start(t, baseConfig(t, dir, s))
	if f := s.final(t, "x"); f.GetOutcome() != failed || f.GetMessage() != "interrupted by an agent restart; not run again" {
		t.Fatalf("x: %v", f)
	}
	if len(s.of("y")) != 0 {
		t.Fatalf("y, never started, reported: %v", s.of("y"))
	}
	stop()
	ll := ledgerLines(t, dir)
	if len(ll) != 2 || !strings.Contains(ll[1], `"id":"x","event":"finished"`) {
		t.Fatalf("ledger %q", ll)
	}
}

// TestLedgerDamaged: a damaged line before the last one stops the
// actuator from starting: the ledger cannot be trusted to keep ids from
// running twice.
func TestLedgerDamaged(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":       "{\"id\":\"a\",\"event\":\"started\",\"time\":\"2026-01-01T00:00:00Z\"}\nnot json\n{\"id\":\"b\",\"event\":\"started\",\"time\":\"2026-01-01T00:00:00Z\"}\n",
		"unknown event": "{\"id\":\"a\",\"event\":\"paused\",\"time\":\"2026-01-01T00:00:00Z\"}\n{\"id\":\"b\",\"event\":\"started\",\"time\":\"2026-01-01T00:00:00Z\"}\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeLedger(t, dir, []byte(content))
			_, err := New(baseConfig(t, dir, newSink()))
			if err == nil || !strings.Contains(err.Error(), ledgerFile+":") {
				t.Fatalf("New: %v, want an error naming the ledger's line", err)
			}
		})
	}
}

// TestLedgerCompaction: past 10,000 lines the ledger is rewritten without
// the actions that finished more than 90 days ago; recent ones, unfinished
// ones and reboots within the window are kept, and a kept id still never
// runs again.
func TestLedgerCompaction(t *testing.T) {
	dir, work := t.TempDir(), t.TempDir()
	runs := filepath.Join(work, "runs")
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	old := now.Add(-100 * 24 * time.Hour)
	var buf bytes.Buffer
	for i := range compactLines / 2 {
		id := "old-" + strconv.Itoa(i)
		buf.Write(recLine(t, record{ID: id, Event: evStarted, Type: "offline", Time: old}))
		buf.Write(recLine(t, record{ID: id, Event: evFinished, Type: "offline", Outcome: OutcomeSucceeded, Time: old}))
	}
	buf.Write(recLine(t, record{ID: "recent", Event: evStarted, Type: "offline", Time: now.Add(-time.Hour)}))
	buf.Write(recLine(t, record{ID: "recent", Event: evFinished, Type: "offline", Outcome: OutcomeFailed, Time: now.Add(-time.Hour)}))
	buf.Write(recLine(t, record{ID: "refused", Event: evFinished, Type: "reboot", Outcome: OutcomeRefused, Time: now.Add(-time.Hour)}))
	buf.Write(recLine(t, record{ID: "open", Event: evStarted, Type: "offline", BootID: "boot-a", Time: now.Add(-time.Minute)}))
	writeLedger(t, dir, buf.Bytes())

	s := newSink()
	cfg := baseConfig(t, dir, s, executor.Step{Name: "count", Run: sh(`echo "$HWHEAL_ACTION_ID" >> ` + runs)})
	cfg.Now = func() time.Time { return now }
	a, stop := start(t, cfg)
	s.final(t, "open") // recovered
	for _, id := range []string{"recent", "old-0", "marker"} {
		a.Deliver(offline(id))
	}
	s.final(t, "marker")
	stop()
	// old-0 was forgotten (a collector never sends a 90-day-old order
	// again): it ran. recent was kept: it did not.
	if got := lines(t, runs); !slices.Equal(got, []string{"old-0", "marker"}) {
		t.Fatalf("runs %v", got)
	}
	var ids []string
	for _, l := range ledgerLines(t, dir) {
		var r record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID+"/"+r.Event)
	}
	want := []string{"recent/started", "recent/finished", "refused/finished", "open/started", "open/finished",
		"old-0/started", "old-0/finished", "marker/started", "marker/finished"}
	if !slices.Equal(ids, want) {
		t.Fatalf("ledger after compaction %v, want %v", ids, want)
	}
}

func TestParseRecord(t *testing.T) {
	for _, bad := range []string{``, `{}`, `{"id":"a"}`, `{"event":"started"}`, `[1]`, `{"id":"a","event":"started","time":"yesterday"}`} {
		var r record
		if err := parseRecord([]byte(bad), &r); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	var r record
	if err := parseRecord([]byte(`{"id":"a","event":"finished","outcome":"refused","type":"reboot","time":"2026-01-01T00:00:00Z","future":1}`), &r); err != nil {
		t.Fatal(err)
	}
	if parseTypeName(r.Type) != 1 || parseTypeName("ACTION_TYPE_MIGRATE") != 3 || parseTypeName(action.TypeLabel(99)) != 99 {
		t.Fatal("type names not read back")
	}
}
