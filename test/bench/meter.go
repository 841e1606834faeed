package bench

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Side is one side of a comparison: the processes started for it. Their
// descendants count with them, the ones alive at a sample and, through
// cutime and cstime, the ones they reaped.
type Side struct {
	Name string
	PIDs []int
}

// Meter follows the CPU time and resident memory of a few sides of
// processes over a window of samples.
type Meter struct {
	fs        ProcFS
	hz        float64
	sides     []*sideMeter
	first     time.Time
	last      time.Time
	samples   int
	sampleErr error // the last failure to list processes
}

type sideMeter struct {
	name  string
	roots map[int]bool
	procs map[int]*procMeter
	order []int // pids in the order first seen
	// startCPU is the side's CPU ticks at the first sample, nowCPU at the
	// last one.
	startCPU, nowCPU uint64
	maxRSSSum        uint64
}

type procMeter struct {
	pid       int
	ppid      int
	startTime uint64
	comm      string
	root      bool
	alive     bool
	// frozen: gone without a live parent on the side to reap it into its
	// cutime (a root, or a child that died with its parent, or was
	// orphaned): its last reading stays counted.
	frozen bool
	// firstCPU is the process's CPU ticks when the window began: its
	// value at the first sample, 0 for a process born during the window.
	firstCPU, lastCPU uint64
	hwm, maxRSS       uint64
}

// NewMeter takes the first sample; every root must be running.
func NewMeter(fs ProcFS, sides []Side) (*Meter, error) {
	m := &Meter{fs: fs, hz: float64(ClockTicks(fs))}
	for _, s := range sides {
		if s.Name == "" || len(s.PIDs) == 0 {
			return nil, fmt.Errorf("side %q: needs a name and at least one pid", s.Name)
		}
		sm := &sideMeter{name: s.Name, roots: map[int]bool{}, procs: map[int]*procMeter{}}
		for _, pid := range s.PIDs {
			sm.roots[pid] = true
		}
		m.sides = append(m.sides, sm)
	}
	all, err := fs.All()
	if err != nil {
		return nil, err
	}
	for _, sm := range m.sides {
		for pid := range sm.roots {
			if _, ok := all[pid]; !ok {
				return nil, fmt.Errorf("side %s: pid %d is not running", sm.name, pid)
			}
		}
	}
	m.sample(all, time.Now())
	for _, sm := range m.sides {
		sm.startCPU = sm.nowCPU
	}
	return m, nil
}

// Sample reads every side's processes once.
func (m *Meter) Sample() error {
	all, err := m.fs.All()
	if err != nil {
		m.sampleErr = err
		return err
	}
	m.sample(all, time.Now())
	return nil
}

func (m *Meter) sample(all map[int]Stat, now time.Time) {
	firstSample := m.samples == 0
	if firstSample {
		m.first = now
	}
	m.last = now
	m.samples++
	for _, sm := range m.sides {
		roots := make([]int, 0, len(sm.roots))
		for pid := range sm.roots {
			roots = append(roots, pid)
		}
		live := map[*procMeter]bool{}
		var rssSum uint64
		for _, pid := range Tree(all, roots) {
			st := all[pid]
			pm := sm.procs[pid]
			if pm == nil || pm.startTime != st.StartTime {
				// A new process, or a new one under a reused pid.
				pm = &procMeter{pid: pid, startTime: st.StartTime, comm: st.Comm, root: sm.roots[pid]}
				if firstSample || pm.root {
					pm.firstCPU = st.CPU()
				}
				if _, seen := sm.procs[pid]; !seen {
					sm.order = append(sm.order, pid)
				}
				sm.procs[pid] = pm
			}
			pm.alive, pm.ppid = true, st.PPID
			pm.lastCPU = st.CPU()
			live[pm] = true
			// The status is read after the stat; a process that exits in
			// between keeps its last figures.
			if s, err := m.fs.Status(pid); err == nil {
				pm.hwm = max(pm.hwm, s.HWM)
				pm.maxRSS = max(pm.maxRSS, s.RSS)
				rssSum += s.RSS
			}
		}
		livePID := map[int]bool{}
		for pm := range live {
			livePID[pm.pid] = true
		}
		var cpu uint64
		for _, pm := range sm.procs {
			if pm.alive && !live[pm] {
				// Gone since the last sample. A child whose parent lives
				// on was reaped into the parent's cutime and cstime and
				// counts through it from now on.
				pm.alive = false
				pm.frozen = pm.root || !livePID[pm.ppid]
			}
			if pm.alive || pm.frozen {
				cpu += pm.lastCPU
			}
		}
		sm.nowCPU = cpu
		sm.maxRSSSum = max(sm.maxRSSSum, rssSum)
	}
}

// ProcResult is one process's figures over the window.
type ProcResult struct {
	PID  int
	Comm string
	Root bool
	// Exited says the process was gone at the last sample.
	Exited bool
	// CPUSeconds is its CPU time (and its reaped children's) in the
	// window; LifetimeCPUSeconds since it started.
	CPUSeconds, LifetimeCPUSeconds float64
	// PeakRSS is the largest VmHWM seen, MaxRSS the largest VmRSS
	// sampled; bytes.
	PeakRSS, MaxRSS uint64
}

