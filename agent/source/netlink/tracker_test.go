package netlink

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/source/sourcetest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// step is one link message at a time after t0, or the removal of an
// interface when remove is set.
type step struct {
	at     time.Duration
	link   linkState
	remove int
}

func up(i int, name string) linkState {
	return linkState{Index: i, Name: name, Type: "veth", AdminUp: true, OperUp: true, Carrier: true}
}

func down(i int, name string) linkState {
	return linkState{Index: i, Name: name, Type: "veth", AdminUp: true}
}

// cycles takes link down and back up n times, one cycle every period from
// start; it comes back up half a period after going down.
func cycles(i int, name string, start, every time.Duration, n int) []step {
	var out []step
	for k := range n {
		at := start + time.Duration(k)*every
		out = append(out, step{at: at, link: down(i, name)}, step{at: at + every/2, link: up(i, name)})
	}
	return out
}

func script(parts ...[]step) []step { return slices.Concat(parts...) }

func run(tr *tracker, steps []step) *sourcetest.Sink {
	sink := &sourcetest.Sink{}
	for _, s := range steps {
		if s.remove != 0 {
			tr.remove(s.remove, t0.Add(s.at), sink)
			continue
		}
		tr.update(s.link, t0.Add(s.at), sink)
	}
	return sink
}

func faultsOf(sink *sourcetest.Sink, class string) []*hwhealv1.Fault {
	var out []*hwhealv1.Fault
	for _, f := range sink.Faults() {
		if f.GetFaultClass() == class {
			out = append(out, f)
		}
	}
	return out
}

func evidence(f *hwhealv1.Fault) map[string]float64 {
	m := map[string]float64{}
	for _, s := range f.GetEvidence().GetSamples() {
		m[s.GetName()] = s.GetValue()
	}
	return m
}

