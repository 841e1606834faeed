package netlink

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hwheal/hwheal/agent/source/netdev"
	"github.com/hwheal/hwheal/agent/source/sourcetest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func flapsByIface(sink *sourcetest.Sink) map[string][]*hwhealv1.Fault {
	m := map[string][]*hwhealv1.Fault{}
	for _, f := range faultsOf(sink, ClassLinkFlap) {
		m[f.GetEvidence().GetCaptures()["iface"]] = append(m[f.GetEvidence().GetCaptures()["iface"]], f)
	}
	return m
}

// TestLinkFlapInNetns is the test: veth links in a network
// namespace flapped for real give exactly one nic.link_flap each, from
// netlink events, and a link left down or flapped fewer times gives none.
func TestLinkFlapInNetns(t *testing.T) {
	requireNetns(t)
	ns, nsPath := newNetns(t)
	peer, _ := newNetns(t)
	for _, p := range []string{"a", "b", "c", "d"} {
		vethPair(t, ns, peer, p)
	}
	r := start(t, Config{NetNS: nsPath}, nil)
	for _, p := range []string{"a0", "b0", "c0", "d0"} {
		waitSeq(t, r.sink, p, 1) // listed when subscribing
	}

	flap(t, r.sink, ns, "a0", 4, "a0")   // administratively, one past the threshold
	flap(t, r.sink, peer, "b1", 3, "b0") // carrier lost: the far end goes away
	ip(t, "-n", ns, "link", "set", "c0", "down")
	waitSeq(t, r.sink, "c0", 1, 0)
	flap(t, r.sink, ns, "d0", 2, "d0")
	settle(t, r.sink, ns, peer, "z")

	want := map[string][]float64{
		"a0": {1, 0, 1, 0, 1, 0, 1, 0, 1},
		"b0": {1, 0, 1, 0, 1, 0, 1},
		"c0": {1, 0},
		"d0": {1, 0, 1, 0, 1},
	}
	for name, seq := range want {
		if got := operSeq(r.sink, name); !slices.Equal(got, seq) {
			t.Errorf("%s oper_up %v, want %v", name, got, seq)
		}
		if got := sourcetest.SampleMap(lastObs(r.sink, name))[SampleTransitions]; got != float64(len(seq)-1) {
			t.Errorf("%s transitions_total %v, want %d", name, got, len(seq)-1)
		}
	}
	for _, o := range r.sink.Observations() {
		if o.GetPart().GetName() == "b0" && sourcetest.SampleMap(o)[SampleAdminUp] != 1 {
			t.Errorf("b0 went administratively down: %v", o)
		}
		if o.GetPart().GetName() == "lo" {
			t.Error("loopback observed")
		}
	}

	flaps := flapsByIface(r.sink)
	for _, name := range []string{"a0", "b0"} {
		if n := len(flaps[name]); n != 1 {
			t.Errorf("%d link_flap faults for %s, want exactly 1", n, name)
			continue
		}
		f := flaps[name][0]
		ev := evidence(f)
		if f.GetPart().GetName() != name || f.GetSeverity() != hwhealv1.Severity_SEVERITY_WARNING ||
			ev[SampleFlapTransitions] != 6 || ev[SampleWindowSeconds] != DefaultFlapWindow.Seconds() {
			t.Errorf("%s: fault %v", name, f)
		}
	}
	if len(flaps) != 2 {
		t.Errorf("link_flap faults for %d interfaces, want a0 and b0: %v", len(flaps), flaps)
	}
	st := r.src.Stats()
	if st.Subscriptions != 1 || st.Failures != 0 || st.Transitions != 8+6+1+4+1 {
		t.Errorf("stats %+v, want one subscription, no failure, 20 transitions (z0 came up once)", st)
	}
}

// TestBridgePort checks that a bridge is not taken for a bond, and that a
// port leaving its bridge (the bridge's own RTM_DELLINK on the link group)
// is not taken for the interface going away.
func TestBridgePort(t *testing.T) {
	requireNetns(t)
	ns, nsPath := newNetns(t)
	peer, _ := newNetns(t)
	ip(t, "-n", ns, "link", "add", "br0", "type", "bridge")
	vethPair(t, ns, peer, "e")
	ip(t, "-n", ns, "link", "set", "e0", "master", "br0")
	ip(t, "-n", ns, "link", "set", "br0", "up")
	r := start(t, Config{NetNS: nsPath}, nil)
	waitSeq(t, r.sink, "e0", 1)

	flap(t, r.sink, peer, "e1", 1, "e0")
	ip(t, "-n", ns, "link", "set", "e0", "nomaster")
	flap(t, r.sink, peer, "e1", 1, "e0")
	settle(t, r.sink, ns, peer, "z")

	if got := sourcetest.SampleMap(lastObs(r.sink, "e0"))[SampleTransitions]; got != 4 {
		t.Errorf("e0 transitions_total %v, want 4 (its history kept when it left the bridge)", got)
	}
	for _, o := range r.sink.Observations() {
		if _, ok := sourcetest.SampleMap(o)[SampleMembersTotal]; ok {
			t.Errorf("%s observed as a bond", o.GetPart().GetName())
		}
	}
	if f := r.sink.Faults(); len(f) != 0 {
		t.Errorf("faults %v", f)
	}
}

