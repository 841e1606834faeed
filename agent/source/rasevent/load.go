package rasevent

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// tracepoint is one program of bpf/ras.c and where it attaches.
type tracepoint struct {
	prog  string   // program name in the object
	event string   // tracepoint name
	sys   []string // trace systems it lives in, tried in order
	// btfType is the record's type in the kernel's BTF: CO-RE needs it,
	// and a kernel built without the tracepoint does not have it.
	btfType string
	// config is the kernel option that brings the tracepoint.
	config string
}

// tracepoints are the rasdaemon signal set.
var tracepoints = [...]tracepoint{
	{"mc_event", "mc_event", []string{"ras"}, "trace_event_raw_mc_event", "CONFIG_RAS"},
	{"mce_record", "mce_record", []string{"mce"}, "trace_event_raw_mce_record", "CONFIG_X86_MCE"},
	{"aer_event", "aer_event", []string{"ras"}, "trace_event_raw_aer_event", "CONFIG_PCIEAER"},
	// Moved from the ras system to its own in Linux 6.19.
	{"memory_failure_event", "memory_failure_event", []string{"ras", "memory_failure"}, "trace_event_raw_memory_failure_event", "CONFIG_MEMORY_FAILURE"},
}

// tpStatus says what became of one tracepoint.
type tpStatus struct {
	// Name is "system:event": where it attached, else the first place it
	// was looked for.
	Name     string
	Attached bool
	// Absent says the kernel does not have the tracepoint; otherwise an
	// unattached tracepoint failed to load or attach.
	Absent bool
	// Reason says why it is not attached.
	Reason string
}

func (s tpStatus) String() string {
	if s.Attached {
		return s.Name
	}
	return s.Name + ": " + s.Reason
}

// loaded is the BPF side of a running source: the ring buffer, the drop
// counters and the programs attached to the tracepoints the kernel has.
type loaded struct {
	events *ebpf.Map
	drops  *ebpf.Map
	progs  []*ebpf.Program
	links  []link.Link
	status []tpStatus
	// rules names each attached program's tracepoint, by record kind.
	rules map[recordKind]string
	names names
}

func (l *loaded) attached() int { return len(l.links) }

// Close detaches every program and frees the maps.
func (l *loaded) Close() error {
	var errs []error
	for _, lk := range l.links {
		errs = append(errs, lk.Close())
	}
	for _, p := range l.progs {
		errs = append(errs, p.Close())
	}
	for _, m := range []*ebpf.Map{l.events, l.drops} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// statusLine says which tracepoints are attached, which the kernel does
// not have and which failed, and why: the one line the source logs.
func (l *loaded) statusLine() (attached, absent, failed string) {
	var a, b, c []string
	for _, s := range l.status {
		switch {
		case s.Attached:
			a = append(a, s.String())
		case s.Absent:
			b = append(b, s.String())
		default:
			c = append(c, s.String())
		}
	}
	return strings.Join(a, ", "), strings.Join(b, "; "), strings.Join(c, "; ")
}

var kindOfProg = map[string]recordKind{
	"mc_event":             kindMCEvent,
	"mce_record":           kindMCERecord,
	"aer_event":            kindAEREvent,
	"memory_failure_event": kindMemoryFailure,
}

// load creates the maps and loads and attaches each program on its own, so
// that one whose tracepoint the kernel lacks does not keep the others
// out. An error means BPF cannot be used at all (no permission, no kernel
// BTF, no ring buffer); a kernel with none of the tracepoints is not an
// error: the statuses say why.
//
// The kernel's BTF, parsed for CO-RE (several MB of heap), is held only
// by this call's cache and is garbage once it returns.
func load() (*loaded, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise the memlock limit for BPF: %w", err)
	}
	spec, err := loadRas()
	if err != nil {
		return nil, err
	}
	cache := btf.NewCache()
	kernel, err := cache.Kernel()
	if err != nil {
		return nil, fmt.Errorf("read the kernel's BTF, which CO-RE needs: %w", err)
	}
	l := &loaded{rules: map[recordKind]string{}, names: namesFromBTF(kernel)}
	if l.events, err = ebpf.NewMap(spec.Maps["events"]); err != nil {
		return nil, fmt.Errorf("create the BPF ring buffer: %w", err)
	}
	if l.drops, err = ebpf.NewMap(spec.Maps["drops"]); err != nil {
		l.Close()
		return nil, fmt.Errorf("create the BPF drop counters: %w", err)
	}
	for _, tp := range tracepoints {
		st, err := l.attach(spec, cache, kernel, tp)
		if err != nil {
			l.Close()
			return nil, err
		}
		l.status = append(l.status, st)
	}
	return l, nil
}

