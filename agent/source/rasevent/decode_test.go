//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package rasevent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// The test records are built from the Go types bpf2go generated from the
// object's BTF (rasRec*), so they are laid out exactly as bpf/ras.c writes
// them; decode.go's hand-written offsets are checked against them.

func cstr[T ~int8](dst []T, s string) {
	clear(dst)
	for i := 0; i < len(s) && i < len(dst); i++ {
		dst[i] = T(s[i])
	}
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// mcRec returns an mc_event record with the kernel lengths of its strings
// set as the kernel sets them (length with the NUL).
func mcRec(t testing.TB, typ mcErrorType, count uint16, label, msg, detail string, edit ...func(*rasRecMcEvent)) []byte {
	r := rasRecMcEvent{ErrorType: uint32(typ), ErrorCount: count, TopLayer: -1, MiddleLayer: -1, LowerLayer: -1}
	r.Hdr.Kind, r.Hdr.Cpu, r.Hdr.KtimeNs = uint32(kindMCEvent), 1, 12345
	cstr(r.Msg[:len(r.Msg)-1], msg)
	cstr(r.Label[:len(r.Label)-1], label)
	cstr(r.DriverDetail[:len(r.DriverDetail)-1], detail)
	r.MsgLen, r.LabelLen, r.DetailLen = uint16(len(msg)+1), uint16(len(label)+1), uint16(len(detail)+1)
	for _, e := range edit {
		e(&r)
	}
	return encode(t, &r)
}

func mceRec(t testing.TB, status uint64, edit ...func(*rasRecMceRecord)) []byte {
	r := rasRecMceRecord{Status: status, Cpu: 3, Bank: 7, Socketid: 1, Flags: mceHasSyndIPID | mceHasPPIN | mceHasMicrocode}
	r.Hdr.Kind, r.Hdr.Cpu, r.Hdr.KtimeNs = uint32(kindMCERecord), 3, 777
	for _, e := range edit {
		e(&r)
	}
	return encode(t, &r)
}

func aerRec(t testing.TB, dev string, sev aerSeverity, status uint32, edit ...func(*rasRecAerEvent)) []byte {
	r := rasRecAerEvent{Status: status, Severity: uint8(sev), DevNameLen: uint16(len(dev) + 1)}
	r.Hdr.Kind = uint32(kindAEREvent)
	cstr(r.DevName[:len(r.DevName)-1], dev)
	for _, e := range edit {
		e(&r)
	}
	return encode(t, &r)
}

func mfRec(t testing.TB, pfn uint64, typ, result int32) []byte {
	r := rasRecMemoryFailure{Pfn: pfn, Type: typ, Result: result}
	r.Hdr.Kind = uint32(kindMemoryFailure)
	return encode(t, &r)
}

func TestRecordLayout(t *testing.T) {
	off := func(v any, field string) int {
		f, ok := reflect.TypeOf(v).FieldByName(field)
		if !ok {
			t.Fatalf("%T has no field %s", v, field)
		}
		return int(f.Offset)
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"mc_event size", int(unsafe.Sizeof(rasRecMcEvent{})), mcRecSize},
		{"mc_event msg", off(rasRecMcEvent{}, "Msg"), mcMsgOff},
		{"mc_event msg cap", len(rasRecMcEvent{}.Msg), mcMsgCap},
		{"mc_event label", off(rasRecMcEvent{}, "Label"), mcLabelOff},
		{"mc_event label cap", len(rasRecMcEvent{}.Label), mcLabelCap},
		{"mc_event driver_detail", off(rasRecMcEvent{}, "DriverDetail"), mcDetailOff},
		{"mc_event driver_detail cap", len(rasRecMcEvent{}.DriverDetail), mcDetailCap},
		{"mc_event address", off(rasRecMcEvent{}, "Address"), 40},
		{"mc_event syndrome", off(rasRecMcEvent{}, "Syndrome"), 48},
		{"mc_event msg_len", off(rasRecMcEvent{}, "MsgLen"), 28},
		{"mce_record size", int(unsafe.Sizeof(rasRecMceRecord{})), mceRecSize},
		{"mce_record cpu", off(rasRecMceRecord{}, "Cpu"), 104},
		{"mce_record flags", off(rasRecMceRecord{}, "Flags"), 127},
		{"aer_event size", int(unsafe.Sizeof(rasRecAerEvent{})), aerRecSize},
		{"aer_event dev_name", off(rasRecAerEvent{}, "DevName"), aerDevOff},
		{"aer_event dev_name cap", len(rasRecAerEvent{}.DevName), aerDevCap},
		{"aer_event tlp_header", off(rasRecAerEvent{}, "TlpHeader"), 24},
		{"memory_failure size", int(unsafe.Sizeof(rasRecMemoryFailure{})), mfRecSize},
	} {
		if c.got != c.want {
			t.Errorf("%s: object has %d, decode.go has %d", c.name, c.got, c.want)
		}
	}
}

