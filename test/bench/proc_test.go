package bench

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A real /proc/PID/stat of a process named "(sd-pam)" with a space, as
// the kernel writes it (fields from a Debian 12 host), and one of a
// kernel thread.
const (
	statSDPam   = "1234 ((sd-pam) x) S 1233 1233 1233 0 -1 1077936448 53 0 0 0 7 3 11 2 20 0 1 0 1580 26345472 1005 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	statKthread = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Stat
		wantErr string
	}{
		{name: "comm with parentheses and a space", in: statSDPam,
			want: Stat{PID: 1234, Comm: "(sd-pam) x", State: 'S', PPID: 1233, UTime: 7, STime: 3, CUTime: 11, CSTime: 2, StartTime: 1580}},
		{name: "kernel thread", in: statKthread, want: Stat{PID: 2, Comm: "kthreadd", State: 'S', StartTime: 2}},
		{name: "no comm", in: "1 S 0", wantErr: "no (comm)"},
		{name: "truncated", in: "1 (a) S 0 1 1 0 -1 0 0 0 0 0 5", wantErr: "fields after comm"},
		{name: "negative cutime", in: strings.Replace(statSDPam, " 7 3 11 2 ", " 7 3 -11 2 ", 1), wantErr: "cutime"},
		{name: "bad pid", in: strings.Replace(statSDPam, "1234 ", "x ", 1), wantErr: "pid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseStat error %v, want one about %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseStat = %+v, want %+v", got, tt.want)
			}
			if got.CPU() != tt.want.UTime+tt.want.STime+tt.want.CUTime+tt.want.CSTime {
				t.Errorf("CPU = %d", got.CPU())
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Status
		wantErr string
	}{
		{name: "process", in: "Name:\thwheal-agent\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t 1263744 kB\nVmHWM:\t   29488 kB\nVmRSS:\t   26520 kB\nThreads:\t9\n",
			want: Status{Name: "hwheal-agent", HWM: 29488 << 10, RSS: 26520 << 10}},
		{name: "kernel thread has no Vm lines", in: "Name:\tkthreadd\nState:\tS (sleeping)\nThreads:\t1\n", want: Status{Name: "kthreadd"}},
		{name: "unit other than kB", in: "VmHWM:\t 12 MB\n", wantErr: "VmHWM"},
		{name: "not a number", in: "VmRSS:\t x kB\n", wantErr: "VmRSS"},
		{name: "overflow", in: "VmRSS:\t 18446744073709551615 kB\n", wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseStatus error %v, want one about %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseStatus = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseAuxv(t *testing.T) {
	var b []byte
	for _, kv := range [][2]uint64{{6, 4096}, {17, 100}, {25, 0xdead}, {0, 0}, {17, 250}} {
		b = binary.LittleEndian.AppendUint64(b, kv[0])
		b = binary.LittleEndian.AppendUint64(b, kv[1])
	}
	if v, ok := ParseAuxv(b, 17); !ok || v != 100 {
		t.Errorf("AT_CLKTCK = %d, %v; want 100 (the first, before AT_NULL)", v, ok)
	}
	if _, ok := ParseAuxv(b, 33); ok {
		t.Error("found a key the vector does not hold")
	}
	if _, ok := ParseAuxv(b[:7], 6); ok {
		t.Error("found a key in a truncated vector")
	}
}

func TestClockTicksOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/auxv"); err != nil {
		t.Skip("no /proc/self/auxv (not Linux)")
	}
	// USER_HZ is 100 on every architecture Go builds for on Linux.
	if hz := ClockTicks(ProcFS{}); hz != 100 {
		t.Errorf("ClockTicks = %d, want 100", hz)
	}
	if hz := ClockTicks(ProcFS{Root: t.TempDir()}); hz != 100 {
		t.Errorf("ClockTicks without auxv = %d, want the fallback 100", hz)
	}
}

