// Command flood measures the hwheal agent under a kernel-log flood: it
// starts a collector and an agent from --bin, writes records into the real
// /dev/kmsg at a paced rate (10,000/s for 60 s by default), writes one real
// fault at its real level (<3>) half-way through, and reports the agent's
// CPU (% of a core over the flood), its peak RSS, the counters on its
// /metrics (what it read, dropped, skipped or shed) and how long after its
// write the mid-flood fault was announced by the collector's WatchEvents
// stream (FAULT_OPENED). --faults real faults (5 by default, each on its
// own device) are spread evenly over the flood, the middle one exactly
// half-way: the headline latency is the middle one's, the others give the
// spread.
//
// Three runs, each with a fresh agent and collector: idle (no flood, the
// real faults alone: the baseline of the same run), benign (noise no rule
// matches) and fault (the same device's I/O error, sector after sector: an
// agent should shed these, not spool them all). The flood is written at
// --level 6 (info), which this kernel's console does not print: a level
// the console prints costs a serial write of ~2 ms per record inside
// write(2). Root only; printk_devkmsg is set to "on" for the run and put
// back after it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/test/bench"
)

// Reference figures the issue sets: node-problem-detector on this kind of
// machine under the same flood.
const (
	refCPUPercent = 3.9
	refPeakRSSMB  = 45
	refLatencyMS  = 3
)