// TestDecodeEveryField fills every field of each record with a distinct
// value and checks that the decoder reads each back from its place.
func TestDecodeEveryField(t *testing.T) {
	t.Run("mc_event", func(t *testing.T) {
		b := mcRec(t, mcUncorrected, 513, "CPU_SrcID#0_Ha#0_Chan#1_DIMM#0", "memory read error", "area:DRAM err_code:0001:0090", func(r *rasRecMcEvent) {
			r.Hdr.Cpu, r.Hdr.KtimeNs = 5, 0x1122334455667788
			r.McIndex, r.TopLayer, r.MiddleLayer, r.LowerLayer, r.GrainBits = 2, 0, 1, -1, 5
			r.Address, r.Syndrome = 0x12345000, 0xdeadbeef
		})
		ev, err := decode(b)
		if err != nil {
			t.Fatal(err)
		}
		want := &mcEvent{
			header:    header{Kind: kindMCEvent, CPU: 5, KtimeNS: 0x1122334455667788},
			ErrorType: mcUncorrected, ErrorCount: 513, MCIndex: 2, Layers: [3]int8{0, 1, -1}, GrainBits: 5,
			Address: 0x12345000, Syndrome: 0xdeadbeef,
			Msg: "memory read error", Label: "CPU_SrcID#0_Ha#0_Chan#1_DIMM#0", Detail: "area:DRAM err_code:0001:0090",
		}
		if !reflect.DeepEqual(ev, want) {
			t.Errorf("decoded\n%+v\nwant\n%+v", ev, want)
		}
	})
	t.Run("mce_record", func(t *testing.T) {
		b := mceRec(t, mciVAL|mciUC|mciEN|0x0090, func(r *rasRecMceRecord) {
			r.Mcgcap, r.Mcgstatus, r.Addr, r.Misc, r.Synd, r.Ipid = 1, 2, 3, 4, 5, 6
			r.Ip, r.Tsc, r.Walltime, r.Ppin = 7, 8, 9, 10
			r.Cpu, r.Cpuid, r.Apicid, r.Socketid, r.Microcode = 11, 12, 13, 14, 15
			r.Cs, r.Bank, r.Cpuvendor = 16, 17, 2
		})
		ev, err := decode(b)
		if err != nil {
			t.Fatal(err)
		}
		want := &mceRecord{
			header: header{Kind: kindMCERecord, CPU: 3, KtimeNS: 777},
			MCGCap: 1, MCGStatus: 2, Status: mciVAL | mciUC | mciEN | 0x0090, Addr: 3, Misc: 4, Synd: 5, IPID: 6,
			IP: 7, TSC: 8, Walltime: 9, PPIN: 10, ExtCPU: 11, CPUID: 12, APICID: 13, SocketID: 14, Microcode: 15,
			CS: 16, Bank: 17, Vendor: 2, Has: mceHasSyndIPID | mceHasPPIN | mceHasMicrocode,
		}
		if !reflect.DeepEqual(ev, want) {
			t.Errorf("decoded\n%+v\nwant\n%+v", ev, want)
		}
	})
	t.Run("aer_event", func(t *testing.T) {
		b := aerRec(t, "0000:3b:00.0", aerFatal, 0x00040000, func(r *rasRecAerEvent) {
			r.Hdr.Cpu = 9
			r.TlpHeaderValid = 1
			r.TlpHeader = [4]uint32{0x4a000001, 0x0100000f, 0x3b000000, 0xdeadbeef}
		})
		ev, err := decode(b)
		if err != nil {
			t.Fatal(err)
		}
		want := &aerEvent{
			header:  header{Kind: kindAEREvent, CPU: 9},
			DevName: "0000:3b:00.0", Status: 0x00040000, Severity: aerFatal, TLPValid: true,
			TLPHeader: [4]uint32{0x4a000001, 0x0100000f, 0x3b000000, 0xdeadbeef},
		}
		if !reflect.DeepEqual(ev, want) {
			t.Errorf("decoded\n%+v\nwant\n%+v", ev, want)
		}
	})
	t.Run("memory_failure_event", func(t *testing.T) {
		ev, err := decode(mfRec(t, 0x1234567, 12, 1))
		if err != nil {
			t.Fatal(err)
		}
		want := &memoryFailure{header: header{Kind: kindMemoryFailure}, PFN: 0x1234567, Type: 12, Result: 1}
		if !reflect.DeepEqual(ev, want) {
			t.Errorf("decoded %+v, want %+v", ev, want)
		}
	})
}

