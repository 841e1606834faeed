package blockio

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// tracer is the loaded and attached programs of one Run or Probe.
type tracer struct {
	attach string // AttachBTF or AttachTracepoint
	// errsFromComplete: the kernel has no block_rq_error; failed requests
	// come from block_rq_complete.
	errsFromComplete bool
	kernel           kernelVersion
	ops              map[uint32]string // REQ_OP_* names of this kernel

	coll  *ebpf.Collection
	links []link.Link
	rd    *ringbuf.Reader

	prev map[uint32]histogram // the last histogram reading, by dev
}

// programs are the programs of an attach strategy: issue, complete and
// the optional error program.
func programs(attach string) [3]string {
	if attach == AttachBTF {
		return [3]string{blockioProgBtfIssue, blockioProgBtfComplete, blockioProgBtfError}
	}
	return [3]string{blockioProgTpIssue, blockioProgTpComplete, blockioProgTpError}
}

// openTracer loads and attaches the programs of the strategy asked for
// (AttachAuto: tp_btf, then tracepoints). Its error says why it cannot, in
// words fit for one log line.
func openTracer(attach string, log *slog.Logger) (*tracer, error) {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK. Where it
	// cannot be raised the load below says why it fails, if it does.
	if err := rlimit.RemoveMemlock(); err != nil {
		log.Debug("cannot raise the memlock limit for BPF", "err", err)
	}
	spec, err := loadBlockio()
	if err != nil {
		return nil, fmt.Errorf("read the embedded BPF object: %w", err)
	}
	// One decoding of the kernel's BTF serves the checks below and the
	// loader's CO-RE relocations, and is dropped with the cache when the
	// programs are loaded: it is the largest allocation of a load.
	cache := btf.NewCache()
	kernel, err := cache.Kernel()
	if err != nil {
		return nil, fmt.Errorf("no kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF) for CO-RE: %w", err)
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	base := tracer{
		kernel:           parseKernelRelease(unix.ByteSliceToString(uts.Release[:])),
		ops:              kernelReqOps(kernel),
		errsFromComplete: !hasTracepoint(kernel, "block_rq_error"),
		prev:             map[uint32]histogram{},
	}
	if attach != AttachAuto {
		return load(spec, cache, kernel, base, attach)
	}
	t, btfErr := load(spec, cache, kernel, base, AttachBTF)
	if btfErr == nil {
		return t, nil
	}
	if errors.Is(btfErr, os.ErrPermission) {
		// Tracepoints need the same privilege.
		return nil, btfErr
	}
	t, err = load(spec, cache, kernel, base, AttachTracepoint)
	if err != nil {
		return nil, fmt.Errorf("tp_btf: %v; classic tracepoints: %w", btfErr, err)
	}
	log.Info("tp_btf programs unavailable, using classic tracepoints", "reason", btfErr.Error())
	return t, nil
}

// load loads the programs of one strategy and attaches them.
func load(spec *ebpf.CollectionSpec, cache *btf.Cache, kernel *btf.Spec, t tracer, attach string) (_ *tracer, err error) {
	for _, tp := range []string{"block_rq_issue", "block_rq_complete"} {
		if !hasTracepoint(kernel, tp) {
			return nil, fmt.Errorf("the kernel has no block:%s tracepoint", tp)
		}
	}
	if attach == AttachBTF && !issueTakesRequest(kernel) {
		// Before 5.11 block_rq_issue took (q, rq): the tp_btf program
		// would read the queue as the request.
		return nil, errors.New("block_rq_issue does not take a struct request * alone (kernel before 5.11)")
	}
	progs := programs(attach)
	want := progs[:]
	if t.errsFromComplete {
		want = progs[:2]
	}
	spec = spec.Copy()
	for name := range spec.Programs {
		if !slices.Contains(want, name) {
			delete(spec.Programs, name)
		}
	}
	if err := spec.Variables[blockioVarErrorsFromComplete].Set(t.errsFromComplete); err != nil {
		return nil, fmt.Errorf("configure BPF programs: %w", err)
	}
	t.attach = attach
	t.coll, err = ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Cache: cache})
	if err != nil {
		return nil, explain(fmt.Errorf("load %s programs: %w", attach, err))
	}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	for _, name := range want {
		prog := t.coll.Programs[name]
		var l link.Link
		if attach == AttachBTF {
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		} else {
			l, err = link.Tracepoint("block", tracepointOf(name), prog, nil)
		}
		if err != nil {
			return nil, explain(fmt.Errorf("attach %s program %s to block:%s: %w", attach, name, tracepointOf(name), err))
		}
		t.links = append(t.links, l)
	}
	t.rd, err = ringbuf.NewReader(t.coll.Maps[blockioMapEvents])
	if err != nil {
		return nil, fmt.Errorf("open the ring buffer: %w", err)
	}
	return &t, nil
}