func TestFlapDetector(t *testing.T) {
	start := []step{{at: 0, link: up(2, "eth0")}}
	tests := []struct {
		name      string
		threshold int
		steps     []step
		// raisedAt are the times after t0 at which a flap was raised.
		raisedAt []time.Duration
		// transitions is the evidence of the first fault.
		transitions int
	}{
		{name: "three cycles within the window", steps: script(start, cycles(2, "eth0", time.Minute, time.Minute, 3)),
			raisedAt: []time.Duration{3*time.Minute + 30*time.Second}, transitions: 6},
		{name: "down and left down", steps: script(start, []step{{at: time.Minute, link: down(2, "eth0")}})},
		{name: "two cycles, below the threshold", steps: script(start, cycles(2, "eth0", time.Minute, time.Minute, 2))},
		{name: "carrier lost with the link administratively up",
			steps: script(start, []step{
				{at: 1 * time.Second, link: linkState{Index: 2, Name: "eth0", AdminUp: true}},
				{at: 2 * time.Second, link: up(2, "eth0")},
				{at: 3 * time.Second, link: linkState{Index: 2, Name: "eth0", AdminUp: true}},
				{at: 4 * time.Second, link: up(2, "eth0")},
				{at: 5 * time.Second, link: linkState{Index: 2, Name: "eth0", AdminUp: true}},
				{at: 6 * time.Second, link: up(2, "eth0")},
			}),
			raisedAt: []time.Duration{6 * time.Second}, transitions: 6},
		{name: "cycles spread wider than the window", steps: script(start, cycles(2, "eth0", time.Minute, 6*time.Minute, 6))},
		{name: "messages that change nothing are not transitions",
			steps: script(start, []step{{at: 1, link: up(2, "eth0")}, {at: 2, link: up(2, "eth0")}}, cycles(2, "eth0", time.Minute, time.Second, 2))},
		{name: "a flapping link is one fault", steps: script(start, cycles(2, "eth0", time.Minute, 10*time.Second, 50)),
			raisedAt: []time.Duration{time.Minute + 25*time.Second}, transitions: 6},
		{name: "a new episode after the link was still for the window",
			steps: script(start, cycles(2, "eth0", time.Minute, time.Minute, 3), cycles(2, "eth0", 14*time.Minute, time.Minute, 3)),
			// The last transition of the first episode is at 3m30s.
			raisedAt: []time.Duration{3*time.Minute + 30*time.Second, 16*time.Minute + 30*time.Second}, transitions: 6},
		{name: "still for less than the window is the same episode",
			steps:    script(start, cycles(2, "eth0", time.Minute, time.Minute, 3), cycles(2, "eth0", 12*time.Minute, time.Minute, 3)),
			raisedAt: []time.Duration{3*time.Minute + 30*time.Second}, transitions: 6},
		{name: "held while flapping keeps the episode open",
			// Cycles every 9 minutes: never still for 10, so one fault
			// for an hour of slow flapping after the first burst.
			steps:    script(start, cycles(2, "eth0", time.Minute, time.Minute, 3), cycles(2, "eth0", 12*time.Minute, 9*time.Minute, 6)),
			raisedAt: []time.Duration{3*time.Minute + 30*time.Second}, transitions: 6},
		{name: "a link down for the window then up starts afresh",
			steps: script(start, cycles(2, "eth0", time.Minute, time.Minute, 3), []step{
				{at: 4 * time.Minute, link: down(2, "eth0")},
				{at: 15 * time.Minute, link: up(2, "eth0")},
			}),
			raisedAt: []time.Duration{3*time.Minute + 30*time.Second}, transitions: 6},
		{name: "a transition exactly a window ago still counts",
			// The recovery at 2s is exactly a window before the last one:
			// three recoveries, five transitions (the fall at 1s is out).
			steps: script(start, []step{
				{at: 1 * time.Second, link: down(2, "eth0")},
				{at: 2 * time.Second, link: up(2, "eth0")},
				{at: 3 * time.Second, link: down(2, "eth0")},
				{at: 4 * time.Second, link: up(2, "eth0")},
				{at: 5 * time.Second, link: down(2, "eth0")},
				{at: 2*time.Second + 10*time.Minute, link: up(2, "eth0")},
			}),
			raisedAt: []time.Duration{2*time.Second + 10*time.Minute}, transitions: 5},
		{name: "a transition just over a window ago does not",
			steps: script(start, []step{
				{at: 1 * time.Second, link: down(2, "eth0")},
				{at: 2 * time.Second, link: up(2, "eth0")},
				{at: 3 * time.Second, link: down(2, "eth0")},
				{at: 4 * time.Second, link: up(2, "eth0")},
				{at: 5 * time.Second, link: down(2, "eth0")},
				{at: 2*time.Second + 10*time.Minute + 1, link: up(2, "eth0")},
			})},
		{name: "threshold one", threshold: 1, steps: script(start, cycles(2, "eth0", time.Minute, time.Minute, 1)),
			raisedAt: []time.Duration{90 * time.Second}, transitions: 2},
		{name: "interfaces are counted apart",
			steps: script(start, []step{{at: 0, link: up(3, "eth1")}},
				cycles(2, "eth0", time.Minute, time.Minute, 2), cycles(3, "eth1", time.Minute, time.Minute, 2))},
		{name: "a link deleted and made again is a new link",
			steps: script(start, cycles(2, "eth0", time.Minute, time.Minute, 2), []step{
				{at: 3 * time.Minute, remove: 2},
				{at: 3*time.Minute + 1, link: up(2, "eth0")},
			}, cycles(2, "eth0", 4*time.Minute, time.Minute, 2))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(cmp.Or(tt.threshold, DefaultFlapThreshold), DefaultFlapWindow, "")
			sink := run(tr, tt.steps)
			faults := faultsOf(sink, ClassLinkFlap)
			var at []time.Duration
			for _, f := range faults {
				at = append(at, f.GetTime().AsTime().Sub(t0))
			}
			if !slices.Equal(at, tt.raisedAt) {
				t.Fatalf("flaps raised at %v, want %v", at, tt.raisedAt)
			}
			if len(faults) == 0 {
				return
			}
			f := faults[0]
			if f.GetSeverity() != hwhealv1.Severity_SEVERITY_WARNING || f.GetRule() != RuleLinkFlap ||
				f.GetPart().GetKind() != hwhealv1.PartKind_PART_KIND_NIC || f.GetPart().GetName() != "eth0" ||
				f.GetEvidence().GetCaptures()["iface"] != "eth0" {
				t.Errorf("fault = %v", f)
			}
			ev := evidence(f)
			if ev[SampleFlapTransitions] != float64(tt.transitions) || ev[SampleWindowSeconds] != 600 {
				t.Errorf("evidence = %v, want %d transitions in 600 s", ev, tt.transitions)
			}
		})
	}
}