type config struct {
	bin          string
	duration     time.Duration
	rate         float64
	level        int
	mixes        []string
	faults       int
	faultTimeout time.Duration
	drainTimeout time.Duration
	sample       time.Duration
	agentArgs    []string
	keep         bool
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	var mixes, agentArgs string
	flag.StringVar(&cfg.bin, "bin", "bin", "directory of hwheal-agent and hwheal-collector (make build)")
	flag.DurationVar(&cfg.duration, "duration", 60*time.Second, "length of each flood")
	flag.Float64Var(&cfg.rate, "rate", 10000, "records per second")
	flag.IntVar(&cfg.level, "level", 6, "syslog level of the flood records (the mid-flood fault is always <3>)")
	flag.StringVar(&mixes, "mix", "idle,benign,fault", "runs, in order: idle (the real faults alone: the baseline), benign, fault")
	flag.IntVar(&cfg.faults, "faults", 5, "real faults written at even intervals into the flood (odd: one is half-way)")
	flag.DurationVar(&cfg.faultTimeout, "fault-timeout", 2*time.Minute, "how long after its write to wait for the mid-flood fault")
	flag.DurationVar(&cfg.drainTimeout, "drain-timeout", time.Minute, "how long after the flood to wait for the agent to finish its backlog")
	flag.DurationVar(&cfg.sample, "sample", 250*time.Millisecond, "how often to sample the processes' /proc")
	flag.StringVar(&agentArgs, "agent-args", "", "extra agent flags, space-separated")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the state directories and logs")
	flag.Parse()
	cfg.mixes = strings.Split(mixes, ",")
	for _, m := range cfg.mixes {
		if m != "idle" && m != "benign" && m != "fault" {
			return fmt.Errorf("mix %q: want idle, benign or fault", m)
		}
	}
	cfg.agentArgs = strings.Fields(agentArgs)
	if cfg.faults < 1 {
		return fmt.Errorf("faults %d: want at least 1", cfg.faults)
	}
	if cfg.level < 0 || cfg.level > 7 {
		return fmt.Errorf("level %d: want 0..7", cfg.level)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: it writes /dev/kmsg and sets /proc/sys/kernel/printk_devkmsg")
	}
	for _, b := range []string{"hwheal-agent", "hwheal-collector"} {
		if _, err := os.Stat(filepath.Join(cfg.bin, b)); err != nil {
			return fmt.Errorf("%w (run make build)", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	restore, err := enableDevkmsg()
	if err != nil {
		return err
	}
	defer restore()

	var results []*mixResult
	for _, mix := range cfg.mixes {
		r, err := runMix(ctx, cfg, mix)
		if err != nil {
			return fmt.Errorf("mix %s: %w", mix, err)
		}
		r.print()
		results = append(results, r)
	}
	printSummary(results)
	return nil
}

// enableDevkmsg lifts the kernel's rate limit on writes to /dev/kmsg and
// returns what puts the old setting back.
func enableDevkmsg() (func(), error) {
	const path = "/proc/sys/kernel/printk_devkmsg"
	old, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte("on\n"), 0o644); err != nil {
		return nil, fmt.Errorf("set %s: %w", path, err)
	}
	return func() {
		if err := os.WriteFile(path, old, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "flood: restore %s to %q: %v\n", path, old, err)
		}
	}, nil
}

type mixResult struct {
	mix, node, floodDev string
	level               int
	targetRate          float64
	flood               bench.FloodResult
	// The real faults written into the flood: their devices, and how
	// long after its write each one's FAULT_OPENED came, or why not.
	markDevs  []string
	latencies []time.Duration
	markErrs  []error
	mid       int // the index of the half-way fault
	// during is over the flood; drained over the flood and the agent's
	// backlog after it.
	during, drained bench.Result
	drainTime       time.Duration
	drainedOK       bool
	before, after   bench.Metrics
	faultEvents     int
	collectorCount  int64 // the flood device's fault count at the collector
}

func runMix(ctx context.Context, cfg config, mix string) (_ *mixResult, err error) {
	tmp, err := os.MkdirTemp("", "hwheal-flood-"+mix+"-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil || cfg.keep {
			fmt.Fprintf(os.Stderr, "flood: state and logs of mix %s kept in %s\n", mix, tmp)
			return
		}
		os.RemoveAll(tmp)
	}()
	id := randomHex(4)
	rate := cfg.rate
	if mix == "idle" {
		rate = 0
	}
	r := &mixResult{mix: mix, node: "flood-" + mix + "-" + id, level: cfg.level, targetRate: rate,
		floodDev: "sd" + randomLetters(8), mid: cfg.faults / 2}
	var marks []bench.Mark
	for k := range cfg.faults {
		dev := "sd" + randomLetters(8)
		r.markDevs = append(r.markDevs, dev)
		marks = append(marks, bench.Mark{
			At:     cfg.duration * time.Duration(k+1) / time.Duration(cfg.faults+1),
			Record: bench.IOErrorRecord(nil, 3, dev, 12345),
		})
	}

	colAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	col, err := bench.Launch("hwheal-collector", filepath.Join(cfg.bin, "hwheal-collector"),
		[]string{"--insecure", "--listen", colAddr, "--state-dir", filepath.Join(tmp, "collector")},
		filepath.Join(tmp, "collector.log"))
	if err != nil {
		return nil, err
	}
	defer stopProc(col, &err)
	agent, err := bench.Launch("hwheal-agent", filepath.Join(cfg.bin, "hwheal-agent"),
		append([]string{"--insecure", "--collector", colAddr, "--node", r.node, "--state-dir", filepath.Join(tmp, "agent"),
			"--metrics-listen", metricsAddr}, cfg.agentArgs...),
		filepath.Join(tmp, "agent.log"))
	if err != nil {
		return nil, err
	}
	defer stopProc(agent, &err)

	conn, err := grpc.NewClient(colAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial collector: %w", err)
	}
	defer conn.Close()
	fleet := hwhealv1.NewFleetServiceClient(conn)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	if err := waitConnected(ctx, fleet, r.node, agent, col); err != nil {
		return nil, err
	}
	w, err := watchFaults(wctx, fleet, r.node)
	if err != nil {
		return nil, err
	}
	metricsURL := "http://" + metricsAddr + "/metrics"
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	err = bench.WaitReady(rctx, metricsURL)
	rcancel()
	if err != nil {
		return nil, err
	}

	kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/kmsg: %w", err)
	}
	defer kmsg.Close()
	// A fresh agent first delivers the whole ring (earlier floods'
	// records included); its fault for a sentinel written now says it has
	// caught up and the watch is live.
	sentinel := "sd" + randomLetters(8)
	t0 := time.Now()
	if _, err := kmsg.Write(bench.IOErrorRecord(nil, 3, sentinel, 1)); err != nil {
		return nil, fmt.Errorf("write /dev/kmsg: %w", err)
	}
	if _, err := w.wait(ctx, sentinel, t0.Add(2*time.Minute)); err != nil {
		return nil, fmt.Errorf("sentinel fault: %w", err)
	}
	time.Sleep(time.Second)

	mc := bench.ProcFS{}
	m, err := bench.NewMeter(mc, []bench.Side{{Name: "agent", PIDs: []int{agent.PID()}}, {Name: "collector", PIDs: []int{col.PID()}}})
	if err != nil {
		return nil, err
	}
	if r.before, _, err = bench.Fetch(ctx, nil, metricsURL); err != nil {
		return nil, err
	}
	eventsBefore := w.count()

	stopSampling := sample(m, cfg.sample)
	var buf []byte
	record := func(i int64) []byte {
		if mix == "fault" {
			// One failing disk, sector after sector.
			buf = bench.IOErrorRecord(buf[:0], cfg.level, r.floodDev, 1000+8*i)
		} else {
			buf = bench.BenignRecord(buf[:0], cfg.level, i)
		}
		return buf
	}
	fmt.Printf("== mix %s: %.0f records/s for %s at <%d>, %d real faults at <3> (one half-way, on %s); node %s\n",
		mix, rate, cfg.duration, cfg.level, cfg.faults, r.markDevs[r.mid], r.node)
	r.flood = bench.Flood(ctx, kmsg, bench.FloodConfig{
		Rate: rate, Duration: cfg.duration, Record: record, Marks: marks,
	})
	stopSampling()
	m.Sample()
	r.during = m.Result()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	stopSampling = sample(m, cfg.sample)
	for k, mk := range r.flood.Marks {
		var lat time.Duration
		var err error
		switch {
		case mk.Err != nil:
			err = fmt.Errorf("write: %w", mk.Err)
		case mk.At.IsZero():
			err = errors.New("not written: the flood ended first")
		default:
			var at time.Time
			if at, err = w.wait(ctx, r.markDevs[k], mk.At.Add(cfg.faultTimeout)); err == nil {
				lat = at.Sub(mk.At)
			}
		}
		r.latencies = append(r.latencies, lat)
		r.markErrs = append(r.markErrs, err)
	}
	stopSampling()

	// The backlog: the agent is done when its kmsg counters stop moving
	// and its spool is empty.
	stopSampling = sample(m, cfg.sample)
	floodEnd := r.flood.Start.Add(r.flood.Elapsed)
	r.drainedOK, r.after = waitDrained(ctx, metricsURL, time.Now().Add(cfg.drainTimeout))
	r.drainTime = time.Since(floodEnd)
	stopSampling()
	m.Sample()
	r.drained = m.Result()
	if r.after == nil {
		if r.after, _, err = bench.Fetch(ctx, nil, metricsURL); err != nil {
			return nil, err
		}
	}
	r.faultEvents = w.count() - eventsBefore
	if mix == "fault" {
		r.collectorCount = collectorCount(ctx, fleet, r.node, r.floodDev)
	}
	return r, nil
}