// tracepointOf is the block tracepoint a program attaches to.
func tracepointOf(prog string) string {
	switch prog {
	case blockioProgTpIssue, blockioProgBtfIssue:
		return "block_rq_issue"
	case blockioProgTpComplete, blockioProgBtfComplete:
		return "block_rq_complete"
	}
	return "block_rq_error"
}

// explain adds what to do about a permission error.
func explain(err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w (needs root, or CAP_BPF and CAP_PERFMON)", err)
	}
	return err
}

// hasTracepoint says whether the kernel has the tracepoint: every one has
// a btf_trace_<name> typedef in the kernel's BTF.
func hasTracepoint(kernel *btf.Spec, name string) bool {
	var td *btf.Typedef
	return kernel.TypeByName("btf_trace_"+name, &td) == nil
}

// issueTakesRequest says whether block_rq_issue's only argument is the
// request: btf_trace_block_rq_issue is void (*)(void *, struct request *).
func issueTakesRequest(kernel *btf.Spec) bool {
	var td *btf.Typedef
	if kernel.TypeByName("btf_trace_block_rq_issue", &td) != nil {
		return false
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return false
	}
	proto, ok := ptr.Target.(*btf.FuncProto)
	if !ok || len(proto.Params) != 2 {
		return false
	}
	p, ok := btf.UnderlyingType(proto.Params[1].Type).(*btf.Pointer)
	if !ok {
		return false
	}
	s, ok := p.Target.(*btf.Struct)
	return ok && s.Name == "request"
}

// kernelReqOps reads the REQ_OP_* numbers of this kernel from its BTF
// (enum req_op; enum req_opf before 5.19), falling back to a table of 6.x.
func kernelReqOps(kernel *btf.Spec) map[uint32]string {
	for _, name := range []string{"req_op", "req_opf"} {
		var e *btf.Enum
		if kernel.TypeByName(name, &e) != nil {
			continue
		}
		ops := make(map[uint32]string, len(e.Values))
		for _, v := range e.Values {
			n, ok := strings.CutPrefix(v.Name, "REQ_OP_")
			if ok && n != "LAST" {
				ops[uint32(v.Value)] = n
			}
		}
		if len(ops) > 0 {
			return ops
		}
	}
	return defaultReqOps
}

// errorsFrom names the tracepoint failed requests come from.
func (t *tracer) errorsFrom() string {
	if t.errsFromComplete {
		return "block_rq_complete"
	}
	return "block_rq_error"
}

// readEvents hands every record to handle until the reader is closed
// (nil) or fails; bad gets the records that do not decode.
func (t *tracer) readEvents(handle func(record), bad func(error)) error {
	var rec ringbuf.Record
	for {
		if err := t.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return err
		}
		r, err := decodeRecord(rec.RawSample)
		if err != nil {
			bad(err)
			continue
		}
		handle(r)
	}
}

// drain hands over what is in the ring buffer now, without waiting.
func (t *tracer) drain(handle func(record), bad func(error)) error {
	t.rd.SetDeadline(time.Now())
	return t.readEvents(handle, bad)
}

// closeReader stops readEvents.
func (t *tracer) closeReader() { t.rd.Close() }

// histograms reads every device's counters, by kernel dev_t.
func (t *tracer) histograms() (map[uint32]histogram, error) {
	out := map[uint32]histogram{}
	var (
		dev uint32
		h   blockioHist
	)
	it := t.coll.Maps[blockioMapHists].Iterate()
	for it.Next(&dev, &h) {
		out[dev] = histogram{Slots: h.Slots, Count: h.Count, Errors: h.Errors, SumNs: h.SumNs}
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("iterate the histogram map: %w", err)
	}
	return out, nil
}

// forget drops a device's counters.
func (t *tracer) forget(dev uint32) {
	_ = t.coll.Maps[blockioMapHists].Delete(dev)
}

// dropped sums the per-CPU count of records the ring buffer had no room
// for.
func (t *tracer) dropped() (uint64, error) {
	var perCPU []uint64
	if err := t.coll.Maps[blockioMapDropped].Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("read the drop counter: %w", err)
	}
	var n uint64
	for _, c := range perCPU {
		n += c
	}
	return n, nil
}

// Close detaches and unloads everything.
func (t *tracer) Close() error {
	var errs []error
	if t.rd != nil {
		errs = append(errs, t.rd.Close())
	}
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	if t.coll != nil {
		t.coll.Close()
	}
	return errors.Join(errs...)
}

// monoToWall turns a CLOCK_MONOTONIC time in ns (bpf_ktime_get_ns) into
// wall-clock time.
func monoToWall(ns uint64) time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Now()
	}
	now := time.Now().Round(0)
	return now.Add(-time.Duration(ts.Nano() - int64(ns)))
}
