package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/hwheal/hwheal/collector"
	"github.com/hwheal/hwheal/pkg/kernlog"
	"github.com/hwheal/hwheal/pkg/ttar"
	"github.com/hwheal/hwheal/pkg/ttar/ttartest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// fixtureKmsg are real kernel log lines (from agent/detect/testdata, see
// its SOURCE.txt) written as raw /dev/kmsg records, among benign ones.
var fixtureKmsg = []struct {
	msg   string
	class string // "" for benign lines
	part  string
}{
	{msg: "ata1: SATA link up 6.0 Gbps (SStatus 133 SControl 300)"},
	{msg: "I/O error, dev sda, sector 4196408 op 0x0:(READ) flags 0x83700 phys_seg 9 prio class 2", class: "disk.io_error", part: "sda"},
	{msg: "pcieport 0000:00:01.0: AER: Uncorrected (Fatal) error received: 0000:00:01.0", class: "pcie.aer_fatal", part: "0000:00:01.0"},
	{msg: "EDAC MC0: 1 UE Cannot decode normalized address on mc#0csrow#0channel#2 (csrow:0 channel:2 page:0x0 offset:0x0 grain:64)", class: "memory.ue"},
	{msg: "e1000e: Intel(R) PRO/1000 Network Driver"},
}

// fixtureRoot builds a host tree: procfs/sysfs fixtures from
// prometheus/procfs and node_exporter (via the sources' testdata:
// diskstats, NIC counters, EDAC, PCIe AER, hwmon), a boot id and a
// /dev/kmsg file of raw records.
func fixtureRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(ttartest.ExtractFile(t, "source/diskstats/testdata/procfs_diskstats.ttar"), "fixtures")
	net := filepath.Join(ttartest.ExtractFile(t, "source/netdev/testdata/procfs_net.ttar"), "fixtures")
	if err := os.CopyFS(root, os.DirFS(net)); err != nil {
		t.Fatal(err)
	}
	// These trees hold symlinks (sysfs is full of them): extract them in
	// place rather than copy.
	for _, tree := range []string{
		"source/edac/testdata/node_exporter_edac.ttar",
		"source/aer/testdata/procfs_pci.ttar",
		"source/hwmon/testdata/node_exporter_hwmon.ttar",
	} {
		f, err := os.Open(tree)
		if err != nil {
			t.Fatal(err)
		}
		err = ttar.Extract(f, root)
		f.Close()
		if err != nil {
			t.Fatalf("extract %s: %v", tree, err)
		}
	}
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/sys/kernel/random/boot_id", "5d1c1a59-8f0e-4b4e-9a43-0c3b4e2d7a11\n")
	var kmsg []byte
	for i, l := range fixtureKmsg {
		kmsg = kernlog.AppendKmsg(kmsg, kernlog.Record{Level: 3, Facility: 0, Seq: uint64(i + 1), Monotonic: time.Duration(i+1) * time.Second, HasMonotonic: true, Message: l.msg})
	}
	write("dev/kmsg", string(kmsg))
	return root
}

