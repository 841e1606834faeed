package smart

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/agent/source/sourcetest"
	"github.com/hwheal/hwheal/pkg/smart"
)

// loopDevice attaches a small file to a loop device for the test, or skips
// with one line when that is not possible here.
func loopDevice(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to attach a loop device")
	}
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		t.Skip("losetup not installed")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("losetup: %v: %s", err, strings.TrimSpace(string(out)))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("detach %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// within runs f and fails the test if it has not returned in 10 s: a read
// of a device that does not answer must not hang.
func within[T any](t *testing.T, f func() (T, error)) (T, error) {
	t.Helper()
	type out struct {
		v   T
		err error
	}
	ch := make(chan out, 1)
	go func() {
		v, err := f()
		ch <- out{v, err}
	}()
	select {
	case o := <-ch:
		return o.v, o.err
	case <-time.After(10 * time.Second):
		t.Fatal("did not return in 10 s")
	}
	panic("unreachable")
}

// TestNativeLoopDevice sends the real ioctls to a real loop device, which
// has neither SAT pass-through nor NVMe admin commands: each path says
// "SMART not supported" (so the source tries the next reader), without a
// panic or a hang.
func TestNativeLoopDevice(t *testing.T) {
	dev := loopDevice(t)
	r := NewNativeReader()
	for _, tc := range []struct {
		protocol smart.Protocol
		what     string
	}{
		{smart.ProtocolATA, "CHECK POWER MODE (SG_IO)"},
		{smart.ProtocolNVMe, "NVMe Get Log Page 02h"},
		{"", "natively"},
	} {
		t.Run(string(tc.protocol), func(t *testing.T) {
			d := Disk{Name: filepath.Base(dev), Protocol: tc.protocol, Path: dev, BlockPath: dev}
			rep, err := within(t, func() (*smart.Report, error) { return r.Read(context.Background(), d) })
			if rep != nil || !errors.Is(err, ErrNotSupported) {
				t.Fatalf("Read = %v, %v; want ErrNotSupported", rep, err)
			}
			for _, w := range []string{"SMART not supported", tc.what, d.Name} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestSmartctlLoopDevice runs the real smartctl against the loop device:
// it cannot tell what the device is, and says so clearly.
func TestSmartctlLoopDevice(t *testing.T) {
	lookSmartctl(t)
	dev := loopDevice(t)
	d := Disk{Name: filepath.Base(dev), Path: dev, BlockPath: dev}
	rep, err := within(t, func() (*smart.Report, error) { return NewSmartctlReader("").Read(context.Background(), d) })
	if rep != nil || !errors.Is(err, ErrNotSupported) || !errors.Is(err, smart.ErrSmartctlFailed) {
		t.Fatalf("Read = %v, %v; want smartctl's failure, as ErrNotSupported", rep, err)
	}
	for _, w := range []string{"Unable to detect device type", dev} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// TestProbeLoopDevice reads a fixture root whose one disk is a real loop
// device (its /dev node links to it) through the source with the real
// readers. Claimed to be an ATA disk, it is not supported natively; the
// real smartctl, told it is SAT, gets no answer to CHECK POWER MODE and,
// as smartctl -n standby does, leaves it alone as asleep. Claimed to be
// SCSI, neither reader can read it and the source is unavailable.
func TestProbeLoopDevice(t *testing.T) {
	lookSmartctl(t)
	dev := loopDevice(t)
	for _, tc := range []struct {
		vendor      string
		unavailable string
		standby     bool
	}{
		{vendor: "ATA", standby: true},
		{vendor: "SEAGATE", unavailable: "no reader can read these disks: native: sdz: SMART not supported natively for SCSI"},
	} {
		t.Run(tc.vendor, func(t *testing.T) {
			d := sataDisk("sdz", 3)
			d.vendor = tc.vendor
			root := diskTree(t, d)
			if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(dev, filepath.Join(root, "dev", "sdz")); err != nil {
				t.Fatal(err)
			}
			p := New(Config{Root: root, Timeout: 5 * time.Second}).Probe(context.Background())
			if tc.unavailable != "" {
				if !strings.Contains(p.Unavailable, tc.unavailable) || !strings.Contains(p.Unavailable, "Unable to detect device type") {
					t.Fatalf("Unavailable = %q", p.Unavailable)
				}
				return
			}
			if p.Unavailable != "" || len(p.Errors) != 0 || len(p.Observations) != 1 {
				t.Fatalf("probe: unavailable %q, errors %q, %d observations", p.Unavailable, p.Errors, len(p.Observations))
			}
			s := sourcetest.SampleMap(p.Observations[0])
			if s[smart.SampleStandby] != 1 || len(s) != 2 {
				t.Errorf("samples %v, want a drive left in standby", s)
			}
		})
	}
}

// TestProbeHost probes this host with the real readers, as `hwheal-agent
// inspect` does: it returns, and either reads or says why it cannot (on
// this machine and CI, whose only disk is virtio: no disk to read).
func TestProbeHost(t *testing.T) {
	if _, err := os.Stat("/sys/block"); err != nil {
		t.Skip("no /sys/block on this host")
	}
	p, _ := within(t, func() (source.Probe, error) { return New(Config{}).Probe(context.Background()), nil })
	t.Logf("unavailable %q, %d observations, %d faults, errors %q", p.Unavailable, len(p.Observations), len(p.Faults), p.Errors)
	if p.Unavailable == "" && len(p.Observations)+len(p.Errors) == 0 {
		t.Error("neither read nor unavailable")
	}
	if p.Unavailable != "" && (len(p.Observations) != 0 || len(p.Faults) != 0) {
		t.Error("unavailable, with readings")
	}
}
