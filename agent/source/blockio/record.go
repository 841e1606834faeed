package blockio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// kind says which programs produced a record, and so how its error and
// operation are spelled.
type kind uint8

const (
	// kindBTF: tp_btf programs; error is a blk_status_t, op the request's
	// REQ_OP_* number.
	kindBTF kind = 1
	// kindTracepoint: classic tracepoint programs; error is -errno, the
	// operation is in rwbs.
	kindTracepoint kind = 2
)

func (k kind) String() string {
	switch k {
	case kindBTF:
		return AttachBTF
	case kindTracepoint:
		return AttachTracepoint
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// recordSize is the size of struct event in bpf/blockio.c.
const recordSize = 48

// record is one failed request as the BPF program saw it.
type record struct {
	// KtimeNs is bpf_ktime_get_ns() at completion: CLOCK_MONOTONIC.
	KtimeNs uint64
	// Sector is the first 512-byte sector of the request (what was left
	// of it when it completed).
	Sector uint64
	// Dev is the kernel's dev_t of the disk: major<<20 | minor.
	Dev       uint32
	NrSectors uint32
	Error     int32
	Op        uint32
	Kind      kind
	RWBS      string
}

// Major and Minor split the kernel's dev_t (MINORBITS = 20).
func (r record) Major() uint32 { return r.Dev >> 20 }
func (r record) Minor() uint32 { return r.Dev & (1<<20 - 1) }

var errRecord = errors.New("malformed ring buffer record")

// decodeRecord decodes one ring buffer sample. It checks the size, the
// kind, that a block status fits its byte and that rwbs is printable; the
// rest is taken as the kernel wrote it.
func decodeRecord(b []byte) (record, error) {
	if len(b) < recordSize {
		return record{}, fmt.Errorf("%w: %d bytes, want %d", errRecord, len(b), recordSize)
	}
	le := binary.LittleEndian
	r := record{
		KtimeNs:   le.Uint64(b[0:]),
		Sector:    le.Uint64(b[8:]),
		Dev:       le.Uint32(b[16:]),
		NrSectors: le.Uint32(b[20:]),
		Error:     int32(le.Uint32(b[24:])),
		Op:        le.Uint32(b[28:]),
		Kind:      kind(b[32]),
	}
	switch {
	case r.Kind != kindBTF && r.Kind != kindTracepoint:
		return record{}, fmt.Errorf("%w: kind %d", errRecord, b[32])
	case r.Kind == kindBTF && (r.Error < 0 || r.Error > 255):
		// A blk_status_t is a byte.
		return record{}, fmt.Errorf("%w: block status %d", errRecord, r.Error)
	}
	rwbs := b[36:44]
	if i := bytes.IndexByte(rwbs, 0); i >= 0 {
		rwbs = rwbs[:i]
	}
	for _, c := range rwbs {
		if c < 0x21 || c > 0x7e {
			return record{}, fmt.Errorf("%w: rwbs %q", errRecord, rwbs)
		}
	}
	r.RWBS = string(rwbs)
	return r, nil
}

// encodeRecord is decodeRecord's inverse, for tests and fuzzing.
func encodeRecord(r record) []byte {
	b := make([]byte, recordSize)
	le := binary.LittleEndian
	le.PutUint64(b[0:], r.KtimeNs)
	le.PutUint64(b[8:], r.Sector)
	le.PutUint32(b[16:], r.Dev)
	le.PutUint32(b[20:], r.NrSectors)
	le.PutUint32(b[24:], uint32(r.Error))
	le.PutUint32(b[28:], r.Op)
	b[32] = byte(r.Kind)
	copy(b[36:44], r.RWBS)
	return b
}