// TestFlapStateBounded checks that a link flapping for hours keeps no
// history: the detector's memory does not grow with the flap rate.
func TestFlapStateBounded(t *testing.T) {
	var f flapState
	now := t0
	raised := 0
	for i := range 100_000 {
		now = now.Add(100 * time.Millisecond)
		if _, r := f.transition(now, i%2 == 1, 3, 10*time.Minute); r {
			raised++
		}
		if len(f.recent) >= 6 {
			t.Fatalf("transition %d: %d events kept", i, len(f.recent))
		}
	}
	if raised != 1 {
		t.Errorf("raised %d times, want once", raised)
	}
}

func TestObservations(t *testing.T) {
	tr := newTracker(3, DefaultFlapWindow, "")
	tr.pci = func(name string) string {
		if name == "eth0" || name == "enp3s0" {
			return "0000:03:00.0"
		}
		return ""
	}
	steps := []step{
		{at: 0, link: up(2, "eth0")},
		{at: 1, link: up(2, "eth0")}, // nothing changed: no observation
		{at: 2, link: linkState{Index: 2, Name: "eth0", Type: "veth", AdminUp: true, OperUp: false, Carrier: true}},
		{at: 3, link: down(2, "eth0")},                                   // carrier alone changed
		{at: 4, link: linkState{Index: 2, Name: "eth0", Type: "veth"}},   // admin down
		{at: 5, link: linkState{Index: 2, Name: "enp3s0", Type: "veth"}}, // renamed
		{at: 6, link: linkState{Index: 2, Name: "enp3s0", Type: "veth", AdminUp: true, OperUp: true, Carrier: true}},
		{at: 7, link: linkState{Index: 2, Name: "tmp", Type: "veth", AdminUp: true, OperUp: true, Carrier: true}},
	}
	sink := run(tr, steps)
	type row struct {
		name, pci                   string
		admin, oper, carrier, trans float64
	}
	var got []row
	for _, o := range sink.Observations() {
		m := sourcetest.SampleMap(o)
		if o.GetSource() != Name || o.GetPart().GetKind() != hwhealv1.PartKind_PART_KIND_NIC || len(m) != 4 {
			t.Errorf("observation = %v", o)
		}
		got = append(got, row{o.GetPart().GetName(), o.GetPart().GetPciAddress(),
			m[SampleAdminUp], m[SampleOperUp], m[SampleCarrier], m[SampleTransitions]})
	}
	want := []row{
		{"eth0", "0000:03:00.0", 1, 1, 1, 0},
		{"eth0", "0000:03:00.0", 1, 0, 1, 1},
		{"eth0", "0000:03:00.0", 1, 0, 0, 1},
		{"eth0", "0000:03:00.0", 0, 0, 0, 1},
		{"enp3s0", "0000:03:00.0", 0, 0, 0, 1},
		{"enp3s0", "0000:03:00.0", 1, 1, 1, 2},
		{"tmp", "", 1, 1, 1, 2},
	}
	if !slices.Equal(got, want) {
		t.Errorf("observations:\n got %v\nwant %v", got, want)
	}
	if n := len(sink.Faults()); n != 0 {
		t.Errorf("%d faults", n)
	}
}

func bond(i int, name string, isUp bool) linkState {
	return linkState{Index: i, Name: name, Type: typeBond, AdminUp: true, OperUp: isUp, Carrier: isUp}
}

func member(i int, name string, master int, isUp bool) linkState {
	return linkState{Index: i, Name: name, Type: "device", Master: master, AdminUp: true, OperUp: isUp, Carrier: isUp}
}