// writeProc writes a fake procfs tree: pid -> stat line and status.
func writeProc(t *testing.T, root string, procs map[int][2]string) {
	t.Helper()
	for pid, files := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(files[0]), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(files[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func stat(pid, ppid int, comm string, utime, stime, cutime, cstime, start uint64) string {
	return strconv.Itoa(pid) + " (" + comm + ") S " + strconv.Itoa(ppid) +
		" 1 1 0 -1 0 0 0 0 0 " + u(utime) + " " + u(stime) + " " + u(cutime) + " " + u(cstime) +
		" 20 0 1 0 " + u(start) + " 0 0\n"
}

func u(v uint64) string { return strconv.FormatUint(v, 10) }

func status(hwmKB, rssKB uint64) string {
	return "Name:\tx\nVmHWM:\t" + u(hwmKB) + " kB\nVmRSS:\t" + u(rssKB) + " kB\n"
}

// TestMeterFollowsTreeAcrossExits steps a fake procfs through a window in
// which a child is born, is reaped into its parent's cutime, a root exits,
// and a root exits together with its child: no CPU is counted twice or
// lost.
func TestMeterFollowsTreeAcrossExits(t *testing.T) {
	root := t.TempDir()
	// Sample 1: side a = 10 (child 11 of it), side b = 20; 30 is nobody's.
	writeProc(t, root, map[int][2]string{
		10: {stat(10, 1, "a", 100, 50, 0, 0, 7), status(1000, 900)},
		11: {stat(11, 10, "a-child", 10, 0, 0, 0, 8), status(300, 300)},
		20: {stat(20, 1, "b", 1000, 0, 0, 0, 9), status(5000, 4000)},
		30: {stat(30, 1, "other", 9999, 0, 0, 0, 3), status(99999, 99999)},
		40: {stat(40, 1, "c", 10, 0, 0, 0, 4), status(10, 10)},
		41: {stat(41, 40, "c-child", 20, 0, 0, 0, 5), status(10, 10)},
	})
	m, err := NewMeter(ProcFS{Root: root}, []Side{{Name: "a", PIDs: []int{10}}, {Name: "b", PIDs: []int{20}}, {Name: "c", PIDs: []int{40}}})
	if err != nil {
		t.Fatal(err)
	}
	// Sample 2: 11 has been reaped (its 10+20 ticks are in 10's cutime),
	// a new child 12 (pid reused from nobody) ran 5 ticks; 20 runs on.
	os.RemoveAll(filepath.Join(root, "11"))
	writeProc(t, root, map[int][2]string{
		10: {stat(10, 1, "a", 110, 50, 30, 0, 7), status(1200, 1100)},
		12: {stat(12, 10, "a-child2", 5, 0, 0, 0, 50), status(400, 400)},
		20: {stat(20, 1, "b", 1300, 100, 0, 0, 9), status(6000, 5500)},
		40: {stat(40, 1, "c", 15, 0, 0, 0, 4), status(10, 10)},
		41: {stat(41, 40, "c-child", 30, 0, 0, 0, 5), status(10, 10)},
	})
	if err := m.Sample(); err != nil {
		t.Fatal(err)
	}
	// Sample 3: 20 has exited, and 40 with its child (nobody reaped the
	// child into 40's cutime): their last readings stay.
	for _, pid := range []string{"20", "40", "41"} {
		os.RemoveAll(filepath.Join(root, pid))
	}
	writeProc(t, root, map[int][2]string{
		12: {stat(12, 10, "a-child2", 6, 1, 0, 0, 50), status(400, 200)},
	})
	if err := m.Sample(); err != nil {
		t.Fatal(err)
	}
	r := m.Result()
	a, _ := r.Side("a")
	b, _ := r.Side("b")
	// a: start 100+50 (10) + 10 (11) = 160; end 110+50+30 (10) + 7 (12) = 197.
	if got, want := a.CPUSeconds, 0.37; !near(got, want) {
		t.Errorf("side a CPU = %v s, want %v", got, want)
	}
	if got, want := a.LifetimeCPUSeconds, 1.97; !near(got, want) {
		t.Errorf("side a lifetime CPU = %v s, want %v", got, want)
	}
	// b: 1000 -> 1400 ticks, the last reading before it exited.
	if got, want := b.CPUSeconds, 4.0; !near(got, want) {
		t.Errorf("side b CPU = %v s, want %v", got, want)
	}
	// Peak RSS: the sum of each process's largest VmHWM (1200+300+400 kB);
	// the largest sampled sum of VmRSS is sample 2's 1100+400 kB.
	if got, want := a.PeakRSS, uint64(1900<<10); got != want {
		t.Errorf("side a peak RSS = %d, want %d", got, want)
	}
	if got, want := a.MaxRSSSum, uint64(1500<<10); got != want {
		t.Errorf("side a max sampled RSS = %d, want %d", got, want)
	}
	// c: 10+20 -> 15+30 ticks.
	if c, _ := r.Side("c"); !near(c.CPUSeconds, 0.15) {
		t.Errorf("side c CPU = %v s, want 0.15", c.CPUSeconds)
	}
	if got := b.Procs[0]; !got.Exited || got.PeakRSS != 6000<<10 {
		t.Errorf("side b's process = %+v, want exited with peak 6000 kB", got)
	}
	comms := []string{}
	for _, p := range a.Procs {
		comms = append(comms, p.Comm)
	}
	if want := []string{"a", "a-child", "a-child2"}; !slices.Equal(comms, want) {
		t.Errorf("side a processes %v, want %v", comms, want)
	}
	ratio, err := r.Compare("a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if !near(ratio.CPU, 0.37/4) {
		t.Errorf("a/b CPU = %v, want %v", ratio.CPU, 0.37/4)
	}
	var out bytes.Buffer
	if err := r.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a-child2", "= a total", "(exited)", "3 samples"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestNewMeterNeedsRunningRoots(t *testing.T) {
	root := t.TempDir()
	writeProc(t, root, map[int][2]string{10: {stat(10, 1, "a", 1, 1, 0, 0, 7), status(1, 1)}})
	if _, err := NewMeter(ProcFS{Root: root}, []Side{{Name: "a", PIDs: []int{10, 11}}}); err == nil || !strings.Contains(err.Error(), "pid 11") {
		t.Errorf("NewMeter with a dead root: %v, want an error naming pid 11", err)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// TestMeterOnRealChild measures a real process tree: a shell waiting for
// a busy child. Once the shell has exited (a zombie, its stat final), the
// side's CPU holds the child's time, reaped into the shell's cutime.
func TestMeterOnRealChild(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no procfs")
	}
	cmd := exec.Command("sh", "-c", `(i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done) & wait`)
	if err := cmd.Start(); err != nil {
		t.Skipf("no sh: %v", err)
	}
	// Reaped only at the end, so the exited shell stays readable.
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	fs := ProcFS{}
	m, err := NewMeter(fs, []Side{{Name: "sh", PIDs: []int{pid}}})
	if err != nil {
		t.Fatal(err)
	}
	var zombie Stat
	for deadline := time.Now().Add(30 * time.Second); ; {
		if err := m.Sample(); err != nil {
			t.Fatal(err)
		}
		if zombie, err = fs.Stat(pid); err != nil {
			t.Fatal(err)
		}
		if zombie.State == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shell did not finish in 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := m.Sample(); err != nil {
		t.Fatal(err)
	}
	s, _ := m.Result().Side("sh")
	if zombie.CUTime+zombie.CSTime == 0 {
		t.Skip("the child ran for less than a clock tick")
	}
	if want := float64(zombie.CPU()) / float64(ClockTicks(fs)); s.CPUSeconds < want-0.02 {
		t.Errorf("side CPU %.2f s, want the shell's and its reaped child's %.2f s (less what ran before the first sample): %+v",
			s.CPUSeconds, want, s.Procs)
	}
	if s.Procs[0].PeakRSS == 0 {
		t.Errorf("no peak RSS for the shell: %+v", s.Procs)
	}
}

func TestParseSides(t *testing.T) {
	got, err := ParseSides([]string{"agent=12", "stack=1,2,3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "agent" || !slices.Equal(got[1].PIDs, []int{1, 2, 3}) {
		t.Errorf("ParseSides = %+v", got)
	}
	for _, bad := range [][]string{nil, {"agent"}, {"=1"}, {"a=1,x"}, {"a=-1"}} {
		if _, err := ParseSides(bad); err == nil {
			t.Errorf("ParseSides(%q) accepted", bad)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statSDPam))
	f.Add([]byte(statKthread))
	f.Add([]byte("1 (a)) S"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStat(b)
		if err != nil {
			return
		}
		// A parsed comm sits between the first '(' and the last ')'.
		if !bytes.Contains(b, []byte("("+s.Comm+")")) {
			t.Errorf("comm %q is not in %q", s.Comm, b)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add("Name:\ta\nVmHWM:\t 10 kB\nVmRSS:\t 5 kB\n")
	f.Add("VmRSS: 1")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseStatus(strings.NewReader(in))
		if err != nil {
			return
		}
		if s.HWM%1024 != 0 || s.RSS%1024 != 0 {
			t.Errorf("sizes %d, %d are not whole kB", s.HWM, s.RSS)
		}
	})
}