// TestBondInNetns needs the bonding driver, which this project's CI
// kernel does not have: it skips there.
func TestBondInNetns(t *testing.T) {
	requireNetns(t)
	ns, nsPath := newNetns(t)
	peer, _ := newNetns(t)
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "bond0", "type", "bond", "miimon", "10").CombinedOutput(); err != nil {
		t.Skipf("the kernel cannot create a bond: %s", strings.TrimSpace(string(out)))
	}
	for _, p := range []string{"m", "n"} {
		ip(t, "-n", ns, "link", "add", p+"0", "type", "veth", "peer", "name", p+"1", "netns", peer)
		ip(t, "-n", ns, "link", "set", p+"0", "master", "bond0")
		ip(t, "-n", peer, "link", "set", p+"1", "up")
	}
	ip(t, "-n", ns, "link", "set", "bond0", "up")
	r := start(t, Config{NetNS: nsPath}, nil)
	members := func() (up, total float64) {
		m := sourcetest.SampleMap(lastObs(r.sink, "bond0"))
		return m[SampleMembersUp], m[SampleMembersTotal]
	}
	waitFor(t, "bond0 with 2 of 2 members up", func() bool { u, n := members(); return u == 2 && n == 2 })

	for round := 1; round <= 2; round++ {
		ip(t, "-n", peer, "link", "set", "n1", "down")
		waitFor(t, "bond0 with 1 of 2 members up", func() bool { u, n := members(); return u == 1 && n == 2 })
		waitFor(t, "a bond fault", func() bool { return len(faultsOf(r.sink, ClassBondDegraded)) == round })
		f := faultsOf(r.sink, ClassBondDegraded)[round-1]
		if f.GetPart().GetName() != "bond0" || f.GetEvidence().GetCaptures()["down_members"] != "n0" {
			t.Errorf("fault %v", f)
		}
		ip(t, "-n", peer, "link", "set", "n1", "up")
		waitFor(t, "bond0 with 2 of 2 members up", func() bool { u, n := members(); return u == 2 && n == 2 })
	}
	settle(t, r.sink, ns, peer, "z")
	if n := len(faultsOf(r.sink, ClassBondDegraded)); n != 2 {
		t.Errorf("%d bond faults, want one per degradation (2)", n)
	}
}

// TestResubscribesWhenNamespaceAppears starts the source on a namespace
// that does not exist yet: it says so, retries with backoff and picks the
// namespace up once it is made.
func TestResubscribesWhenNamespaceAppears(t *testing.T) {
	requireNetns(t)
	name := nsName(t)
	r := start(t, Config{NetNS: filepath.Join("/var/run/netns", name)}, nil)
	waitFor(t, "two failed attempts", func() bool { return r.src.Stats().Failures >= 2 })
	if out := r.logs.String(); !strings.Contains(out, "link subscription failed, retrying") || !strings.Contains(out, name) {
		t.Errorf("log does not say why it retries:\n%s", out)
	}
	peer, _ := newNetns(t)
	ip(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	vethPair(t, name, peer, "a")
	// Subscribed before or after a0 came up: either way it is seen up.
	waitFor(t, "a0 up", func() bool { return sourcetest.SampleMap(lastObs(r.sink, "a0"))[SampleOperUp] == 1 })
	if st := r.src.Stats(); st.Subscriptions != 1 {
		t.Errorf("stats %+v", st)
	}
	if !strings.Contains(r.logs.String(), "subscribed to link events") {
		t.Errorf("log does not say it subscribed:\n%s", r.logs.String())
	}
}

// gatedSink holds Observe while closed, as a stalled agent would.
type gatedSink struct {
	*sourcetest.Sink
	mu sync.RWMutex
}

func (g *gatedSink) Observe(o *hwhealv1.Observation) {
	g.mu.RLock() // waits while hold is in force
	defer g.mu.RUnlock()
	g.Sink.Observe(o)
}

func (g *gatedSink) hold()    { g.mu.Lock() }
func (g *gatedSink) release() { g.mu.Unlock() }

// TestResubscribesAfterOverflow stalls the sink while a link changes
// hundreds of times: the kernel overflows the socket's receive buffer and
// drops notifications. The source must say so, resubscribe, and catch up
// with the link's real state from the new listing.
func TestResubscribesAfterOverflow(t *testing.T) {
	requireNetns(t)
	ns, nsPath := newNetns(t)
	peer, _ := newNetns(t)
	vethPair(t, ns, peer, "x")
	g := &gatedSink{Sink: &sourcetest.Sink{}}
	r := start(t, Config{NetNS: nsPath, ReceiveBufferSize: 1}, g)
	waitSeq(t, g.Sink, "x0", 1)

	g.hold()
	var batch strings.Builder
	for range 400 {
		batch.WriteString("link set x0 down\nlink set x0 up\n")
	}
	batch.WriteString("link set x0 down\n")
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	out, err := cmd.CombinedOutput()
	g.release()
	if err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}

	waitFor(t, "a second subscription", func() bool { return r.src.Stats().Subscriptions >= 2 })
	waitFor(t, "x0 down", func() bool { return sourcetest.SampleMap(lastObs(g.Sink, "x0"))[SampleOperUp] == 0 })
	if out := r.logs.String(); !strings.Contains(out, "link events ended, resubscribing") || !strings.Contains(out, "no buffer space") {
		t.Errorf("log does not say why it resubscribed:\n%s", out)
	}
	if st := r.src.Stats(); st.Failures == 0 {
		t.Errorf("stats %+v: the overflow not counted", st)
	}
}

