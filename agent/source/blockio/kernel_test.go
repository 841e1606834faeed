//go:build linux

package blockio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/agent/source/sourcetest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/test/faultinject"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(unprivilegedHelper())
	}
	if os.Getenv(memoryEnv) != "" {
		os.Exit(memoryHelper())
	}
	goleak.VerifyTestMain(m)
}

// requireKernel skips a test that needs to load BPF and make faulty disks.
func requireKernel(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	if err := faultinject.Requirements(); err != nil {
		t.Skipf("faulty disk unavailable: %v", err)
	}
}

// running is a source running in the background.
type running struct {
	src  *Source
	sink *sourcetest.Sink
	logs *sourcetest.LogBuffer
}

// start runs a source until the test ends, and returns once its programs
// are attached.
func start(t testing.TB, attach string, interval time.Duration) *running {
	t.Helper()
	r := &running{sink: &sourcetest.Sink{}, logs: &sourcetest.LogBuffer{}}
	r.src = New(Config{Attach: attach, Interval: interval, Logger: sourcetest.NewLogger(r.logs)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.src.Run(ctx, r.sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for r.src.Attached() == "" {
		select {
		case err := <-done:
			t.Fatalf("Run returned %v before attaching:\n%s", err, r.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not attached after 10s:\n%s", r.logs)
		}
		time.Sleep(time.Millisecond)
	}
	if got := r.src.Attached(); attach != AttachAuto && got != attach {
		t.Fatalf("attached with %s, asked for %s", got, attach)
	}
	return r
}

// faultsOf returns the faults raised about device, waiting until there
// are want of them, and a little longer to catch any extra.
func (r *running) faultsOf(t *testing.T, device string, want int) []*hwhealv1.Fault {
	t.Helper()
	get := func() []*hwhealv1.Fault {
		var out []*hwhealv1.Fault
		for _, f := range r.sink.Faults() {
			if f.GetPart().GetName() == device {
				out = append(out, f)
			}
		}
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(get()) < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	return get()
}

// totals sums the observations of device: requests, errors, and the sum
// of the bucket counts.
func (r *running) totals(device string) (requests, errs, buckets float64, last map[string]float64) {
	for _, o := range r.sink.Observations() {
		if o.GetPart().GetName() != device {
			continue
		}
		if o.GetSource() != Name || o.GetPart().GetKind() != hwhealv1.PartKind_PART_KIND_DISK {
			continue
		}
		s := sourcetest.SampleMap(o)
		requests += s[SampleRequests]
		errs += s[SampleErrors]
		for k, v := range s {
			if strings.HasPrefix(k, SampleBucketPrefix) {
				buckets += v
			}
		}
		if s[SampleRequests] > 0 {
			last = s
		}
	}
	return requests, errs, buckets, last
}

// captures is a fault's identity without its time: what two paths must
// agree on.
func captures(f *hwhealv1.Fault) string {
	g := proto.Clone(f).(*hwhealv1.Fault)
	g.Time = nil
	c := g.GetEvidence().GetCaptures()
	return fmt.Sprintf("%s|%s|%s|%s|%v", g.GetFaultClass(), g.GetPart().GetName(), g.GetSummary(), g.GetRule(), slices.Sorted(maps.Keys(c))) +
		fmt.Sprint(c[CaptureDevice], c[CaptureSector], c[CaptureOp], c[CaptureStatus], c[CaptureNrSectors], c[CaptureDev])
}

// TestFailedRequests runs both attach strategies at once over one faulty
// loop device and drives it with O_DIRECT requests: every failed request
// is raised exactly once by each, with the device, sector (offset/512),
// op and status the kernel logs; both raise identical faults; and the
// good and bad requests all show up in each one's latency histogram.
func TestFailedRequests(t *testing.T) {
	requireKernel(t)
	const (
		ioSector     = 2048
		mediumSector = 3072
	)
	medium := faultinject.Sectors(mediumSector, 8)
	medium.Errno = syscall.ENODATA
	d := faultinject.NewDisk(t, faultinject.FileConfig{Size: 4 << 20, Bad: []faultinject.Range{faultinject.Sectors(ioSector, 8), medium}})
	paths := map[string]*running{
		AttachBTF:        start(t, AttachBTF, 50*time.Millisecond),
		AttachTracepoint: start(t, AttachTracepoint, 50*time.Millisecond),
	}

	before := time.Now()
	const good = 20
	for i := range good {
		if _, err := d.ReadAt(int64(i)*4096, 4096); err != nil {
			t.Fatal(err)
		}
	}
	type want struct {
		op, status, class string
		sector            int
	}
	var wants []want
	for range 3 {
		if _, err := d.ReadAt(ioSector*512, 4096); !errors.Is(err, syscall.EIO) {
			t.Fatalf("bad read = %v, want EIO", err)
		}
		wants = append(wants, want{OpRead, StatusIO, ClassIOError, ioSector})
	}
	if err := d.WriteAt(make([]byte, 4096), ioSector*512); !errors.Is(err, syscall.EIO) {
		t.Fatalf("bad write = %v, want EIO", err)
	}
	wants = append(wants, want{OpWrite, StatusIO, ClassIOError, ioSector})
	if _, err := d.ReadAt(mediumSector*512, 4096); !errors.Is(err, syscall.ENODATA) {
		t.Fatalf("medium read = %v, want ENODATA", err)
	}
	wants = append(wants, want{OpRead, StatusMedium, ClassMediumError, mediumSector})
	after := time.Now()
	requests := good + len(wants)

	name := d.Loop.Name
	got := map[string][]string{}
	for attach, r := range paths {
		t.Run(attach, func(t *testing.T) {
			faults := r.faultsOf(t, name, len(wants))
			if len(faults) != len(wants) {
				t.Fatalf("%d faults about %s, want %d (one per failed request):\n%v", len(faults), name, len(wants), faults)
			}
			for i, f := range faults {
				w := wants[i]
				c := f.GetEvidence().GetCaptures()
				wantCaps := map[string]string{
					CaptureDevice: name, CaptureSector: fmt.Sprint(w.sector), CaptureOp: w.op, CaptureStatus: w.status,
					CaptureNrSectors: "8", CaptureDev: fmt.Sprintf("%d:%d", d.Loop.Major, d.Loop.Minor),
				}
				if !maps.Equal(c, wantCaps) {
					t.Errorf("fault %d captures = %v, want %v", i, c, wantCaps)
				}
				if f.GetFaultClass() != w.class || f.GetSeverity() != hwhealv1.Severity_SEVERITY_CRITICAL || f.GetRule() != Rule ||
					f.GetPart().GetKind() != hwhealv1.PartKind_PART_KIND_DISK {
					t.Errorf("fault %d = %v", i, f)
				}
				if want := fmt.Sprintf("%s error on %s at sector %d (%s)", w.status, name, w.sector, w.op); f.GetSummary() != want {
					t.Errorf("summary %q, want %q", f.GetSummary(), want)
				}
				// The kernel's completion time, as wall clock.
				if ft := f.GetTime().AsTime(); ft.Before(before.Add(-10*time.Millisecond)) || ft.After(after.Add(10*time.Millisecond)) {
					t.Errorf("fault time %v outside the requests' [%v, %v]", ft, before, after)
				}
				got[attach] = append(got[attach], captures(f))
			}

			deadline := time.Now().Add(5 * time.Second)
			reqs, errs, buckets, last := r.totals(name)
			for (reqs < float64(requests) || errs < float64(len(wants))) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				reqs, errs, buckets, last = r.totals(name)
			}
			// Nothing else reads this device here; where udev runs, its
			// probe of a new device may add a few good requests.
			if reqs < float64(requests) || reqs > float64(requests+32) || errs != float64(len(wants)) || buckets != reqs {
				t.Errorf("histograms of %s: %v requests, %v errors, %v in buckets; want %d, %d, as many as requests",
					name, reqs, errs, buckets, requests, len(wants))
			}
			p50, p99, mean := last[SampleLatencyP50], last[SampleLatencyP99], last[SampleLatencyMean]
			if !(p50 > 0 && p50 <= p99 && mean > 0 && p99 < 1e6) {
				t.Errorf("latency p50 %v p99 %v mean %v µs: not sane", p50, p99, mean)
			}
			if r.src.Dropped() != 0 || r.src.Errors() != 0 {
				t.Errorf("dropped %d, errors %d", r.src.Dropped(), r.src.Errors())
			}
		})
	}
	if !slices.Equal(got[AttachBTF], got[AttachTracepoint]) {
		t.Errorf("the two paths disagree:\ntp_btf:     %q\ntracepoint: %q", got[AttachBTF], got[AttachTracepoint])
	}
}

// TestStatusesOnTheKernel fails requests with every errno the loop driver
// hands to the block layer as a status, and checks what each path names
// it against the name in the kernel's own log line: the table of block
// status codes is right for the running kernel.
func TestStatusesOnTheKernel(t *testing.T) {
	requireKernel(t)
	cases := []struct {
		errno  syscall.Errno
		status string
		raised bool
	}{
		{syscall.EIO, StatusIO, true},
		{syscall.ENODATA, StatusMedium, true},
		{syscall.ETIMEDOUT, StatusTimeout, true},
		{syscall.ENOLINK, StatusTransport, true},
		{syscall.EREMOTEIO, StatusTarget, true},
		{syscall.EILSEQ, StatusProtection, true},
		{syscall.ENODEV, StatusOffline, true},
		{syscall.EBADE, "", true}, // critical nexus or reservation conflict, by kernel
		{syscall.ENOSPC, StatusNoSpace, false},
		{syscall.ETIME, StatusDurationLimit, false},
		{syscall.EINVAL, StatusInvalid, false},
	}
	var bad []faultinject.Range
	for i, c := range cases {
		r := faultinject.Sectors(int64(1024+i*64), 8)
		r.Errno = c.errno
		bad = append(bad, r)
	}
	d := faultinject.NewDisk(t, faultinject.FileConfig{Size: 4 << 20, Bad: bad})
	paths := []*running{start(t, AttachBTF, time.Hour), start(t, AttachTracepoint, time.Hour)}
	k, err := faultinject.OpenKmsg()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()

	var raised int
	for i, c := range cases {
		if i == 8 {
			// Past the kernel's burst of 10 logged errors per 5 s.
			time.Sleep(5500 * time.Millisecond)
		}
		if _, err := d.ReadAt(bad[i].Off, 4096); !errors.Is(err, c.errno) {
			t.Fatalf("read with %v = %v", c.errno, err)
		}
		if c.raised {
			raised++
		}
	}
	logged := map[string]string{} // sector -> status in the kernel's line
	recs, err := k.Read()
	if err != nil {
		t.Fatal(err)
	}
	prefix := " error, dev " + d.Loop.Name + ", sector "
	for _, r := range recs {
		status, rest, ok := strings.Cut(r.Message, prefix)
		if ok {
			sector, _, _ := strings.Cut(rest, " ")
			logged[sector] = status
		}
	}
	t.Logf("the kernel logged %d of %d failed requests", len(logged), len(cases))
	if len(logged) == 0 {
		// Another test on the host may have used up the kernel's shared
		// rate limit just before: the eBPF side is still checked below.
		t.Log("the kernel logged none of the failed requests (rate-limited): statuses not compared with its lines")
	}

	byPath := make([]map[string]string, len(paths))
	for i, r := range paths {
		byPath[i] = map[string]string{}
		for _, f := range r.faultsOf(t, d.Loop.Name, raised) {
			c := f.GetEvidence().GetCaptures()
			byPath[i][c[CaptureSector]] = c[CaptureStatus]
		}
	}
	for i, c := range cases {
		sector := fmt.Sprint(bad[i].Off / 512)
		t.Run(c.errno.Error(), func(t *testing.T) {
			for p, r := range paths {
				st, ok := byPath[p][sector]
				if ok != c.raised {
					t.Fatalf("%s: raised %v (%q), want %v", r.src.Attached(), ok, st, c.raised)
				}
				if ok && c.status != "" && st != c.status {
					t.Errorf("%s: status %q, want %q", r.src.Attached(), st, c.status)
				}
				if kern, seen := logged[sector]; seen && ok && st != kern {
					t.Errorf("%s: status %q, the kernel logged %q", r.src.Attached(), st, kern)
				}
			}
			if byPath[0][sector] != byPath[1][sector] {
				t.Errorf("paths disagree: %q vs %q", byPath[0][sector], byPath[1][sector])
			}
		})
	}
	// Every failed request is counted, raised or not.
	for _, r := range paths {
		obs, err := r.src.observeNow()
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range obs {
			if o.GetPart().GetName() == d.Loop.Name {
				if s := sourcetest.SampleMap(o); s[SampleErrors] != float64(len(cases)) {
					t.Errorf("%s: %v errors, want %d", r.src.Attached(), s[SampleErrors], len(cases))
				}
			}
		}
	}
}

// observeNow reads the running programs' histograms out of turn.
func (s *Source) observeNow() ([]*hwhealv1.Observation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return nil, errors.New("not running")
	}
	return s.observe(s.running, time.Now(), time.Second)
}

// TestKernelReqOps: the fallback table of operation numbers is the
// running kernel's.
func TestKernelReqOps(t *testing.T) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	got := kernelReqOps(spec)
	if !maps.Equal(got, defaultReqOps) {
		t.Logf("this kernel's REQ_OP_* numbers differ from the 6.x fallback: %v", got)
	}
	for num, name := range map[uint32]string{0: OpRead, 1: OpWrite, 2: OpFlush, 3: OpDiscard} {
		if got[num] != name {
			t.Errorf("REQ_OP %d = %q, want %q", num, got[num], name)
		}
	}
	if !hasTracepoint(spec, "block_rq_complete") || hasTracepoint(spec, "block_rq_no_such") {
		t.Error("hasTracepoint is wrong")
	}
}

// TestProbe takes one reading while a disk fails requests, and leaves
// nothing attached behind.
func TestProbe(t *testing.T) {
	requireKernel(t)
	d := faultinject.NewDisk(t, faultinject.FileConfig{Size: 4 << 20, Bad: []faultinject.Range{faultinject.Sectors(2048, 8)}})
	fds := openFDs(t)
	stop := make(chan struct{})
	driven := make(chan error, 1)
	go func() {
		defer close(driven)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := d.ReadAt(0, 4096); err != nil {
				driven <- err
				return
			}
			d.ReadAt(2048*512, 4096)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var p source.Probe
	for _, attach := range []string{AttachAuto, AttachTracepoint} {
		p = New(Config{Attach: attach, ProbeWindow: 300 * time.Millisecond}).Probe(context.Background())
		if p.Unavailable != "" || len(p.Errors) != 0 || p.Source != Name {
			t.Fatalf("%q: probe = %+v", attach, p)
		}
		var obs *hwhealv1.Observation
		for _, o := range p.Observations {
			if o.GetPart().GetName() == d.Loop.Name {
				obs = o
			}
		}
		s := sourcetest.SampleMap(obs)
		if s[SampleRequests] < 2 || s[SampleErrors] < 1 || s[SampleInterval] < 0.3 {
			t.Errorf("%q: observation of %s = %v", attach, d.Loop.Name, s)
		}
		var faults int
		for _, f := range p.Faults {
			if f.GetPart().GetName() == d.Loop.Name && f.GetEvidence().GetCaptures()[CaptureSector] == "2048" {
				faults++
			}
		}
		if faults < 1 || float64(faults) > s[SampleErrors]+1 {
			t.Errorf("%q: %d faults with %v failed requests", attach, faults, s[SampleErrors])
		}
	}
	close(stop)
	if err := <-driven; err != nil {
		t.Fatal(err)
	}
	if after := openFDs(t); after != fds {
		t.Errorf("%d open descriptors after Probe, %d before: programs left attached", after, fds)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	e, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}

const helperEnv = "HWHEAL_BLOCKIO_UNPRIVILEGED"

// TestUnavailable: without the privilege to load BPF, Run says why in one
// line and returns nil, and Probe reports the same reason. As root the
// check runs in a child process that has dropped to nobody.
func TestUnavailable(t *testing.T) {
	if os.Geteuid() != 0 {
		reason, msg := checkUnavailable()
		if msg != "" {
			t.Fatal(msg)
		}
		t.Log(reason)
		return
	}
	// The test binary may sit in a directory nobody cannot enter.
	dir, err := os.MkdirTemp("", "blockio-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "blockio.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unprivileged child: %v\n%s", err, out)
	}
	t.Logf("child: %s", out)
}

// unprivilegedHelper is the child's whole run.
func unprivilegedHelper() int {
	reason, msg := checkUnavailable()
	if msg != "" {
		fmt.Println(msg)
		return 1
	}
	fmt.Println(reason)
	return 0
}

// checkUnavailable runs the source where it cannot load, and returns the
// reason it gave and what is wrong, or "".
func checkUnavailable() (reason, msg string) {
	var logs sourcetest.LogBuffer
	s := New(Config{Logger: sourcetest.NewLogger(&logs)})
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), &sourcetest.Sink{}) }()
	select {
	case err := <-done:
		if err != nil {
			return "", fmt.Sprintf("Run = %v, want nil where BPF is unavailable", err)
		}
	case <-time.After(10 * time.Second):
		return "", "Run kept running without BPF"
	}
	var lines []string
	for l := range strings.Lines(logs.String()) {
		if !strings.Contains(l, "level=DEBUG") {
			lines = append(lines, l)
		}
	}
	out := strings.Join(lines, "")
	if len(lines) != 1 || !strings.Contains(out, "eBPF block I/O tracing unavailable") ||
		!strings.Contains(out, "level=WARN") || !strings.Contains(out, "operation not permitted") {
		return "", fmt.Sprintf("want one WARN line saying why, got:\n%s", out)
	}
	p := s.Probe(context.Background())
	if !strings.Contains(p.Unavailable, "operation not permitted") || len(p.Observations) != 0 {
		return "", fmt.Sprintf("Probe = %+v", p)
	}
	return strings.TrimSpace(out), ""
}

// TestGoneDiskForgotten: a disk whose /sys/dev/block entry went away is
// observed while it has requests and forgotten once it is quiet; its
// counters start over if the number comes back.
func TestGoneDiskForgotten(t *testing.T) {
	requireKernel(t)
	d := faultinject.NewDisk(t, faultinject.FileConfig{Size: 1 << 20})
	root := t.TempDir()
	mm := fmt.Sprintf("%d:%d", d.Loop.Major, d.Loop.Minor)
	link := filepath.Join(root, "sys", "dev", "block", mm)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../devices/virtual/block/"+d.Loop.Name, link); err != nil {
		t.Fatal(err)
	}
	r := &running{sink: &sourcetest.Sink{}, logs: &sourcetest.LogBuffer{}}
	r.src = New(Config{Root: root, Attach: AttachTracepoint, Interval: time.Hour, Logger: sourcetest.NewLogger(r.logs)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.src.Run(ctx, r.sink) }()
	defer func() { cancel(); <-done }()
	for r.src.Attached() == "" {
		time.Sleep(time.Millisecond)
	}
	read := func(n int) {
		for i := range n {
			if _, err := d.ReadAt(int64(i)*4096, 4096); err != nil {
				t.Fatal(err)
			}
		}
	}
	observed := func() map[string]map[string]float64 {
		obs, err := r.src.observeNow()
		if err != nil {
			t.Fatal(err)
		}
		return sourcetest.SamplesByName(obs)
	}
	read(3)
	if got := observed()[d.Loop.Name][SampleRequests]; got != 3 {
		t.Fatalf("%s: %v requests, want 3", d.Loop.Name, got)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	read(2)
	if got := observed()[mm][SampleRequests]; got != 2 {
		t.Fatalf("gone but busy %s: %v requests, want 2", mm, got)
	}
	if _, ok := observed()[mm]; ok {
		t.Fatalf("gone and quiet %s still observed", mm)
	}
	read(4)
	if got := observed()[mm][SampleRequests]; got != 4 {
		t.Errorf("%s back: %v requests, want 4 counted from zero", mm, got)
	}
}

// TestDropsCounted fails more requests than the ring buffer holds while
// nothing reads it: every failed request is either handed over or counted
// as dropped, and Dropped reports the count, also after the programs are
// closed.
func TestDropsCounted(t *testing.T) {
	requireKernel(t)
	d := faultinject.NewDisk(t, faultinject.FileConfig{Size: 1 << 20, Bad: []faultinject.Range{faultinject.Sectors(64, 8)}})
	tr, err := openTracer(AttachBTF, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{})
	s.running = tr
	df, err := faultinject.OpenDirect(d.Loop.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer df.Close()
	capacity := tr.rd.BufferSize() / (recordSize + 8) // 8: the ring's record header
	failed := capacity + 500
	for range failed {
		if _, err := df.ReadAt(64*512, 4096); !errors.Is(err, syscall.EIO) {
			t.Fatalf("bad read = %v", err)
		}
	}
	var handed int
	if err := tr.drain(func(r record) {
		if r.Dev == uint32(d.Loop.Major)<<20|uint32(d.Loop.Minor) {
			handed++
		}
	}, func(err error) { t.Error(err) }); err != nil {
		t.Fatal(err)
	}
	dropped := s.Dropped()
	t.Logf("%d failed requests: %d handed over, %d dropped (ring of %d bytes)", failed, handed, dropped, tr.rd.BufferSize())
	if dropped == 0 || handed+int(dropped) < failed {
		t.Errorf("%d failed, %d handed over + %d dropped", failed, handed, dropped)
	}
	s.stop(tr)
	if got := s.Dropped(); got != dropped {
		t.Errorf("Dropped after close = %d, want %d", got, dropped)
	}
}