func TestDecodeRejects(t *testing.T) {
	good := map[recordKind][]byte{
		kindMCEvent:       mcRec(t, mcCorrected, 1, "DIMM_A1", "", ""),
		kindMCERecord:     mceRec(t, mciVAL|mciEN),
		kindAEREvent:      aerRec(t, "0000:00:01.0", aerCorrectable, 1),
		kindMemoryFailure: mfRec(t, 1, 0, 0),
	}
	mut := func(k recordKind, f func([]byte) []byte) []byte {
		return f(bytes.Clone(good[k]))
	}
	tests := []struct {
		name string
		rec  []byte
		want error
		msg  string
	}{
		{"empty", nil, errShort, "0 bytes"},
		{"header cut", good[kindMCEvent][:15], errShort, "15 bytes"},
		{"unknown kind", mut(kindMCEvent, func(b []byte) []byte { b[0] = 9; return b }), errKind, "kind 9"},
		{"kind zero", make([]byte, 64), errKind, "kind 0"},
		{"mc_event cut", good[kindMCEvent][:mcRecSize-1], errShort, "mc_event"},
		{"mc_event only header", good[kindMCEvent][:hdrSize], errShort, "want 760"},
		{"mc_event too long", append(bytes.Clone(good[kindMCEvent]), 0), errGarbage, "761 bytes"},
		{"mc_event error_type", mut(kindMCEvent, func(b []byte) []byte { b[16] = 5; return b }), errGarbage, "error_type 5"},
		{"mc_event label without NUL", mut(kindMCEvent, func(b []byte) []byte {
			for i := mcLabelOff; i < mcLabelOff+mcLabelCap; i++ {
				b[i] = 'x'
			}
			return b
		}), errGarbage, "label"},
		{"mc_event msg without NUL", mut(kindMCEvent, func(b []byte) []byte {
			for i := mcMsgOff; i < mcMsgOff+mcMsgCap; i++ {
				b[i] = 'x'
			}
			return b
		}), errGarbage, "msg"},
		{"mce_record cut", good[kindMCERecord][:100], errShort, "mce_record"},
		{"mce_record VAL clear", mut(kindMCERecord, func(b []byte) []byte { b[39] &^= 0x80; return b }), errGarbage, "VAL clear"},
		{"mce_record flags", mut(kindMCERecord, func(b []byte) []byte { b[127] = 0x80; return b }), errGarbage, "flags"},
		{"aer_event cut", good[kindAEREvent][:aerRecSize-8], errShort, "aer_event"},
		{"aer_event severity", mut(kindAEREvent, func(b []byte) []byte { b[20] = 3; return b }), errGarbage, "severity 3"},
		{"aer_event tlp valid", mut(kindAEREvent, func(b []byte) []byte { b[21] = 2; return b }), errGarbage, "tlp_header_valid"},
		{"aer_event empty dev", mut(kindAEREvent, func(b []byte) []byte { b[aerDevOff] = 0; return b }), errGarbage, "empty dev_name"},
		{"aer_event dev without NUL", mut(kindAEREvent, func(b []byte) []byte {
			for i := aerDevOff; i < aerDevOff+aerDevCap; i++ {
				b[i] = '0'
			}
			return b
		}), errGarbage, "dev_name"},
		{"memory_failure cut", good[kindMemoryFailure][:24], errShort, "memory_failure_event"},
		{"memory_failure too long", append(bytes.Clone(good[kindMemoryFailure]), 1, 2, 3), errGarbage, "35 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := decode(tc.rec)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("decode = %v, %v; want %v mentioning %q", ev, err, tc.want, tc.msg)
			}
			if ev != nil {
				t.Errorf("a failed decode returned %+v", ev)
			}
		})
	}
	for k, b := range good {
		if _, err := decode(b); err != nil {
			t.Errorf("the good %s record does not decode: %v", k, err)
		}
	}
}

func TestDecodeStrings(t *testing.T) {
	t.Run("cut by the BPF program", func(t *testing.T) {
		long := strings.Repeat("DIMM_A1 or ", 40) // 440 bytes: more than the label's 320
		b := mcRec(t, mcCorrected, 1, long, "m", "", func(r *rasRecMcEvent) { r.LabelLen = uint16(len(long) + 1) })
		ev, err := decode(b)
		if err != nil {
			t.Fatal(err)
		}
		e := ev.(*mcEvent)
		if len(e.Label) != mcLabelCap-1 || !strings.HasPrefix(long, e.Label) {
			t.Errorf("label %q (%d bytes), want the first %d bytes", e.Label, len(e.Label), mcLabelCap-1)
		}
		if !reflect.DeepEqual(e.Truncated, []string{"label"}) {
			t.Errorf("Truncated = %q, want [label]", e.Truncated)
		}
	})
	t.Run("invalid UTF-8 replaced", func(t *testing.T) {
		ev, err := decode(mcRec(t, mcCorrected, 1, "DIMM\xff\xfeA1", "", ""))
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.(*mcEvent).Label; got != "DIMM\uFFFDA1" {
			t.Errorf("label %q", got)
		}
	})
	t.Run("bytes after the NUL ignored", func(t *testing.T) {
		b := mcRec(t, mcCorrected, 1, "DIMM_B2", "", "", func(r *rasRecMcEvent) {
			cstr(r.Label[8:20], "leftover") // ring buffer memory is not cleared
		})
		ev, err := decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.(*mcEvent).Label; got != "DIMM_B2" {
			t.Errorf("label %q", got)
		}
	})
}