// stopProc stops p and turns a failure into the run's error when it had
// none.
func stopProc(p *bench.Process, err *error) {
	if exited, werr := p.Exited(); exited && *err == nil {
		*err = fmt.Errorf("%s exited during the run: %v (log %s)", p.Name, werr, p.Log)
	}
	if serr := p.Stop(20 * time.Second); serr != nil && *err == nil {
		*err = serr
	}
}

// sample samples m every d until the returned function is called.
func sample(m *bench.Meter, d time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				m.Sample()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func waitConnected(ctx context.Context, fleet hwhealv1.FleetServiceClient, node string, procs ...*bench.Process) error {
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		for _, p := range procs {
			if exited, err := p.Exited(); exited {
				return fmt.Errorf("%s exited at start: %v (log %s)", p.Name, err, p.Log)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := fleet.GetNode(cctx, &hwhealv1.GetNodeRequest{Name: node})
		cancel()
		switch {
		case err != nil:
			last = err
		case resp.GetNode().GetConnected():
			return nil
		default:
			last = errors.New("not connected")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("node %s did not connect within 60s: %v", node, last)
}

// waitDrained polls the agent's counters until its kmsg counters held
// still for a second and its spool holds nothing unacknowledged.
func waitDrained(ctx context.Context, url string, deadline time.Time) (bool, bench.Metrics) {
	var last bench.Metrics
	lastKey, stable := "", 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m, _, err := bench.Fetch(ctx, nil, url)
		if err == nil {
			last = m
			key := kmsgKey(m)
			if key == lastKey && m["hwheal_agent_spool_pending_reports"] == 0 {
				stable++
			} else {
				stable = 0
			}
			lastKey = key
			if stable >= 2 {
				return true, m
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return false, last
}

func kmsgKey(m bench.Metrics) string {
	var parts []string
	for k, v := range m {
		if strings.HasPrefix(k, "hwheal_agent_kmsg_") || strings.Contains(k, "shed") {
			parts = append(parts, fmt.Sprintf("%s=%g", k, v))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// collectorCount is the occurrence count of the node's open disk.io_error
// fault on dev, as the collector keeps it: how many of the flood's faults
// reached it.
func collectorCount(ctx context.Context, fleet hwhealv1.FleetServiceClient, node, dev string) int64 {
	token := ""
	for range 1000 {
		resp, err := fleet.ListFaults(ctx, &hwhealv1.ListFaultsRequest{Node: node, FaultClass: "disk.io_error", PageSize: 100, PageToken: token})
		if err != nil {
			return -1
		}
		for _, f := range resp.GetFaults() {
			if f.GetPart().GetName() == dev {
				return int64(f.GetCount())
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			return 0
		}
	}
	return -1
}

// faultWatch records when each part's first FAULT_OPENED event of one
// node arrived.
type faultWatch struct {
	mu     sync.Mutex
	first  map[string]time.Time
	n      int
	notify chan struct{} // closed and replaced on every event
	err    error
}

func watchFaults(ctx context.Context, fleet hwhealv1.FleetServiceClient, node string) (*faultWatch, error) {
	s, err := fleet.WatchEvents(ctx, &hwhealv1.WatchEventsRequest{
		Types: []hwhealv1.EventType{hwhealv1.EventType_EVENT_TYPE_FAULT_OPENED},
		Node:  node,
	})
	if err != nil {
		return nil, fmt.Errorf("watch events: %w", err)
	}
	w := &faultWatch{first: map[string]time.Time{}, notify: make(chan struct{})}
	go func() {
		for {
			m, err := s.Recv()
			at := time.Now()
			w.mu.Lock()
			if err != nil {
				w.err = err
			} else {
				w.n++
				part := m.GetEvent().GetFault().GetPart().GetName()
				if _, ok := w.first[part]; !ok {
					w.first[part] = at
				}
			}
			close(w.notify)
			w.notify = make(chan struct{})
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return w, nil
}

func (w *faultWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// wait returns when part's FAULT_OPENED event arrived.
func (w *faultWatch) wait(ctx context.Context, part string, deadline time.Time) (time.Time, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		w.mu.Lock()
		at, ok := w.first[part]
		err, notify := w.err, w.notify
		w.mu.Unlock()
		switch {
		case ok:
			return at, nil
		case err != nil:
			return time.Time{}, fmt.Errorf("watch ended: %w", err)
		}
		select {
		case <-notify:
		case <-timer.C:
			return time.Time{}, fmt.Errorf("no FAULT_OPENED for %s by %s", part, deadline.Format(time.TimeOnly))
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func (r *mixResult) print() {
	f := r.flood
	fmt.Printf("flood: %d records in %s = %.0f records/s achieved (target %.0f), %d write errors, slowest write %s\n",
		f.Written, f.Elapsed.Round(time.Millisecond), f.Rate(), r.targetRate, f.Errors, f.MaxWrite.Round(time.Microsecond))
	if f.FirstErr != nil {
		fmt.Printf("  first write error: %v\n", f.FirstErr)
	}
	for k, mk := range f.Marks {
		what := "real fault"
		if k == r.mid {
			what = "MID-FLOOD FAULT"
		}
		at := "-"
		if !mk.At.IsZero() {
			at = mk.At.Sub(f.Start).Round(time.Millisecond).String()
		}
		if err := r.markErrs[k]; err != nil {
			fmt.Printf("%s on %s (<3>, written at %s): NOT RAISED: %v\n", what, r.markDevs[k], at, err)
			continue
		}
		fmt.Printf("%s on %s (<3>, written at %s): FAULT_OPENED %.1f ms after the write began (%.1f ms after write(2) returned: the console took the rest)\n",
			what, r.markDevs[k], at, ms(r.latencies[k]), ms(r.latencies[k]-mk.Write))
	}
	ag, _ := r.during.Side("agent")
	agD, _ := r.drained.Side("agent")
	co, _ := r.during.Side("collector")
	coD, _ := r.drained.Side("collector")
	drained := "drained"
	if !r.drainedOK {
		drained = "NOT drained"
	}
	fmt.Printf("agent: %.2f CPU s over the flood = %.2f %% of a core; %.2f CPU s until %s %s after it (%.2f %% over flood+drain); peak RSS %.1f MB (VmHWM), max sampled during the run %.1f MB\n",
		ag.CPUSeconds, r.during.CorePercent(ag.CPUSeconds), agD.CPUSeconds, drained, r.drainTime.Round(100*time.Millisecond),
		r.drained.CorePercent(agD.CPUSeconds), bench.MB(agD.PeakRSS), bench.MB(agD.MaxRSSSum))
	fmt.Printf("collector (not the agent's cost): %.2f CPU s over the flood = %.2f %% of a core, %.2f CPU s with the drain; peak RSS %.1f MB\n",
		co.CPUSeconds, r.during.CorePercent(co.CPUSeconds), coD.CPUSeconds, bench.MB(coD.PeakRSS))
	fmt.Printf("FAULT_OPENED events for the node during the run: %d", r.faultEvents)
	if r.mix == "fault" {
		fmt.Printf("; the collector's count on the flood device %s: %d", r.floodDev, r.collectorCount)
	}
	fmt.Println()
	printCounters(r.before, r.after)
	fmt.Println()
}

// printCounters prints the agent's own series that moved, and every
// series that counts shed, dropped or skipped work whether it moved or not.
func printCounters(before, after bench.Metrics) {
	d := bench.Delta(before, after)
	var keys []string
	for k, v := range d {
		if !strings.HasPrefix(k, "hwheal_agent_") {
			continue
		}
		name := bench.Name(k)
		if v != 0 || strings.Contains(name, "shed") || strings.Contains(name, "drop") ||
			strings.Contains(name, "skip") || strings.Contains(name, "overrun") || strings.Contains(name, "spool_pending") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "agent /metrics series\tbefore\tafter\tdelta\t\n")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t\n", k, before[k], after[k], d[k])
	}
	tw.Flush()
	var shed []string
	for k := range after {
		if strings.Contains(bench.Name(k), "shed") {
			shed = append(shed, k)
		}
	}
	if len(shed) == 0 {
		fmt.Println("(the agent exports no shed counter)")
	}
}

func printSummary(rs []*mixResult) {
	fmt.Println("== summary (the agent process; the collector is not counted)")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\trecords/s achieved\tCPU %% of a core (flood)\tCPU %% (flood+drain)\tpeak RSS MB\tmid-fault latency ms (from write(2) return)\tall faults' latency ms (max)\tkmsg dropped\tshed\tfaults raised\t\n")
	fmt.Fprintf(tw, "node-problem-detector (reference)\t10000\t%.1f\t\t%d\t%d\t\t\t\t\t\n", refCPUPercent, refPeakRSSMB, refLatencyMS)
	for _, r := range rs {
		ag, _ := r.during.Side("agent")
		agD, _ := r.drained.Side("agent")
		d := bench.Delta(r.before, r.after)
		lat := "not raised"
		if r.markErrs[r.mid] == nil {
			lat = fmt.Sprintf("%.1f (%.1f)", ms(r.latencies[r.mid]), ms(r.latencies[r.mid]-r.flood.Marks[r.mid].Write))
		}
		all, raised := "", 0
		var worst time.Duration
		for k, l := range r.latencies {
			if r.markErrs[k] == nil {
				raised++
				worst = max(worst, l)
			}
		}
		all = fmt.Sprintf("%d/%d raised", raised, len(r.latencies))
		if raised > 0 {
			all += fmt.Sprintf(" (%.1f)", ms(worst))
		}
		shed := "no counter"
		var n float64
		var have bool
		for k, v := range d {
			if strings.Contains(bench.Name(k), "shed") {
				n += v
				have = true
			}
		}
		if have {
			shed = fmt.Sprintf("%.0f", n)
		}
		label := "hwheal-agent, " + r.mix + " flood"
		if r.mix == "idle" {
			label = "hwheal-agent, no flood (baseline)"
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.2f\t%.1f\t%s\t%s\t%.0f\t%s\t%.0f\t\n", label, r.flood.Rate(),
			r.during.CorePercent(ag.CPUSeconds), r.drained.CorePercent(agD.CPUSeconds), bench.MB(agD.PeakRSS), lat, all,
			d["hwheal_agent_kmsg_dropped_total"], shed, d["hwheal_agent_faults_total"])
	}
	tw.Flush()
	for _, r := range rs {
		if r.mix == "idle" {
			continue
		}
		ag, _ := r.drained.Side("agent")
		during, _ := r.during.Side("agent")
		fmt.Printf("%s: agent/NPD CPU %.2f, peak RSS %.2f", r.mix, r.during.CorePercent(during.CPUSeconds)/refCPUPercent, bench.MB(ag.PeakRSS)/refPeakRSSMB)
		if r.markErrs[r.mid] == nil {
			fmt.Printf(", mid-flood fault latency %.2f", ms(r.latencies[r.mid])/refLatencyMS)
		}
		fmt.Println()
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// randomLetters returns n lowercase letters: a device name (sdX...) the
// rules accept and no earlier run used.
func randomLetters(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return string(b)
}
