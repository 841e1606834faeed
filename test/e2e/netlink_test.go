package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// ip runs iproute2's ip and fails the test on error.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestVethFlapRaisesLinkFlap flaps a real link and sees the agent raise one
// nic.link_flap fault from netlink events: a veth pair whose peer lives in
// a network namespace of the test's own, with the host end taken down and
// up several times.
func TestVethFlapRaisesLinkFlap(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip (make deps installs it)")
	}
	ns := "hwheal-e2e-" + randomID(t, 4)
	hostEnd, peerEnd := "hwv"+randomLetters(t, 6), "hwp"+randomLetters(t, 6)
	ip(t, "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() }) // takes the peer, and so the pair, with it
	ip(t, "link", "add", hostEnd, "type", "veth", "peer", "name", peerEnd, "netns", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostEnd).Run() })
	ip(t, "-n", ns, "link", "set", peerEnd, "up")
	ip(t, "link", "set", hostEnd, "up")

	addr := freeAddr(t)
	nodeName := "e2e-nl-" + randomID(t, 4)
	start(t, "hwheal-collector", "--insecure", "--listen", addr, "--state-dir", t.TempDir())
	agent := start(t, "hwheal-agent", "--insecure", "--collector", addr, "--node", nodeName, "--state-dir", t.TempDir(), "--log-level", "debug")
	eventually(t, 30*time.Second, "the agent subscribes to link events", func() error {
		if !strings.Contains(agent.output(), "subscribed to link events") {
			return fmt.Errorf("not yet")
		}
		return nil
	})

	// netlink's default: 3 down-up cycles within 10 minutes is a flap.
	for range 5 {
		ip(t, "link", "set", hostEnd, "down")
		time.Sleep(50 * time.Millisecond)
		ip(t, "link", "set", hostEnd, "up")
		time.Sleep(50 * time.Millisecond)
	}
	flaps := func() ([]fault, error) {
		var faults []fault
		if err := ctlJSON(t, addr, &faults, "faults", "--node", nodeName, "--class", "nic.link_flap"); err != nil {
			return nil, err
		}
		var ours []fault
		for _, f := range faults {
			if f.Part.Name == hostEnd {
				ours = append(ours, f)
			}
		}
		return ours, nil
	}
	eventually(t, 20*time.Second, "nic.link_flap on the flapped veth", func() error {
		got, err := flaps()
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].Part.Kind != "PART_KIND_NIC" {
			return fmt.Errorf("link_flap faults on %s: %+v", hostEnd, got)
		}
		return nil
	})
	// Held as one: the flaps after the threshold do not raise again.
	time.Sleep(time.Second)
	got, err := flaps()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Count.String() != "1" {
		t.Fatalf("a flapping link is one fault raised once, got %+v", got)
	}
}