// attach loads one program and attaches it to the first system that has
// its tracepoint. An error is a lack of privilege, which no other
// tracepoint will fare better with.
func (l *loaded) attach(spec *ebpf.CollectionSpec, cache *btf.Cache, kernel *btf.Spec, tp tracepoint) (tpStatus, error) {
	st := tpStatus{Name: tp.sys[0] + ":" + tp.event}
	var rec *btf.Struct
	if err := kernel.TypeByName(tp.btfType, &rec); err != nil {
		st.Absent = true
		st.Reason = fmt.Sprintf("not in this kernel (its BTF has no %s; built without %s)", tp.btfType, tp.config)
		return st, nil
	}
	prog, err := loadProgram(spec, tp.prog, l.events, l.drops, cache, nil)
	if errors.Is(err, os.ErrPermission) {
		return st, fmt.Errorf("load BPF program %s: %w", tp.prog, err)
	}
	if err != nil {
		st.Reason = fmt.Sprintf("load: %v", err)
		return st, nil
	}
	for _, sys := range tp.sys {
		lk, err := link.Tracepoint(sys, tp.event, prog, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			prog.Close()
			if errors.Is(err, os.ErrPermission) {
				return st, fmt.Errorf("attach BPF program %s: %w", tp.prog, err)
			}
			st.Reason = fmt.Sprintf("attach: %v", err)
			return st, nil
		}
		l.progs = append(l.progs, prog)
		l.links = append(l.links, lk)
		l.rules[kindOfProg[tp.prog]] = sys + ":" + tp.event
		return tpStatus{Name: sys + ":" + tp.event, Attached: true}, nil
	}
	prog.Close()
	st.Absent = true
	st.Reason = fmt.Sprintf("no such tracepoint in tracefs (tried %s)", strings.Join(tp.sys, ", "))
	return st, nil
}

// loadProgram loads one program of spec against the shared maps. CO-RE
// relocates against kernelTypes, or the running kernel's when nil.
func loadProgram(spec *ebpf.CollectionSpec, name string, events, drops *ebpf.Map, cache *btf.Cache, kernelTypes *btf.Spec) (*ebpf.Program, error) {
	ps, ok := spec.Programs[name]
	if !ok {
		return nil, fmt.Errorf("no program %s in the object", name)
	}
	// Only the program and the maps it uses: the object's .bss (the
	// record types' anchors) is not needed by any program.
	one := &ebpf.CollectionSpec{
		Maps:      map[string]*ebpf.MapSpec{"events": spec.Maps["events"].Copy(), "drops": spec.Maps["drops"].Copy()},
		Programs:  map[string]*ebpf.ProgramSpec{name: ps.Copy()},
		Types:     spec.Types,
		ByteOrder: spec.ByteOrder,
	}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{
		MapReplacements: map[string]*ebpf.Map{"events": events, "drops": drops},
		Programs:        ebpf.ProgramOptions{KernelTypes: kernelTypes},
		Cache:           cache,
	})
	if err != nil {
		return nil, err
	}
	defer coll.Close()
	return coll.DetachProgram(name), nil
}

// readDrops sums the per-CPU drop counters of every record kind.
func readDrops(m *ebpf.Map) (uint64, error) {
	var total uint64
	var perCPU []uint64
	for k := uint32(0); k < m.MaxEntries(); k++ {
		if err := m.Lookup(k, &perCPU); err != nil {
			return 0, fmt.Errorf("read BPF drop counter %d: %w", k, err)
		}
		for _, v := range perCPU {
			total += v
		}
	}
	return total, nil
}
