package netlink

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/agent/source/netdev"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// typeBond is the kernel's link kind of a bonding master.
const typeBond = "bond"

// linkState is what one link message says about an interface, reduced to
// what the detectors need. It is kept apart from the netlink library's
// types so that the tracker runs, and is tested, without a kernel.
type linkState struct {
	Index   int
	Name    string
	Type    string // link kind: "veth", "bond", "device" for a physical NIC ...
	Master  int    // ifindex of the master (bond, bridge), 0 when none
	AdminUp bool   // IFF_UP
	OperUp  bool   // IFF_RUNNING
	Carrier bool   // IFF_LOWER_UP
	// BondFailed is set on a bond member whose MII status, as the bond
	// sees it, is not up: the bond stopped using it even if the NIC
	// reports carrier.
	BondFailed bool
}

// bondMemberUp is whether a bond counts m as a working member.
func (m linkState) bondMemberUp() bool { return m.OperUp && !m.BondFailed }

type linkRec struct {
	state       linkState
	pci         string
	transitions uint64
	flap        flapState
}

type bondRec struct {
	up, total int
	seen      bool
	raised    bool // degraded and raised; cleared when every member is up again
}

// tracker holds the state of every interface of one namespace and runs the
// flap and bond detectors on its changes. It is not safe for concurrent
// use: one Run owns one tracker.
type tracker struct {
	threshold int
	window    time.Duration
	pci       func(name string) string
	links     map[int]*linkRec
	bonds     map[int]*bondRec
}

// newTracker returns a tracker that names PCI functions under pciRoot, or
// none when pciRoot is "".
func newTracker(threshold int, window time.Duration, pciRoot string) *tracker {
	pci := func(string) string { return "" }
	if pciRoot != "" {
		pci = func(name string) string { return netdev.PCIAddress(pciRoot, name) }
	}
	return &tracker{threshold: threshold, window: window, pci: pci,
		links: map[int]*linkRec{}, bonds: map[int]*bondRec{}}
}

// update takes one link message at now and hands sink an observation of
// every interface whose state it changed (the interface; its bond when the
// bond's membership changed), then the faults it raised. It reports
// whether oper_up changed.
func (t *tracker) update(ls linkState, now time.Time, sink source.Sink) (transition bool) {
	var (
		observe []int
		faults  []*hwhealv1.Fault
	)
	rec, seen := t.links[ls.Index]
	oldMaster := 0
	if !seen {
		rec = &linkRec{state: ls, pci: t.pci(ls.Name)}
		t.links[ls.Index] = rec
		observe = append(observe, ls.Index)
	} else {
		old := rec.state
		oldMaster = old.Master
		rec.state = ls
		if old.Name != ls.Name {
			rec.pci = t.pci(ls.Name)
		}
		if old.Name != ls.Name || old.AdminUp != ls.AdminUp || old.OperUp != ls.OperUp || old.Carrier != ls.Carrier {
			observe = append(observe, ls.Index)
		}
		if old.OperUp != ls.OperUp {
			transition = true
			rec.transitions++
			if n, raise := rec.flap.transition(now, ls.OperUp, t.threshold, t.window); raise {
				faults = append(faults, t.flapFault(rec, n, now))
			}
		}
	}

	// Bond counts are brought up to date before any observation is made,
	// so that a bond's own observation carries its current members.
	affected := make([]int, 0, 3)
	if ls.Type == typeBond {
		affected = append(affected, ls.Index)
	}
	if ls.Master != 0 {
		affected = append(affected, ls.Master)
	}
	if oldMaster != 0 && oldMaster != ls.Master {
		affected = append(affected, oldMaster)
	}
	for _, b := range affected {
		changed, f := t.refreshBond(b, now)
		if changed && !slices.Contains(observe, b) {
			observe = append(observe, b)
		}
		if f != nil {
			faults = append(faults, f)
		}
	}
	t.emit(observe, faults, now, sink)
	return transition
}

// remove forgets a deleted interface; a bond it belonged to is observed
// with one member fewer.
func (t *tracker) remove(index int, now time.Time, sink source.Sink) {
	rec, ok := t.links[index]
	if !ok {
		return
	}
	delete(t.links, index)
	delete(t.bonds, index)
	if rec.state.Master == 0 {
		return
	}
	changed, f := t.refreshBond(rec.state.Master, now)
	var observe []int
	if changed {
		observe = []int{rec.state.Master}
	}
	var faults []*hwhealv1.Fault
	if f != nil {
		faults = []*hwhealv1.Fault{f}
	}
	t.emit(observe, faults, now, sink)
}

func (t *tracker) emit(observe []int, faults []*hwhealv1.Fault, now time.Time, sink source.Sink) {
	for _, i := range observe {
		sink.Observe(t.observation(t.links[i], now))
	}
	for _, f := range faults {
		sink.Raise(f)
	}
}

// refreshBond recounts the members of bond index. It reports whether the
// counts changed since the last time (or are new), and returns the fault
// when the bond just became degraded. An index that is not a bond, or not
// seen yet (a member listed before its master), is left alone: the bond is
// counted when its own message arrives.
func (t *tracker) refreshBond(index int, now time.Time) (changed bool, fault *hwhealv1.Fault) {
	rec, ok := t.links[index]
	if !ok || rec.state.Type != typeBond {
		return false, nil
	}
	up, total, down := t.members(index)
	br := t.bonds[index]
	if br == nil {
		br = &bondRec{}
		t.bonds[index] = br
	}
	changed = !br.seen || br.up != up || br.total != total
	br.seen, br.up, br.total = true, up, total
	switch {
	case up < total && !br.raised:
		br.raised = true
		fault = t.bondFault(rec, up, total, down, now)
	case up == total:
		br.raised = false
	}
	return changed, fault
}