func TestBondTracking(t *testing.T) {
	const b = 10
	base := []step{
		{at: 0, link: bond(b, "bond0", true)},
		{at: 0, link: member(2, "eth0", b, true)},
		{at: 0, link: member(3, "eth1", b, true)},
	}
	failed := member(3, "eth1", b, true)
	failed.BondFailed = true
	type bondObs struct{ up, total float64 }
	tests := []struct {
		name  string
		steps []step
		// downMembers lists the down_members capture of each bond fault.
		downMembers []string
		// obs are the members counts of the bond's observations, in order.
		obs []bondObs
	}{
		{name: "all members up", steps: base,
			obs: []bondObs{{0, 0}, {1, 1}, {2, 2}}},
		{name: "member messages that change no count are not observed",
			steps: script(base, []step{
				{at: time.Second, link: member(2, "eth0", b, true)},
				{at: time.Second, link: linkState{Index: 3, Name: "eth1", Type: "device", Master: b, AdminUp: true, OperUp: true}},
			}),
			obs: []bondObs{{0, 0}, {1, 1}, {2, 2}}},
		{name: "a member down is one degradation",
			steps: script(base, []step{
				{at: time.Second, link: member(3, "eth1", b, false)},
				{at: 2 * time.Second, link: member(2, "eth0", b, false)}, // worse: same degradation
				{at: 3 * time.Second, link: member(2, "eth0", b, true)},
			}),
			downMembers: []string{"eth1"},
			obs:         []bondObs{{0, 0}, {1, 1}, {2, 2}, {1, 2}, {0, 2}, {1, 2}}},
		{name: "recovered then degraded again is a new degradation",
			steps: script(base, []step{
				{at: time.Second, link: member(3, "eth1", b, false)},
				{at: 2 * time.Second, link: member(3, "eth1", b, true)},
				{at: 3 * time.Second, link: member(2, "eth0", b, false)},
				{at: 3 * time.Second, link: member(3, "eth1", b, false)},
			}),
			downMembers: []string{"eth1", "eth0"},
			obs:         []bondObs{{0, 0}, {1, 1}, {2, 2}, {1, 2}, {2, 2}, {1, 2}, {0, 2}}},
		{name: "members listed before their bond",
			steps: []step{
				{at: 0, link: member(2, "eth0", b, true)},
				{at: 0, link: member(3, "eth1", b, false)},
				{at: 0, link: bond(b, "bond0", true)},
			},
			downMembers: []string{"eth1"},
			obs:         []bondObs{{1, 2}}},
		{name: "a member the bond failed is down even with carrier",
			steps:       script(base, []step{{at: time.Second, link: failed}}),
			downMembers: []string{"eth1"},
			obs:         []bondObs{{0, 0}, {1, 1}, {2, 2}, {1, 2}}},
		{name: "releasing the down member ends the degradation",
			steps: script(base, []step{
				{at: time.Second, link: member(3, "eth1", b, false)},
				{at: 2 * time.Second, link: member(3, "eth1", 0, false)},
				{at: 3 * time.Second, link: member(3, "eth1", b, false)}, // enslaved again, still down
			}),
			downMembers: []string{"eth1", "eth1"},
			obs:         []bondObs{{0, 0}, {1, 1}, {2, 2}, {1, 2}, {1, 1}, {1, 2}}},
		{name: "a deleted member leaves the bond",
			steps: script(base, []step{
				{at: time.Second, link: member(3, "eth1", b, false)},
				{at: 2 * time.Second, remove: 3},
			}),
			downMembers: []string{"eth1"},
			obs:         []bondObs{{0, 0}, {1, 1}, {2, 2}, {1, 2}, {1, 1}}},
		{name: "a member moved to another bond",
			steps: script(base, []step{
				{at: 0, link: bond(11, "bond1", true)},
				{at: time.Second, link: member(3, "eth1", 11, true)},
			}),
			obs: []bondObs{{0, 0}, {1, 1}, {2, 2}, {1, 1}}},
		{name: "the bond's own state changes carry its members",
			steps: script(base, []step{{at: time.Second, link: bond(b, "bond0", false)}}),
			obs:   []bondObs{{0, 0}, {1, 1}, {2, 2}, {2, 2}}},
		{name: "a bridge is not a bond",
			steps: []step{
				{at: 0, link: linkState{Index: b, Name: "br0", Type: "bridge", AdminUp: true, OperUp: true}},
				{at: 0, link: member(2, "eth0", b, true)},
				{at: time.Second, link: member(2, "eth0", b, false)},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := run(newTracker(3, DefaultFlapWindow, ""), tt.steps)
			var down []string
			for _, f := range faultsOf(sink, ClassBondDegraded) {
				if f.GetPart().GetName() != "bond0" || f.GetRule() != RuleBondDegraded ||
					f.GetSeverity() != hwhealv1.Severity_SEVERITY_WARNING || f.GetEvidence().GetCaptures()["bond"] != "bond0" {
					t.Errorf("fault = %v", f)
				}
				down = append(down, f.GetEvidence().GetCaptures()["down_members"])
			}
			if !slices.Equal(down, tt.downMembers) {
				t.Errorf("bond faults name down members %q, want %q", down, tt.downMembers)
			}
			var obs []bondObs
			for _, o := range sink.Observations() {
				m := sourcetest.SampleMap(o)
				if o.GetPart().GetName() != "bond0" {
					if _, ok := m[SampleMembersTotal]; ok && o.GetPart().GetName() != "bond1" {
						t.Errorf("%s carries members samples", o.GetPart().GetName())
					}
					continue
				}
				obs = append(obs, bondObs{m[SampleMembersUp], m[SampleMembersTotal]})
			}
			if !slices.Equal(obs, tt.obs) {
				t.Errorf("bond observations %v, want %v", obs, tt.obs)
			}
			if n := len(faultsOf(sink, ClassLinkFlap)); n != 0 {
				t.Errorf("%d flaps", n)
			}
		})
	}
}