func startCollector(t *testing.T) (string, hwhealv1.FleetServiceClient) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	state := t.TempDir()
	c, err := collector.New(ctx, collector.Config{Listen: "127.0.0.1:0", StateDir: state, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-c.Ready()
	// The fleet API wants the token the collector made in its state
	// directory.
	token, err := os.ReadFile(filepath.Join(state, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(token)))
			return invoker(ctx, method, req, reply, cc, opts...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return c.Addr().String(), hwhealv1.NewFleetServiceClient(conn)
}

func runAgent(t *testing.T, cfg Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

// TestAgentOnFixtureTree runs the whole agent against a fixture tree and a
// real collector: rules raise the faults of the kernel records, periodic
// sources' readings arrive, and a restart re-reports nothing.
func TestAgentOnFixtureTree(t *testing.T) {
	root := fixtureRoot(t)
	addr, fleet := startCollector(t)
	cfg := Config{
		Collector: addr, Node: "fixture-1", Labels: map[string]string{"rack": "r7"},
		StateDir: t.TempDir(), Root: root, Insecure: true,
		Intervals: map[string]time.Duration{"diskstats": 50 * time.Millisecond, "netdev": 50 * time.Millisecond,
			"edac": 50 * time.Millisecond, "aer": 50 * time.Millisecond, "hwmon": 50 * time.Millisecond},
		DiskExclude: "^$", Version: "test", Logger: slog.New(slog.DiscardHandler),
	}
	stop := runAgent(t, cfg)
	ctx := t.Context()

	wantFaults := 0
	for _, l := range fixtureKmsg {
		if l.class != "" {
			wantFaults++
		}
	}
	faultsByClass := func() (map[string]*hwhealv1.FaultRecord, error) {
		resp, err := fleet.ListFaults(ctx, &hwhealv1.ListFaultsRequest{Node: "fixture-1"})
		if err != nil {
			return nil, err
		}
		m := map[string]*hwhealv1.FaultRecord{}
		for _, f := range resp.GetFaults() {
			m[f.GetFaultClass()] = f
		}
		if len(m) != wantFaults || len(resp.GetFaults()) != wantFaults {
			return m, fmt.Errorf("%d faults (%v), want %d", len(resp.GetFaults()), m, wantFaults)
		}
		return m, nil
	}
	waitFor(t, "faults of the fixture's kernel records", func() error {
		m, err := faultsByClass()
		if err != nil {
			return err
		}
		for _, l := range fixtureKmsg {
			if l.class == "" {
				continue
			}
			f := m[l.class]
			if f == nil {
				return fmt.Errorf("no %s fault", l.class)
			}
			if l.part != "" && f.GetPart().GetName() != l.part && f.GetPart().GetPciAddress() != l.part {
				return fmt.Errorf("%s names part %v, want %s", l.class, f.GetPart(), l.part)
			}
			if f.GetEvidence().GetKernelLog().GetMessage() != l.msg {
				return fmt.Errorf("%s evidence %q", l.class, f.GetEvidence().GetKernelLog().GetMessage())
			}
			if f.GetCount() != 1 {
				return fmt.Errorf("%s count %d", l.class, f.GetCount())
			}
		}
		return nil
	})

	waitFor(t, "diskstats and netdev readings", func() error {
		resp, err := fleet.GetNode(ctx, &hwhealv1.GetNodeRequest{Name: "fixture-1"})
		if err != nil {
			return err
		}
		if resp.GetNode().GetHealth() != hwhealv1.NodeHealth_NODE_HEALTH_FAULTY {
			return fmt.Errorf("health %v", resp.GetNode().GetHealth())
		}
		if resp.GetNode().GetLabels()["rack"] != "r7" || resp.GetNode().GetBootId() != "5d1c1a59-8f0e-4b4e-9a43-0c3b4e2d7a11" {
			return fmt.Errorf("node %v", resp.GetNode())
		}
		seen := map[string]bool{}
		for _, o := range resp.GetLatestObservations() {
			seen[o.GetSource()+"/"+o.GetPart().GetName()] = true
		}
		// sda is in procfs's diskstats fixture, eth0 in its net/dev, the
		// DIMM and the controller in node_exporter's EDAC tree, the hwmon
		// chip in its hwmon tree, the PCI function in procfs's.
		for _, want := range []string{"diskstats/sda", "netdev/eth0", "edac/mc0", "hwmon/hwmon:coretemp/coretemp.0", "hwmon/thermal:cpu-thermal/thermal_zone0", "aer/0000:00:02.1"} {
			if !seen[want] {
				return fmt.Errorf("no %s reading in %v", want, seen)
			}
		}
		return nil
	})

	// Restart: the kmsg cursor and the spool's acked sequence survive, so
	// nothing is reported twice.
	stop()
	stop2 := runAgent(t, cfg)
	time.Sleep(300 * time.Millisecond) // long enough for a re-read to have shown
	m, err := faultsByClass()
	if err != nil {
		t.Fatal(err)
	}
	for class, f := range m {
		if f.GetCount() != 1 {
			t.Fatalf("after restart %s counted %d times", class, f.GetCount())
		}
	}
	stop2()
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "no state dir", cfg: Config{Insecure: true}, want: "state-dir"},
		{name: "plaintext not asked for", cfg: Config{StateDir: "x"}, want: "--insecure"},
		{name: "bad disk regexp", cfg: Config{StateDir: "x", Insecure: true, DiskExclude: "("}, want: "disk-exclude"},
		{name: "defaults", cfg: Config{StateDir: "x", Insecure: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tt.cfg.Collector != DefaultCollector || tt.cfg.Root != "/" || tt.cfg.Node == "" {
					t.Fatalf("defaults not filled: %+v", tt.cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// spooledFaults reads every fault in the agent's spool.
func spooledFaults(t *testing.T, a *Agent) []*hwhealv1.Fault {
	t.Helper()
	reps, err := a.spool.Read(1, 100000, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []*hwhealv1.Fault
	for _, r := range reps {
		if f := r.GetFault(); f != nil {
			out = append(out, f)
		}
	}
	return out
}

// TestAgentMergesAndSheds drives the agent's sink directly (no collector):
// a failed request seen by eBPF and by the kernel log is spooled once, with
// the kernel's line as evidence; a flood of one fault line is shed after
// the limiter's burst and counted.
func TestAgentMergesAndSheds(t *testing.T) {
	a, err := New(t.Context(), Config{Collector: "127.0.0.1:1", Node: "n", StateDir: t.TempDir(), Root: t.TempDir(),
		Insecure: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.spool.Close() })

	a.Raise(&hwhealv1.Fault{FaultClass: "disk.io_error", Severity: hwhealv1.Severity_SEVERITY_CRITICAL,
		Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "sdq"}, Rule: "ebpf-block-rq-error",
		Evidence: &hwhealv1.Evidence{Captures: map[string]string{"device": "sdq", "sector": "4196408", "op": "READ", "status": "I/O"}}})
	a.Log(kernlog.Record{Level: 3, Seq: 7, Monotonic: time.Second, HasMonotonic: true,
		Message: "I/O error, dev sdq, sector 4196408 op 0x0:(READ) flags 0x83700 phys_seg 9 prio class 2"})
	got := spooledFaults(t, a)
	if len(got) != 1 || got[0].GetRule() != "blk-io-error+ebpf-block-rq-error" || got[0].GetEvidence().GetKernelLog() == nil {
		t.Fatalf("spooled %v, want one merged fault with the kernel's line", got)
	}

	const flood = 5000
	for i := range flood {
		a.Log(kernlog.Record{Level: 3, Seq: uint64(100 + i), Message: "EDAC MC0: 1 UE Cannot decode normalized address on mc#0csrow#0channel#2 (csrow:0 channel:2 page:0x0 offset:0x0 grain:64)"})
	}
	ue := 0
	var lastSeq uint64
	for _, f := range spooledFaults(t, a) {
		if f.GetFaultClass() != "memory.ue" {
			continue
		}
		ue++
		// Repeats of one line reuse its match: each still carries its own
		// record's sequence number and boot id.
		kl := f.GetEvidence().GetKernelLog()
		if kl.GetSequence() <= lastSeq || kl.GetBootId() != a.bootID || f.GetTime() == nil {
			t.Fatalf("repeated line's fault: seq %d after %d, boot %q, time %v", kl.GetSequence(), lastSeq, kl.GetBootId(), f.GetTime())
		}
		lastSeq = kl.GetSequence()
	}
	shed := a.limiter.ShedTotal()
	if ue == 0 || ue > 100 || uint64(ue)+shed != flood {
		t.Fatalf("flood of %d: %d spooled, %d shed; want a bounded number spooled and the rest counted", flood, ue, shed)
	}
}