// SideResult is one side's figures over the window.
type SideResult struct {
	Name string
	// CPUSeconds is the side's CPU time in the window; LifetimeCPUSeconds
	// is since its processes started (start-up included).
	CPUSeconds, LifetimeCPUSeconds float64
	// PeakRSS is the sum of its processes' VmHWM: an upper bound of the
	// side's peak, exact for one process. MaxRSSSum is the largest sum of
	// VmRSS over the side's processes at one sample.
	PeakRSS, MaxRSSSum uint64
	Procs              []ProcResult
}

// Result is a Meter's figures.
type Result struct {
	Window  time.Duration
	Samples int
	Hz      float64
	Sides   []SideResult
}

// Side returns the named side's figures.
func (r Result) Side(name string) (SideResult, bool) {
	for _, s := range r.Sides {
		if s.Name == name {
			return s, true
		}
	}
	return SideResult{}, false
}

// CorePercent is CPU seconds as a percentage of one core over the window.
func (r Result) CorePercent(cpuSeconds float64) float64 {
	if r.Window <= 0 {
		return 0
	}
	return 100 * cpuSeconds / r.Window.Seconds()
}

// Result returns the figures from the first sample to the last.
func (m *Meter) Result() Result {
	r := Result{Window: m.last.Sub(m.first), Samples: m.samples, Hz: m.hz}
	sec := func(ticks uint64) float64 { return float64(ticks) / m.hz }
	for _, sm := range m.sides {
		sr := SideResult{
			Name:               sm.name,
			CPUSeconds:         sec(sm.nowCPU - min(sm.startCPU, sm.nowCPU)),
			LifetimeCPUSeconds: sec(sm.nowCPU),
			MaxRSSSum:          sm.maxRSSSum,
		}
		for _, pid := range sm.order {
			pm := sm.procs[pid]
			sr.PeakRSS += pm.hwm
			sr.Procs = append(sr.Procs, ProcResult{
				PID: pm.pid, Comm: pm.comm, Root: pm.root, Exited: !pm.alive,
				CPUSeconds:         sec(pm.lastCPU - min(pm.firstCPU, pm.lastCPU)),
				LifetimeCPUSeconds: sec(pm.lastCPU),
				PeakRSS:            pm.hwm, MaxRSS: pm.maxRSS,
			})
		}
		r.Sides = append(r.Sides, sr)
	}
	return r
}

// MB is bytes in mebibytes, for tables.
func MB(b uint64) float64 { return float64(b) / (1 << 20) }

// WriteTable prints the figures of every process and side.
func (r Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "side\tpid\tprocess\tcpu s (window)\t%% of a core\tcpu s (since start)\tpeak RSS MB (VmHWM)\tmax sampled RSS MB\t\n")
	for _, s := range r.Sides {
		for _, p := range s.Procs {
			name := p.Comm
			if !p.Root {
				name = "└ " + name
			}
			if p.Exited {
				name += " (exited)"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.2f\t%.2f\t%.2f\t%.1f\t%.1f\t\n", s.Name, p.PID, name,
				p.CPUSeconds, r.CorePercent(p.CPUSeconds), p.LifetimeCPUSeconds, MB(p.PeakRSS), MB(p.MaxRSS))
		}
		fmt.Fprintf(tw, "%s\t\t= %s total\t%.2f\t%.2f\t%.2f\t%.1f\t%.1f\t\n", s.Name, s.Name,
			s.CPUSeconds, r.CorePercent(s.CPUSeconds), s.LifetimeCPUSeconds, MB(s.PeakRSS), MB(s.MaxRSSSum))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	_, err := fmt.Fprintf(w, "window %s, %d samples, CLK_TCK %g; a side's peak RSS is the sum of its processes' VmHWM\n",
		r.Window.Round(time.Millisecond), r.Samples, r.Hz)
	return err
}

// Ratio compares side a with side b.
type Ratio struct {
	A, B     string
	CPU      float64 // a's window CPU / b's
	PeakRSS  float64 // a's peak RSS / b's
	MaxRSS   float64 // a's max sampled RSS / b's
	APeakRSS uint64
}

// Compare returns a/b for the two named sides.
func (r Result) Compare(a, b string) (Ratio, error) {
	sa, okA := r.Side(a)
	sb, okB := r.Side(b)
	if !okA || !okB {
		return Ratio{}, fmt.Errorf("compare %s/%s: no such side", a, b)
	}
	div := func(x, y float64) float64 {
		if y == 0 {
			return 0
		}
		return x / y
	}
	return Ratio{
		A: a, B: b,
		CPU:      div(sa.CPUSeconds, sb.CPUSeconds),
		PeakRSS:  div(float64(sa.PeakRSS), float64(sb.PeakRSS)),
		MaxRSS:   div(float64(sa.MaxRSSSum), float64(sb.MaxRSSSum)),
		APeakRSS: sa.PeakRSS,
	}, nil
}

// ParseSides parses "name=pid,pid,..." arguments.
func ParseSides(args []string) ([]Side, error) {
	var sides []Side
	for _, a := range args {
		name, list, ok := strings.Cut(a, "=")
		if !ok || name == "" || list == "" {
			return nil, fmt.Errorf("side %q: want name=pid[,pid...]", a)
		}
		s := Side{Name: name}
		for _, f := range strings.Split(list, ",") {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err != nil || pid <= 0 {
				return nil, fmt.Errorf("side %q: pid %q", a, f)
			}
			s.PIDs = append(s.PIDs, pid)
		}
		sides = append(sides, s)
	}
	if len(sides) == 0 {
		return nil, errors.New("no sides")
	}
	return sides, nil
}