// members counts the interfaces enslaved to bond and those it can use, and
// names the others, sorted.
func (t *tracker) members(bond int) (up, total int, down []string) {
	for _, r := range t.links {
		if r.state.Master != bond {
			continue
		}
		total++
		if r.state.bondMemberUp() {
			up++
		} else {
			down = append(down, r.state.Name)
		}
	}
	slices.Sort(down)
	return up, total, down
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (t *tracker) part(rec *linkRec) *hwhealv1.Part {
	return &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NIC, Name: rec.state.Name, PciAddress: rec.pci}
}

func (t *tracker) observation(rec *linkRec, now time.Time) *hwhealv1.Observation {
	samples := make([]*hwhealv1.Sample, 0, 6)
	add := func(name string, v float64) {
		samples = append(samples, &hwhealv1.Sample{Name: name, Value: v})
	}
	add(SampleAdminUp, b2f(rec.state.AdminUp))
	add(SampleOperUp, b2f(rec.state.OperUp))
	add(SampleCarrier, b2f(rec.state.Carrier))
	add(SampleTransitions, float64(rec.transitions))
	if br, ok := t.bonds[rec.state.Index]; ok {
		add(SampleMembersUp, float64(br.up))
		add(SampleMembersTotal, float64(br.total))
	}
	return &hwhealv1.Observation{
		Time:    timestamppb.New(now),
		Source:  Name,
		Part:    t.part(rec),
		Samples: samples,
	}
}

// snapshot returns an observation of every interface, sorted by name.
func (t *tracker) snapshot(now time.Time) []*hwhealv1.Observation {
	recs := slices.SortedFunc(maps.Values(t.links), func(a, b *linkRec) int {
		return cmp.Compare(a.state.Name, b.state.Name)
	})
	obs := make([]*hwhealv1.Observation, len(recs))
	for i, r := range recs {
		obs[i] = t.observation(r, now)
	}
	return obs
}

func (t *tracker) flapFault(rec *linkRec, transitions int, now time.Time) *hwhealv1.Fault {
	return &hwhealv1.Fault{
		FaultClass: ClassLinkFlap,
		Severity:   hwhealv1.Severity_SEVERITY_WARNING,
		Part:       t.part(rec),
		Rule:       RuleLinkFlap,
		Time:       timestamppb.New(now),
		Summary: fmt.Sprintf("link %s flapping: %d up/down transitions within %v",
			rec.state.Name, transitions, t.window),
		Evidence: &hwhealv1.Evidence{
			Captures: map[string]string{"iface": rec.state.Name},
			Samples: []*hwhealv1.Sample{
				{Name: SampleFlapTransitions, Value: float64(transitions)},
				{Name: SampleWindowSeconds, Value: t.window.Seconds()},
			},
		},
	}
}

func (t *tracker) bondFault(rec *linkRec, up, total int, down []string, now time.Time) *hwhealv1.Fault {
	return &hwhealv1.Fault{
		FaultClass: ClassBondDegraded,
		Severity:   hwhealv1.Severity_SEVERITY_WARNING,
		Part:       t.part(rec),
		Rule:       RuleBondDegraded,
		Time:       timestamppb.New(now),
		Summary: fmt.Sprintf("bond %s degraded: %d of %d members up (down: %s)",
			rec.state.Name, up, total, strings.Join(down, ", ")),
		Evidence: &hwhealv1.Evidence{
			Captures: map[string]string{"bond": rec.state.Name, "down_members": strings.Join(down, ",")},
			Samples: []*hwhealv1.Sample{
				{Name: SampleMembersUp, Value: float64(up)},
				{Name: SampleMembersTotal, Value: float64(total)},
			},
		},
	}
}

// flapState is the flap detector of one interface.
type flapState struct {
	// recent holds the oper_up transitions within the window, oldest
	// first, while no fault is held: fewer than 2×threshold, since the
	// threshold-th recovery raises and clears it.
	recent []flapEvent
	raised bool      // a flap fault is held for the current episode
	last   time.Time // the latest transition
}

type flapEvent struct {
	at time.Time
	up bool
}

// transition records an oper_up change at now. It returns raise when the
// interface has now come back up threshold times within window (n is the
// number of transitions in the window). Once raised, an episode stays one
// fault: nothing is raised again until the link has been still for window.
func (f *flapState) transition(now time.Time, up bool, threshold int, window time.Duration) (n int, raise bool) {
	if f.raised {
		if now.Sub(f.last) < window {
			f.last = now
			return 0, false
		}
		f.raised = false
	}
	f.last = now
	keep := 0
	for keep < len(f.recent) && now.Sub(f.recent[keep].at) > window {
		keep++
	}
	f.recent = append(f.recent[keep:], flapEvent{at: now, up: up})
	ups := 0
	for _, e := range f.recent {
		if e.up {
			ups++
		}
	}
	if ups < threshold {
		return 0, false
	}
	n = len(f.recent)
	f.raised, f.recent = true, nil
	return n, true
}
