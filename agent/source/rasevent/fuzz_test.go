//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package rasevent

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
)

// fuzzRecord decodes b as a record of kind (the kind field forced, so the
// fuzzer spends its time inside that decoder) and checks what a decoded
// record turns into: a fault that marshals, with a part and a summary.
func fuzzRecord(t *testing.T, kind recordKind, b []byte) {
	if len(b) >= 4 {
		binary.LittleEndian.PutUint32(b, uint32(kind))
	}
	ev, err := decode(b)
	if err != nil {
		if ev != nil {
			t.Fatalf("error %v with a record %+v", err, ev)
		}
		if !errors.Is(err, errShort) && !errors.Is(err, errGarbage) && !errors.Is(err, errKind) {
			t.Fatalf("error %v is none of the decoding errors", err)
		}
		return
	}
	var f finding
	switch e := ev.(type) {
	case *mcEvent:
		f = e.classify("ras:mc_event")
	case *mceRecord:
		f = e.classify("mce:mce_record")
	case *aerEvent:
		f = e.classify("ras:aer_event")
	case *memoryFailure:
		f = e.classify("ras:memory_failure_event", defaultNames())
	default:
		t.Fatalf("decoded %T", ev)
	}
	if f.part.GetName() == "" {
		t.Fatalf("no part name for %+v", ev)
	}
	tl := newTally(time.Minute)
	fault := tl.add(f, time.Unix(0, 0))
	obs, _ := tl.flush(time.Unix(1, 0))
	if fault == nil {
		if f.class != "" {
			t.Fatalf("first %s of a part held back", f.class)
		}
		return
	}
	if fault.GetSummary() == "" || !utf8.ValidString(fault.GetSummary()) {
		t.Fatalf("summary %q", fault.GetSummary())
	}
	if _, err := proto.Marshal(fault); err != nil {
		t.Fatalf("fault does not marshal: %v", err)
	}
	for _, o := range obs {
		if _, err := proto.Marshal(o); err != nil {
			t.Fatalf("observation does not marshal: %v", err)
		}
	}
}

func FuzzDecodeMCEvent(f *testing.F) {
	f.Add(mcRec(f, mcCorrected, 1, "CPU_SrcID#0_Ha#0_Chan#1_DIMM#0", "memory read error", "area:DRAM err_code:0001:0090"))
	f.Add(mcRec(f, mcUncorrected, 2, "unknown memory", "", ""))
	f.Add(mcRec(f, mcDeferred, 0, "DIMM\xff", "x", "y"))
	f.Add(make([]byte, mcRecSize))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRecord(t, kindMCEvent, b) })
}

func FuzzDecodeMCERecord(f *testing.F) {
	f.Add(mceRec(f, mciVAL|mciEN|0x009f))
	f.Add(mceRec(f, mciVAL|mciUC|mciPCC|mciEN|mciADDRV|mciMISCV, func(r *rasRecMceRecord) { r.Cpuvendor = vendorAMD }))
	f.Add(mceRec(f, mciVAL|mciDeferred, func(r *rasRecMceRecord) { r.Cpuvendor, r.Flags = vendorHygon, 0 }))
	f.Add(make([]byte, mceRecSize))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRecord(t, kindMCERecord, b) })
}

func FuzzDecodeAEREvent(f *testing.F) {
	f.Add(aerRec(f, "0000:3b:00.0", aerCorrectable, 1<<6))
	f.Add(aerRec(f, "0000:0c:00.0", aerFatal, 1<<22, func(r *rasRecAerEvent) { r.TlpHeaderValid = 1 }))
	f.Add(aerRec(f, "x", aerNonFatal, 0xffffffff))
	f.Add(make([]byte, aerRecSize))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRecord(t, kindAEREvent, b) })
}

func FuzzDecodeMemoryFailure(f *testing.F) {
	f.Add(mfRec(f, 0x12345, 12, 3))
	f.Add(mfRec(f, 1<<63, -1, -1))
	f.Add(make([]byte, mfRecSize))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRecord(t, kindMemoryFailure, b) })
}

// FuzzDecode feeds any bytes, kind included.
func FuzzDecode(f *testing.F) {
	f.Add(mcRec(f, mcFatal, 1, "DIMM_A1", "", ""))
	f.Add(mfRec(f, 1, 2, 3))
	f.Add([]byte{})
	f.Add([]byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decode(b)
		if (ev == nil) == (err == nil) {
			t.Fatalf("decode = %v, %v", ev, err)
		}
		if err == nil && len(b) >= 4 {
			fuzzRecord(t, recordKind(binary.LittleEndian.Uint32(b)), b)
		}
	})
}