// TestPCIAddress checks that an interface is named by its PCI function
// from the sysfs under Root, and that in another namespace the agent's own
// /sys is not asked (it would name a host device of the same name).
func TestPCIAddress(t *testing.T) {
	requireNetns(t)
	ns, nsPath := newNetns(t)
	peer, _ := newNetns(t)
	vethPair(t, ns, peer, "p")

	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(root, "sys", "devices", "pci0000:00", "0000:00:1f.6")
	if err := os.MkdirAll(filepath.Join(dev, "net", "p0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../0000:00:1f.6", filepath.Join(dev, "net", "p0", "device")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "sys", "class", "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../devices/pci0000:00/0000:00:1f.6/net/p0", filepath.Join(root, "sys", "class", "net", "p0")); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name, root, want string
	}{
		{"fixture root", root, "0000:00:1f.6"},
		{"no root in another namespace", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, Config{NetNS: nsPath, Root: tt.root}, nil)
			waitFor(t, "p0", func() bool { return lastObs(r.sink, "p0") != nil })
			if got := lastObs(r.sink, "p0").GetPart().GetPciAddress(); got != tt.want {
				t.Errorf("p0 PCI address %q, want %q", got, tt.want)
			}
			p := New(Config{NetNS: nsPath, Root: tt.root}).Probe(context.Background())
			if got := sourcetest.ByName(p.Observations)["p0"].GetPart().GetPciAddress(); got != tt.want {
				t.Errorf("probed p0 PCI address %q, want %q", got, tt.want)
			}
		})
	}
}

// ipLink is what `ip -j link show` says of one interface.
type ipLink struct {
	Name      string   `json:"ifname"`
	Flags     []string `json:"flags"`
	OperState string   `json:"operstate"`
}

func ipLinks(t *testing.T, args ...string) map[string]ipLink {
	t.Helper()
	out, err := exec.Command("ip", append(args, "-j", "link", "show")...).Output()
	if err != nil {
		t.Fatalf("ip -j link show: %v", err)
	}
	var links []ipLink
	if err := json.Unmarshal(out, &links); err != nil {
		t.Fatalf("parse ip -j link show: %v", err)
	}
	m := map[string]ipLink{}
	for _, l := range links {
		if l.Name != "lo" {
			m[l.Name] = l
		}
	}
	return m
}

