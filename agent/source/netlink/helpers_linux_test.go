package netlink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/agent/source/sourcetest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// requireNetns skips a test that needs to create network namespaces.
func requireNetns(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
}

func nsName(t testing.TB) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "hwheal-nl-" + hex.EncodeToString(b)
}

// newNetns creates a named network namespace, deleted when the test ends,
// and returns its name and the path of its file.
func newNetns(t testing.TB) (name, path string) {
	t.Helper()
	name = nsName(t)
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name, filepath.Join("/var/run/netns", name)
}

func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// vethPair makes name0 in ns and its peer name1 in peerNS, both up. The
// peer lives in a namespace the source does not watch, so that flapping
// one end is seen once, and taking the peer down is a carrier loss.
//
// The two ends get different ifindexes (from name's first letter): the
// kernel's linkwatch reports the carrier change of a veth whose peer has
// its own ifindex at once, and batches the others to once a second, which
// two fresh namespaces, both numbering from 2, would get.
func vethPair(t testing.TB, ns, peerNS, name string) {
	t.Helper()
	idx := int(name[0])
	ip(t, "-n", ns, "link", "add", name+"0", "index", strconv.Itoa(1000+idx),
		"type", "veth", "peer", "name", name+"1", "index", strconv.Itoa(2000+idx), "netns", peerNS)
	ip(t, "-n", ns, "link", "set", name+"0", "up")
	ip(t, "-n", peerNS, "link", "set", name+"1", "up")
	// Running comes a moment after up (the kernel's linkwatch): wait for
	// it, so that a source started now lists the link up.
	waitFor(t, name+"0 running", func() bool {
		out, err := exec.Command("ip", "-n", ns, "-br", "link", "show", "dev", name+"0").Output()
		return err == nil && strings.Fields(string(out))[1] == "UP"
	})
}

type running struct {
	src  *Source
	sink *sourcetest.Sink
	logs *sourcetest.LogBuffer
}

// start runs a source on cfg until the test ends; Run must then return nil.
func start(t testing.TB, cfg Config, sink source.Sink) *running {
	t.Helper()
	r := &running{sink: &sourcetest.Sink{}, logs: &sourcetest.LogBuffer{}}
	if sink == nil {
		sink = r.sink
	}
	cfg.Logger = sourcetest.NewLogger(r.logs)
	r.src = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.src.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v on cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return r
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// operSeq is the sequence of oper_up values observed for name, each change
// once (an interface coming up is observed when it is set up and again
// when its carrier is seen, both with the same oper_up).
func operSeq(sink *sourcetest.Sink, name string) []float64 {
	var seq []float64
	for _, o := range sink.Observations() {
		if o.GetPart().GetName() != name {
			continue
		}
		v := sourcetest.SampleMap(o)[SampleOperUp]
		if len(seq) == 0 || seq[len(seq)-1] != v {
			seq = append(seq, v)
		}
	}
	return seq
}

func lastObs(sink *sourcetest.Sink, name string) *hwhealv1.Observation {
	obs := sink.Observations()
	for i := len(obs) - 1; i >= 0; i-- {
		if obs[i].GetPart().GetName() == name {
			return obs[i]
		}
	}
	return nil
}

// waitSeq waits until name's oper_up sequence is want.
func waitSeq(t testing.TB, sink *sourcetest.Sink, name string, want ...float64) {
	t.Helper()
	waitFor(t, name+" oper_up sequence", func() bool {
		return len(operSeq(sink, name)) >= len(want)
	})
	if got := operSeq(sink, name); !slices.Equal(got, want) {
		t.Fatalf("%s oper_up sequence %v, want %v", name, got, want)
	}
}

// flap takes dev in ns down and up n times, waiting each time until the
// source saw watch change, and returns watch's expected sequence.
func flap(t testing.TB, sink *sourcetest.Sink, ns, dev string, n int, watch string) {
	t.Helper()
	seq := operSeq(sink, watch)
	for range n {
		ip(t, "-n", ns, "link", "set", dev, "down")
		seq = append(seq, 0)
		waitSeq(t, sink, watch, seq...)
		ip(t, "-n", ns, "link", "set", dev, "up")
		seq = append(seq, 1)
		waitSeq(t, sink, watch, seq...)
	}
}

// settle makes a new interface in ns and waits for it: every event before
// it has then been handled.
func settle(t testing.TB, sink *sourcetest.Sink, ns, peerNS, name string) {
	t.Helper()
	vethPair(t, ns, peerNS, name)
	waitFor(t, name+" observed", func() bool { return lastObs(sink, name+"0") != nil })
}
