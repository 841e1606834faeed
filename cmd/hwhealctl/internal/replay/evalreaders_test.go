package replay

import (
	"bytes"
	"compress/gzip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hwheal/hwheal/pkg/kernlog"
)

var (
	sampleBlocks = filepath.Join(corpusDir, "lkml_archives/sample.blocks.jsonl")
	sampleBGL    = filepath.Join(corpusDir, "loghub/BGL/BGL_2k.log")
	npdConfig    = filepath.Join(corpusDir, "node-problem-detector/config")
	npdProblems  = filepath.Join(corpusDir, "node-problem-detector/test/kernel_log_generator/problems")
)

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestReadBlocks reads the copied excerpts, plain and gzipped, and
// rejects records that are not blocks with the file and line named.
func TestReadBlocks(t *testing.T) {
	data := readTestFile(t, sampleBlocks)
	for name, in := range map[string][]byte{"plain": data, "gzip": gz(t, data)} {
		var got []LabeledBlock
		if err := ReadBlocks(bytes.NewReader(in), "b.jsonl", func(b LabeledBlock) error { got = append(got, b); return nil }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != 8 {
			t.Fatalf("%s: %d blocks", name, len(got))
		}
		// pci 72: 12 lines, pcie_aer, its lore link
		b := got[5]
		if len(b.Lines) != 12 || b.NLines != 12 || !slices.Equal(b.Categories, []string{"pcie_aer"}) || b.Row != 6 ||
			b.URL != "https://lore.kernel.org/r/lakgphb7ym3cybwmpdqyipzi4tlkwbfijzhd4r6hvhho3pc7iu@6ludgw6wqkjh" {
			t.Errorf("%s: block 6 %+v", name, b)
		}
	}
	// The corpus keeps the first 200 lines of a longer excerpt.
	var cut LabeledBlock
	if err := ReadBlocks(strings.NewReader(`{"categories":["ata"],"n_lines":216,"lines":["ata1: x"]}`), "b", func(b LabeledBlock) error { cut = b; return nil }); err != nil || cut.NLines != 216 {
		t.Errorf("truncated block %+v: %v", cut, err)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"categories":["ata"],"lines":[]}`, "b.jsonl: line 1: want lines"},
		{`{"lines":["x"]}`, "b.jsonl: line 1: want categories"},
		{`{"categories":[" "],"lines":["x"]}`, "b.jsonl: line 1: want categories"},
		{`{"categories":["ata"],"lines":["x","y"],"n_lines":1}`, "b.jsonl: line 1: n_lines 1 but 2 lines"},
		{"\n" + `{"categories":"ata","lines":["x"]}`, "b.jsonl: line 2: json: cannot unmarshal"},
		{`{"categories":["ata"],`, "b.jsonl: line 1: unexpected end of JSON input"},
		{"\x1f\x8b\x08garbage", "b.jsonl: "},
	} {
		err := ReadBlocks(strings.NewReader(tc.in), "b.jsonl", func(LabeledBlock) error { return nil })
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestLineLabels: a message is a fault when any of its records is, a
// detail line makes a block unlabeled rather than benign, and a line is
// looked up by its message whatever its prefixes.
func TestLineLabels(t *testing.T) {
	ll := newLineLabels(kernlog.Parser{})
	ll.add("[    1.0] ata1.00: failed command: READ DMA", "ata", VerdictBenign)
	ll.add("[    2.0] ata1.00: failed command: READ DMA", "ata", VerdictFault)
	ll.add("[    3.0] ata1.00: failed command: READ DMA", "ata", VerdictBenign)
	ll.add("ata1.00: status: { DRDY ERR }", "ata", VerdictBenign)
	ll.add("ata1.00: status: { DRDY ERR }", "ata", "")
	ll.add("ata1: SATA link up 6.0 Gbps", "ata", VerdictBenign)
	ll.add("2026-02-13T12:47:34.505714+01:00 [T449218] mce: [Hardware Error]: Machine check events logged", "mce", VerdictFault)
	for _, tc := range []struct {
		lines []string
		want  string
		cats  []string
	}{
		{[]string{"   kernel: ata1.00: failed command: READ DMA"}, VerdictFault, []string{"ata"}},
		{[]string{"Feb 13 12:47:34 h kernel: [ 9.1] ata1: SATA link up 6.0 Gbps", "[ 5.0][  T12] ata1.00: failed command: READ DMA"}, VerdictFault, []string{"ata"}},
		{[]string{"[   12.345678] [    T1] mce: [Hardware Error]: Machine check events logged"}, VerdictFault, []string{"mce"}},
		{[]string{"ata1: SATA link up 6.0 Gbps", "", "  "}, VerdictBenign, nil},
		{[]string{"ata1: SATA link up 6.0 Gbps", "ata1.00: status: { DRDY ERR }"}, "", nil},
		{[]string{"ata1: SATA link up 6.0 Gbps", "usb 1-1: new device"}, "", nil},
	} {
		got := ll.label(LabeledBlock{Lines: tc.lines})
		var cats []string
		for c := range got.cats {
			cats = append(cats, c)
		}
		if got.verdict != tc.want || !slices.Equal(cats, tc.cats) {
			t.Errorf("%q: %q %v, want %q %v", tc.lines, got.verdict, cats, tc.want, tc.cats)
		}
	}
}

// TestReadBGL reads the copied BGL lines and rejects lines that are not
// BGL's.
func TestReadBGL(t *testing.T) {
	alerts := map[string]int{}
	var first BGLLine
	err := ReadBGL(bytes.NewReader(readTestFile(t, sampleBGL)), "bgl", func(l BGLLine) error {
		if l.Row == 1 {
			first = l
		}
		alerts[l.Alert]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if alerts[""] != 10 || alerts["APPREAD"] != 2 || alerts["KERNDTLB"] != 3 || len(alerts) != 3 {
		t.Errorf("alerts %v", alerts)
	}
	if first != (BGLLine{Component: "KERNEL", Level: "INFO", Content: "instruction cache parity error corrected", Row: 1}) {
		t.Errorf("line 1 %+v", first)
	}
	for _, tc := range []struct{ in, want string }{
		{"- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872", "bgl: line 1: 5 of BGL's 10"},
		{"\nkerndtlb 1118536327 2005.06.11 R30 t R30 RAS KERNEL FATAL data TLB error interrupt", "bgl: line 2: \"kerndtlb\" \"1118536327\" is not an alert tag"},
		{"KERNDTLB 2005.06.11 R30 t R30 RAS KERNEL FATAL data TLB error interrupt", "bgl: line 1: \"KERNDTLB\" \"2005.06.11\" is not"},
		{"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4", "bgl: line 1: \"Jun\" \"14\" is not"},
	} {
		err := ReadBGL(strings.NewReader(tc.in), "bgl", func(BGLLine) error { return nil })
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestNPDLabeler: the shipped kmsg monitors are the ones read; a rule
// fires when its pattern matches the end of the buffer, as in NPD, so a
// multi-line pattern needs its lines within bufferSize.
func TestNPDLabeler(t *testing.T) {
	l, err := LoadNPDConfigDir(npdConfig)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range l.monitors {
		names = append(names, filepath.Base(m.Name)+":"+m.Source)
	}
	if !slices.Equal(names, []string{"kernel-monitor.json:kernel-monitor", "readonly-monitor.json:readonly-monitor"}) {
		t.Errorf("monitors %q", names)
	}
	var fired []string
	err = l.Label(bytes.NewReader(readTestFile(t, filepath.Join(npdProblems, "docker_hung"))), "docker_hung", func(line string, row int, reasons []string) error {
		if len(reasons) > 0 {
			fired = append(fired, strings.Join(reasons, "+")+"@"+itoa(row))
		}
		if strings.HasPrefix(line, " ") || strings.HasSuffix(line, " ") {
			t.Errorf("line %d not trimmed: %q", row, line)
		}
		return nil
	})
	if err != nil || !slices.Equal(fired, []string{"DockerHung+TaskHung@1"}) {
		t.Errorf("docker_hung fired %q, %v", fired, err)
	}

	multi := func(size int) []string {
		m, err := ReadNPDMonitor(strings.NewReader(`{"plugin":"kmsg","bufferSize":`+itoa(size)+`,"rules":[{"type":"temporary","reason":"Pair","pattern":"first\\nsecond"}]}`), "m.json")
		if err != nil {
			t.Fatal(err)
		}
		l, err := NewNPDLabeler([]NPDMonitor{m})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		l.Label(strings.NewReader("first\nsecond\nsecond\n\nfirst\n  second  \n"), "s", func(line string, row int, reasons []string) error {
			got = append(got, strings.Join(reasons, ""))
			return nil
		})
		return got
	}
	if got := multi(10); !slices.Equal(got, []string{"", "Pair", "", "", "Pair"}) {
		t.Errorf("buffer 10: %q", got)
	}
	if got := multi(1); !slices.Equal(got, []string{"", "", "", "", ""}) {
		t.Errorf("buffer 1: %q", got)
	}

	for _, tc := range []struct{ in, want string }{
		{`{"plugin":"kmsg","rules":[{"reason":"X","pattern":"("}]}`, "c.json: rule X: error parsing regexp"},
		{`{"plugin":"kmsg","rules":[{"pattern":"x"}]}`, "c.json: rule 1: no reason"},
		{`["plugin"]`, "c.json: json: cannot unmarshal array"},
	} {
		if _, err := ReadNPDMonitor(strings.NewReader(tc.in), "c.json"); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.in, err, tc.want)
		}
	}
	journald, err := ReadNPDMonitor(bytes.NewReader(readTestFile(t, filepath.Join(npdConfig, "docker-monitor.json"))), "docker-monitor.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewNPDLabeler([]NPDMonitor{journald}); err == nil {
		t.Error("a journald monitor alone gave a labeler")
	}
	if _, err := LoadNPDConfigDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no node-problem-detector monitor with plugin kmsg") {
		t.Errorf("empty config dir: %v", err)
	}
}

func itoa(n int) string { return strings.TrimSpace(frac(n, nil)) }

// TestGPUDCatalog labels lines of gpud's logs as gpud and NVIDIA read
// them; the first entry that matches decides.
func TestGPUDCatalog(t *testing.T) {
	cat := GPUDCatalog()
	for _, tc := range []struct {
		line, category string
		fault          bool
	}{
		{"[Sun Feb 23 16:24:18 2025] NVRM: Xid (PCI:0000:9b:00): 119, pid=2024380, name=nvidia-smi, Timeout after 6s of waiting for RPC response from GPU4 GSP!", "gpu_xid", true},
		{"[Sun Feb 23 16:24:18 2025] NVRM: GPU4 GSP RPC buffer contains function 103 (GSP_RM_ALLOC)", "benign", false},
		{"nvidia-nvswitch3: SXid (PCI:0000:86:00.0): 12028, Non-fatal, Link 32 egress non-posted PRIV error (First)", "gpu_sxid", true},
		{"EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0", "memory_ce", true},
		{"kern  :warn  : 2025-01-21T08:44:30,287197+00:00 Out of memory: Kill process 456 (python) score 50 or sacrifice child", "oom (not hardware)", false},
		{"kern  :warn  : 2025-01-21T08:41:30,287197+00:00 oom_reaper: reaped process 345646 (vector), now anon-rss:0kB", "benign", false},
		{"kern  :warn  : 2025-01-21T04:41:44,285060+00:00 VFS: file-max limit 1000000 reached", "file-max (not hardware)", false},
		{"pt_main_thread[2536443]: segfault at 7f797fe00000 ip 00007f7c7ac69996 sp 00007f7c12fd7c30 error 4 in libnccl.so.2[7f7c7ac00000+d3d3000]", "nccl segfault (not hardware)", false},
		{"6,3973,227996636,-;nvidia-peermem nv_get_p2p_free_callback:127 ERROR detected invalid context, skipping further processing", "peermem (not hardware)", false},
		{"<0>[ 3098.275469] Kernel panic - not syncing: Test panic triggered by crash_test module", "kernel crash (not hardware)", false},
		{"<4>[  201.670809] Oops: 0002 [#1] SMP", "kernel crash (not hardware)", false},
		{"kern  :info  : 2025-01-17T15:37:28,650514+00:00 mlx5_core 0000:9d:00.1 enp157s0f1np1: Link down", "benign", false},
	} {
		if c, f := labelByCatalog(cat, tc.line); c != tc.category || f != tc.fault {
			t.Errorf("%q: %s %v, want %s %v", tc.line, c, f, tc.category, tc.fault)
		}
	}
	for _, e := range cat {
		if e.Category == "" || e.Source == "" || e.Match == nil {
			t.Errorf("entry %+v", e)
		}
	}
}