// TestProbe checks a probe against what iproute2 reports, in a namespace
// made for the test and in the agent's own.
func TestProbe(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip to compare with")
	}
	for _, tt := range []struct {
		name string
		// setup returns the namespace to probe and ip's arguments for it.
		setup func(t *testing.T) (netns string, ipArgs []string)
	}{
		{"test namespace", func(t *testing.T) (string, []string) {
			requireNetns(t)
			ns, nsPath := newNetns(t)
			peer, _ := newNetns(t)
			vethPair(t, ns, peer, "a")
			vethPair(t, ns, peer, "c")
			ip(t, "-n", ns, "link", "set", "c0", "down")
			return nsPath, []string{"-n", ns}
		}},
		// Listing links needs no privilege.
		{"own namespace", func(t *testing.T) (string, []string) { return "", nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			netnsPath, ipArgs := tt.setup(t)
			p := New(Config{NetNS: netnsPath}).Probe(context.Background())
			if p.Source != Name || p.Unavailable != "" || len(p.Errors) != 0 || len(p.Faults) != 0 {
				t.Fatalf("probe %+v", p)
			}
			links := ipLinks(t, ipArgs...)
			names := sourcetest.Names(p.Observations)
			if want := slices.Sorted(maps.Keys(links)); !slices.Equal(names, want) {
				t.Fatalf("probed %q, ip lists %q", names, want)
			}
			for _, o := range p.Observations {
				got := sourcetest.SampleMap(o)
				l := links[o.GetPart().GetName()]
				// ip hides IFF_RUNNING; the kernel sets it on a link that is
				// up with operstate up or unknown.
				adminUp := slices.Contains(l.Flags, "UP")
				want := map[string]float64{
					SampleAdminUp: b2f(adminUp),
					SampleOperUp:  b2f(adminUp && (l.OperState == "UP" || l.OperState == "UNKNOWN")),
					SampleCarrier: b2f(slices.Contains(l.Flags, "LOWER_UP")),
				}
				for sample, v := range want {
					if got[sample] != v {
						t.Errorf("%s %s = %v, ip says %v %s", l.Name, sample, got[sample], l.Flags, l.OperState)
					}
				}
			}
			if netnsPath == "" {
				// Named like the netdev source and the inventory name them.
				for _, o := range p.Observations {
					if got, want := o.GetPart().GetPciAddress(), netdev.PCIAddress("/", o.GetPart().GetName()); got != want {
						t.Errorf("%s PCI address %q, netdev says %q", o.GetPart().GetName(), got, want)
					}
				}
			} else {
				m := sourcetest.SamplesByName(p.Observations)
				if m["a0"][SampleOperUp] != 1 || m["c0"][SampleOperUp] != 0 || m["c0"][SampleAdminUp] != 0 {
					t.Errorf("probe %v", m)
				}
			}
		})
	}
}

func TestProbeUnavailable(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no such namespace", Config{NetNS: "/nonexistent/netns/x"}, "open network namespace /nonexistent/netns/x"},
		{"invalid config", Config{FlapThreshold: -1}, "FlapThreshold -1 is negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := New(tt.cfg).Probe(context.Background())
			if !strings.Contains(p.Unavailable, tt.want) || len(p.Observations) != 0 {
				t.Errorf("probe %+v, want unavailable with %q", p, tt.want)
			}
		})
	}
}

func TestRunInvalidConfig(t *testing.T) {
	for _, cfg := range []Config{{FlapThreshold: -1}, {FlapWindow: -time.Second}, {ReceiveBufferSize: -1}} {
		err := New(cfg).Run(context.Background(), &sourcetest.Sink{})
		if err == nil || !strings.Contains(err.Error(), "netlink: ") {
			t.Errorf("Run(%+v) = %v, want the field named", cfg, err)
		}
	}
}

// TestRunStopsWhileRetrying checks that a source waiting to retry stops at
// once on cancel and leaves nothing behind (goleak checks the rest).
func TestRunStopsWhileRetrying(t *testing.T) {
	var logs sourcetest.LogBuffer
	src := New(Config{NetNS: "/nonexistent/netns/x", Logger: sourcetest.NewLogger(&logs)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, &sourcetest.Sink{}) }()
	waitFor(t, "two attempts", func() bool { return src.Stats().Failures >= 2 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not stop while waiting to retry")
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN msg=\"link subscription failed, retrying\"") || !strings.Contains(out, "retry_in=100ms") ||
		!strings.Contains(out, "level=DEBUG msg=\"link subscription failed, retrying\"") || !strings.Contains(out, "retry_in=200ms") {
		t.Errorf("log does not show the backoff, warning once:\n%s", out)
	}
	if n := strings.Count(out, "level=WARN"); n != 1 {
		t.Errorf("%d warnings for one reason:\n%s", n, out)
	}
}

// TestStopMidBurst cancels the source while the library's reader is
// blocked handing it a burst of messages: Run must still return, and leave
// no goroutine behind.
func TestStopMidBurst(t *testing.T) {
	requireNetns(t)
	ns, nsPath := newNetns(t)
	peer, _ := newNetns(t)
	vethPair(t, ns, peer, "x")
	g := &gatedSink{Sink: &sourcetest.Sink{}}
	// A buffer that holds the whole burst: an overflow would end the
	// stream, and free the reader, before the sink is released.
	src := New(Config{NetNS: nsPath, ReceiveBufferSize: 16 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, g) }()
	waitSeq(t, g.Sink, "x0", 1)
	before := src.Stats().Updates

	g.hold()
	var batch strings.Builder
	for range 300 {
		batch.WriteString("link set x0 down\nlink set x0 up\n")
	}
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	out, err := cmd.CombinedOutput()
	// Let the reader fill the queue and block on it.
	time.Sleep(50 * time.Millisecond)
	cancel()
	g.release()
	if err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	// The one held in the sink when ctx was cancelled, and no more.
	if n := src.Stats().Updates - before; n != 1 {
		t.Errorf("%d messages handled, want the one in the sink at cancel", n)
	}
	goleak.VerifyNone(t)
}
