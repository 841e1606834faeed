package rasevent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// The records bpf/ras.c writes to the ring buffer, byte for byte. The C
// side pins these offsets with _Static_assert; TestRecordLayout checks them
// against the types bpf2go generated from the object's BTF.

// recordKind is the first field of every record.
type recordKind uint32

const (
	kindMCEvent       recordKind = 1
	kindMCERecord     recordKind = 2
	kindAEREvent      recordKind = 3
	kindMemoryFailure recordKind = 4
)

func (k recordKind) String() string {
	switch k {
	case kindMCEvent:
		return "mc_event"
	case kindMCERecord:
		return "mce_record"
	case kindAEREvent:
		return "aer_event"
	case kindMemoryFailure:
		return "memory_failure_event"
	}
	return fmt.Sprintf("kind %d", uint32(k))
}

// Sizes and offsets of the records.
const (
	hdrSize = 16

	mcRecSize       = 760
	mcMsgOff        = 56
	mcMsgCap        = 128
	mcLabelOff      = 184
	mcLabelCap      = 320
	mcDetailOff     = 504
	mcDetailCap     = 256
	mceRecSize      = 128
	aerRecSize      = 104
	aerDevOff       = 40
	aerDevCap       = 64
	mfRecSize       = 32
	mceHasSyndIPID  = 1
	mceHasPPIN      = 2
	mceHasMicrocode = 4
)

var le = binary.LittleEndian

// Decoding errors. A record that fails to decode is counted and logged,
// never half used.
var (
	errShort   = errors.New("record too short")
	errKind    = errors.New("unknown record kind")
	errGarbage = errors.New("malformed record")
)

// header starts every record.
type header struct {
	Kind recordKind
	// CPU the tracepoint fired on.
	CPU uint32
	// KtimeNS is CLOCK_MONOTONIC when it fired.
	KtimeNS uint64
}

// mcErrorType is enum hw_event_mc_err_type (include/linux/edac.h).
type mcErrorType uint32

const (
	mcCorrected   mcErrorType = 0
	mcUncorrected mcErrorType = 1
	mcDeferred    mcErrorType = 2
	mcFatal       mcErrorType = 3
	mcInfo        mcErrorType = 4
)

func (t mcErrorType) String() string {
	switch t {
	case mcCorrected:
		return "corrected"
	case mcUncorrected:
		return "uncorrected"
	case mcDeferred:
		return "deferred"
	case mcFatal:
		return "fatal"
	case mcInfo:
		return "info"
	}
	return fmt.Sprintf("type %d", uint32(t))
}

// mcEvent is one ras:mc_event: an error EDAC (or GHES) placed on a memory
// controller and, when it could, on a DIMM.
type mcEvent struct {
	header
	ErrorType  mcErrorType
	ErrorCount uint16
	MCIndex    uint8
	Layers     [3]int8 // top, middle, lower; -1 when unknown
	GrainBits  uint8
	Address    uint64
	Syndrome   uint64
	Msg        string
	Label      string
	Detail     string
	Truncated  []string // strings the BPF program had to cut
}

// mceRecord is one mce:mce_record: a machine check bank's registers.
type mceRecord struct {
	header
	MCGCap, MCGStatus, Status, Addr, Misc uint64
	Synd, IPID, IP, TSC, Walltime, PPIN   uint64
	ExtCPU, CPUID, APICID, SocketID       uint32
	Microcode                             uint32
	CS, Bank, Vendor                      uint8
	// Has says which optional fields the kernel had (mceHas*).
	Has uint8
}

// aerSeverity is the aer_event severity (include/linux/aer.h).
type aerSeverity uint8

const (
	aerNonFatal    aerSeverity = 0
	aerFatal       aerSeverity = 1
	aerCorrectable aerSeverity = 2
)

func (s aerSeverity) String() string {
	switch s {
	case aerNonFatal:
		return "non-fatal"
	case aerFatal:
		return "fatal"
	case aerCorrectable:
		return "corrected"
	}
	return fmt.Sprintf("severity %d", uint8(s))
}

// aerEvent is one ras:aer_event: an AER error reported for a PCIe device.
type aerEvent struct {
	header
	DevName   string
	Status    uint32
	Severity  aerSeverity
	TLPValid  bool
	TLPHeader [4]uint32
	Truncated bool
}

// memoryFailure is one memory_failure_event: the kernel's handling of a
// poisoned page.
type memoryFailure struct {
	header
	PFN    uint64
	Type   int32 // enum mf_action_page_type
	Result int32 // enum mf_result
}

// decode decodes one ring buffer record into *mcEvent, *mceRecord,
// *aerEvent or *memoryFailure. Records whose length does not match their
// kind, or whose fields are out of range, are errors: the BPF program
// writes fixed layouts, so anything else is not from it.
func decode(b []byte) (any, error) {
	if len(b) < hdrSize {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", errShort, len(b), hdrSize)
	}
	h := header{Kind: recordKind(le.Uint32(b)), CPU: le.Uint32(b[4:]), KtimeNS: le.Uint64(b[8:])}
	switch h.Kind {
	case kindMCEvent:
		return untyped(decodeMCEvent(h, b))
	case kindMCERecord:
		return untyped(decodeMCERecord(h, b))
	case kindAEREvent:
		return untyped(decodeAEREvent(h, b))
	case kindMemoryFailure:
		return untyped(decodeMemoryFailure(h, b))
	}
	return nil, fmt.Errorf("%w %d (%d bytes)", errKind, uint32(h.Kind), len(b))
}