func TestSnapshot(t *testing.T) {
	tr := newTracker(3, DefaultFlapWindow, "")
	sink := run(tr, []step{
		{link: member(3, "eth1", 10, false)},
		{link: up(4, "veth9")},
		{link: bond(10, "bond0", true)},
		{link: member(2, "eth0", 10, true)},
	})
	got := tr.snapshot(t0)
	if names := sourcetest.Names(got); !slices.Equal(names, []string{"bond0", "eth0", "eth1", "veth9"}) {
		t.Fatalf("snapshot names %q", names)
	}
	if m := sourcetest.SampleMap(got[0]); m[SampleMembersUp] != 1 || m[SampleMembersTotal] != 2 {
		t.Errorf("bond0 = %v", m)
	}
	if n := len(faultsOf(sink, ClassBondDegraded)); n != 1 {
		t.Errorf("%d bond faults, want 1", n)
	}
}

// FuzzTracker drives the tracker with arbitrary message sequences and
// checks what must always hold: at most one flap fault per episode, no
// fault for a link that has not recovered threshold times, counts that
// never exceed what was seen.
func FuzzTracker(f *testing.F) {
	f.Add([]byte{0x00, 0x81, 0x00, 0x81, 0x00, 0x81})
	f.Add([]byte{0x12, 0x22, 0x32, 0x40, 0x52, 0x63, 0x71, 0xff})
	f.Add([]byte("\x10\x91\x10\x91\x10\x91\x10\x91"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr := newTracker(3, time.Minute, "")
		sink := &sourcetest.Sink{}
		now := t0
		ups := map[int]int{}
		for _, b := range data {
			// Bits: 0..1 link, 2 master bond, 3 remove, 4..6 step of time, 7 up.
			i := int(b&3) + 1
			now = now.Add(time.Duration(b>>4&7) * 10 * time.Second)
			if b&8 != 0 && b&0x80 == 0 {
				tr.remove(i, now, sink)
				continue
			}
			if b&4 != 0 && i != 4 {
				tr.update(bond(4, "bond0", true), now, sink)
			}
			ls := member(i, "eth"+string(rune('0'+i)), 0, b&0x80 != 0)
			if b&4 != 0 && i != 4 {
				ls.Master = 4
			}
			if i == 4 {
				ls = bond(4, "bond0", b&0x80 != 0)
			}
			old, seen := tr.links[i]
			if seen && !old.state.OperUp && ls.OperUp {
				ups[i]++
			}
			tr.update(ls, now, sink)
		}
		perLink := map[string]int{}
		for _, f := range faultsOf(sink, ClassLinkFlap) {
			perLink[f.GetPart().GetName()]++
			if evidence(f)[SampleFlapTransitions] < 5 {
				t.Errorf("flap raised on %v transitions", evidence(f))
			}
		}
		total := 0
		for name, n := range perLink {
			total += n
			if n*3 > len(data) {
				t.Errorf("%s raised %d times in %d messages", name, n, len(data))
			}
		}
		allUps := 0
		for _, n := range ups {
			allUps += n
		}
		if total*3 > allUps {
			t.Errorf("%d flap faults from %d recoveries", total, allUps)
		}
		for _, o := range sink.Observations() {
			m := sourcetest.SampleMap(o)
			if m[SampleMembersUp] > m[SampleMembersTotal] || m[SampleMembersTotal] > 3 {
				t.Errorf("%s: members %v", o.GetPart().GetName(), m)
			}
		}
	})
}
