package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stat is the part of /proc/PID/stat the benchmarks use. Times are in
// clock ticks (see ClockTicks).
type Stat struct {
	PID   int
	Comm  string
	State byte
	PPID  int
	// UTime and STime are the process's own user and system time;
	// CUTime and CSTime those of its children it has waited for.
	UTime, STime, CUTime, CSTime uint64
	// StartTime is when the process started, in ticks since boot: with
	// the PID it names one process even when PIDs are reused.
	StartTime uint64
}

// CPU is the process's CPU time and that of the children it reaped, in
// ticks: what stays with the process tree when a child exits.
func (s Stat) CPU() uint64 { return s.UTime + s.STime + s.CUTime + s.CSTime }

// ParseStat parses the contents of /proc/PID/stat. The command name may
// hold spaces and parentheses, so the fields are counted from the last ')'.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return s, errors.New("stat: no (comm)")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return s, fmt.Errorf("stat: pid: %w", err)
	}
	s.PID = pid
	s.Comm = string(b[open+1 : end])
	// Fields 3.. of proc(5), so f[0] is field 3 (state).
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 {
		return s, fmt.Errorf("stat: %d fields after comm, want at least 20", len(f))
	}
	if len(f[0]) != 1 {
		return s, fmt.Errorf("stat: state %q", f[0])
	}
	s.State = f[0][0]
	if s.PPID, err = strconv.Atoi(f[1]); err != nil {
		return s, fmt.Errorf("stat: ppid: %w", err)
	}
	for _, v := range []struct {
		dst   *uint64
		field int
		name  string
	}{
		{&s.UTime, 14, "utime"}, {&s.STime, 15, "stime"},
		{&s.CUTime, 16, "cutime"}, {&s.CSTime, 17, "cstime"},
		{&s.StartTime, 22, "starttime"},
	} {
		// cutime and cstime are signed in the kernel's format but never
		// negative in practice; a negative one is a broken file.
		if *v.dst, err = strconv.ParseUint(f[v.field-3], 10, 64); err != nil {
			return s, fmt.Errorf("stat: %s: %w", v.name, err)
		}
	}
	return s, nil
}

// Status is the part of /proc/PID/status the benchmarks use, in bytes.
// Kernel threads have neither line; both are then zero.
type Status struct {
	Name string
	// HWM is VmHWM, the peak resident set size of the process's life.
	HWM uint64
	// RSS is VmRSS, the resident set size now.
	RSS uint64
}

// ParseStatus parses the contents of /proc/PID/status.
func ParseStatus(r io.Reader) (Status, error) {
	var s Status
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Name":
			s.Name = val
		case "VmHWM", "VmRSS":
			n, err := parseKB(val)
			if err != nil {
				return s, fmt.Errorf("status: %s: %w", key, err)
			}
			if key == "VmHWM" {
				s.HWM = n
			} else {
				s.RSS = n
			}
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("status: %w", err)
	}
	return s, nil
}

// parseKB parses "1234 kB" into bytes.
func parseKB(v string) (uint64, error) {
	num, unit, _ := strings.Cut(v, " ")
	if strings.TrimSpace(unit) != "kB" {
		return 0, fmt.Errorf("unit of %q: want kB", v)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, err
	}
	if n > (1<<64-1)/1024 {
		return 0, fmt.Errorf("%q out of range", v)
	}
	return n * 1024, nil
}

// ProcFS reads processes from a procfs mount.
type ProcFS struct {
	// Root is the procfs mount; "" means /proc.
	Root string
}

func (p ProcFS) path(elem ...string) string {
	root := p.Root
	if root == "" {
		root = "/proc"
	}
	return filepath.Join(append([]string{root}, elem...)...)
}

// Stat reads /proc/PID/stat.
func (p ProcFS) Stat(pid int) (Stat, error) {
	b, err := os.ReadFile(p.path(strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	s, err := ParseStat(b)
	if err != nil {
		return s, fmt.Errorf("pid %d: %w", pid, err)
	}
	return s, nil
}

// Status reads /proc/PID/status.
func (p ProcFS) Status(pid int) (Status, error) {
	f, err := os.Open(p.path(strconv.Itoa(pid), "status"))
	if err != nil {
		return Status{}, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	defer f.Close()
	s, err := ParseStatus(f)
	if err != nil {
		return s, fmt.Errorf("pid %d: %w", pid, err)
	}
	return s, nil
}

// All reads the stat of every process; processes that exit while it reads
// are left out.
func (p ProcFS) All() (map[int]Stat, error) {
	ents, err := os.ReadDir(p.path())
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	all := make(map[int]Stat, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		s, err := p.Stat(pid)
		if err != nil {
			continue // gone, or not a process directory
		}
		all[pid] = s
	}
	return all, nil
}

// Tree returns the roots found in all and every descendant of them, each
// once, roots first.
func Tree(all map[int]Stat, roots []int) []int {
	children := make(map[int][]int)
	for pid, s := range all {
		children[s.PPID] = append(children[s.PPID], pid)
	}
	seen := make(map[int]bool)
	var out []int
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if _, live := all[pid]; !live || seen[pid] {
			continue
		}
		seen[pid] = true
		out = append(out, pid)
		queue = append(queue, children[pid]...)
	}
	return out
}

// atClkTck is AT_CLKTCK in the ELF auxiliary vector: the value glibc's
// sysconf(_SC_CLK_TCK) returns.
const atClkTck = 17

// ClockTicks returns the kernel's USER_HZ, the unit of the times in
// /proc/PID/stat, from the auxiliary vector the kernel gave this process
// (sysconf(_SC_CLK_TCK) without cgo). It falls back to 100, USER_HZ on
// every Linux architecture Go runs on.
func ClockTicks(p ProcFS) uint64 {
	b, err := os.ReadFile(p.path("self", "auxv"))
	if err != nil {
		return 100
	}
	if hz, ok := ParseAuxv(b, atClkTck); ok && hz > 0 {
		return hz
	}
	return 100
}

// ParseAuxv returns the value of key in an auxiliary vector of native
// 64-bit little-endian (key, value) pairs, as /proc/PID/auxv holds on
// amd64 and arm64.
func ParseAuxv(b []byte, key uint64) (uint64, bool) {
	for len(b) >= 16 {
		k := binary.LittleEndian.Uint64(b)
		v := binary.LittleEndian.Uint64(b[8:])
		if k == key {
			return v, true
		}
		if k == 0 { // AT_NULL ends the vector
			break
		}
		b = b[16:]
	}
	return 0, false
}