// untyped keeps a failed decode from returning a typed nil as a non-nil
// interface.
func untyped[T any](v *T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

func checkSize(h header, b []byte, want int) error {
	if len(b) != want {
		if len(b) < want {
			return fmt.Errorf("%s: %w: %d bytes, want %d", h.Kind, errShort, len(b), want)
		}
		return fmt.Errorf("%s: %w: %d bytes, want %d", h.Kind, errGarbage, len(b), want)
	}
	return nil
}

func decodeMCEvent(h header, b []byte) (*mcEvent, error) {
	if err := checkSize(h, b, mcRecSize); err != nil {
		return nil, err
	}
	e := &mcEvent{
		header:     h,
		ErrorType:  mcErrorType(le.Uint32(b[16:])),
		ErrorCount: le.Uint16(b[20:]),
		MCIndex:    b[22],
		Layers:     [3]int8{int8(b[23]), int8(b[24]), int8(b[25])},
		GrainBits:  b[26],
		Address:    le.Uint64(b[40:]),
		Syndrome:   le.Uint64(b[48:]),
	}
	if e.ErrorType > mcInfo {
		return nil, fmt.Errorf("mc_event: %w: error_type %d", errGarbage, uint32(e.ErrorType))
	}
	var err error
	for _, f := range [...]struct {
		name     string
		off, cap int
		kernLen  uint16
		dst      *string
	}{
		{"msg", mcMsgOff, mcMsgCap, le.Uint16(b[28:]), &e.Msg},
		{"label", mcLabelOff, mcLabelCap, le.Uint16(b[30:]), &e.Label},
		{"driver_detail", mcDetailOff, mcDetailCap, le.Uint16(b[32:]), &e.Detail},
	} {
		var cut bool
		*f.dst, cut, err = cString(b[f.off:f.off+f.cap], f.kernLen)
		if err != nil {
			return nil, fmt.Errorf("mc_event: %s: %w", f.name, err)
		}
		if cut {
			e.Truncated = append(e.Truncated, f.name)
		}
	}
	return e, nil
}

func decodeMCERecord(h header, b []byte) (*mceRecord, error) {
	if err := checkSize(h, b, mceRecSize); err != nil {
		return nil, err
	}
	r := &mceRecord{
		header:    h,
		MCGCap:    le.Uint64(b[16:]),
		MCGStatus: le.Uint64(b[24:]),
		Status:    le.Uint64(b[32:]),
		Addr:      le.Uint64(b[40:]),
		Misc:      le.Uint64(b[48:]),
		Synd:      le.Uint64(b[56:]),
		IPID:      le.Uint64(b[64:]),
		IP:        le.Uint64(b[72:]),
		TSC:       le.Uint64(b[80:]),
		Walltime:  le.Uint64(b[88:]),
		PPIN:      le.Uint64(b[96:]),
		ExtCPU:    le.Uint32(b[104:]),
		CPUID:     le.Uint32(b[108:]),
		APICID:    le.Uint32(b[112:]),
		SocketID:  le.Uint32(b[116:]),
		Microcode: le.Uint32(b[120:]),
		CS:        b[124],
		Bank:      b[125],
		Vendor:    b[126],
		Has:       b[127],
	}
	if r.Has&^(mceHasSyndIPID|mceHasPPIN|mceHasMicrocode) != 0 {
		return nil, fmt.Errorf("mce_record: %w: flags %#x", errGarbage, r.Has)
	}
	if r.Status&mciVAL == 0 {
		// The kernel logs valid banks only: VAL clear is not a record of
		// an error.
		return nil, fmt.Errorf("mce_record: %w: MCi_STATUS %#016x has VAL clear", errGarbage, r.Status)
	}
	return r, nil
}

func decodeAEREvent(h header, b []byte) (*aerEvent, error) {
	if err := checkSize(h, b, aerRecSize); err != nil {
		return nil, err
	}
	e := &aerEvent{
		header:   h,
		Status:   le.Uint32(b[16:]),
		Severity: aerSeverity(b[20]),
	}
	if e.Severity > aerCorrectable {
		return nil, fmt.Errorf("aer_event: %w: severity %d", errGarbage, b[20])
	}
	switch b[21] {
	case 0:
	case 1:
		e.TLPValid = true
	default:
		return nil, fmt.Errorf("aer_event: %w: tlp_header_valid %d", errGarbage, b[21])
	}
	for i := range e.TLPHeader {
		e.TLPHeader[i] = le.Uint32(b[24+4*i:])
	}
	var err error
	e.DevName, e.Truncated, err = cString(b[aerDevOff:aerDevOff+aerDevCap], le.Uint16(b[22:]))
	if err != nil {
		return nil, fmt.Errorf("aer_event: dev_name: %w", err)
	}
	if e.DevName == "" {
		return nil, fmt.Errorf("aer_event: %w: empty dev_name", errGarbage)
	}
	return e, nil
}

func decodeMemoryFailure(h header, b []byte) (*memoryFailure, error) {
	if err := checkSize(h, b, mfRecSize); err != nil {
		return nil, err
	}
	return &memoryFailure{
		header: h,
		PFN:    le.Uint64(b[16:]),
		Type:   int32(le.Uint32(b[24:])),
		Result: int32(le.Uint32(b[28:])),
	}, nil
}

// cString returns the NUL-terminated string at the start of buf, made valid
// UTF-8 (protobuf strings must be), and whether the BPF program cut it:
// kernLen, the kernel's length with its NUL, did not fit.
func cString(buf []byte, kernLen uint16) (string, bool, error) {
	n := bytes.IndexByte(buf, 0)
	if n < 0 {
		return "", false, fmt.Errorf("%w: string not NUL-terminated", errGarbage)
	}
	return strings.ToValidUTF8(string(buf[:n]), "\uFFFD"), int(kernLen) > len(buf), nil
}
