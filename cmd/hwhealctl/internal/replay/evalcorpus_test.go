package replay

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

const corpusDir = "testdata/kernel_logs"

// corpusRules extend testRules for testdata/kernel_logs, again a small
// stand-in for the shipped rules so that the harness's arithmetic is
// checked against counts worked out by hand. Some match benign lines on
// purpose (ESRT's ghes_report_chain, BGL's corrected parity errors, an
// OOM line, a block's capacity change) so that flagged and unlabeled
// figures are not all zero; none matches NPD's OOM kill or
// unregister_netdevice lines, nor the lkml "Recovering Root Port" and
// "Removing after probe failure" lines, so there are misses.
var corpusRules = []struct {
	re    *regexp.Regexp
	class string
}{
	{regexp.MustCompile(`NVRM: Xid \(`), "gpu.xid"},
	{regexp.MustCompile(`: Link down$`), "nic.link_down"},
	{regexp.MustCompile(`Out of memory: Kill process`), "kernel.oom"},
	{regexp.MustCompile(`blocked for more than \d+ seconds`), "kernel.hung_task"},
	{regexp.MustCompile(`Remounting filesystem read-only`), "fs.read_only"},
	{regexp.MustCompile(`data TLB error interrupt`), "cpu.tlb"},
	{regexp.MustCompile(`parity error corrected`), "memory.ce"},
	{regexp.MustCompile(`ghes_report_chain notifier`), "ghes.boot"},
	{regexp.MustCompile(`detected capacity change`), "disk.capacity"},
}

func corpusMatch(line string) []*hwhealv1.Fault {
	out := testMatch(line)
	for _, r := range corpusRules {
		if r.re.MatchString(line) {
			out = append(out, &hwhealv1.Fault{FaultClass: r.class})
		}
	}
	return out
}

// figs are the counts of a row: fault units (TP, ClassTP, FN), benign
// units (FP), unlabeled blocks (raised).
type figs struct{ faults, tp, classTP, fn, benign, fp, unlabeled, unlabeledRaised int }

func figsOf(k KernelFigures) figs {
	return figs{k.Faults, k.TP, k.ClassTP, k.FN, k.Benign, k.FP, k.Unlabeled, k.UnlabeledRaised}
}

func checkRows(t *testing.T, what string, rows []KernelFigures, want map[string]figs) {
	t.Helper()
	got := map[string]figs{}
	for _, k := range rows {
		got[k.Name] = figsOf(k)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s %s: %+v, want %+v", what, k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected row %s %+v", what, k, got[k])
		}
	}
}

func groupNamed(t *testing.T, r KernelReport, name string) KernelGroup {
	t.Helper()
	for _, g := range r.Groups {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no group %s in %d groups", name, len(r.Groups))
	return KernelGroup{}
}

// TestClassifyKernelFiles: a directory walk reads the labeled files of
// the corpus layout and skips the rest; a file named on its own is read
// by its name, else by its first line.
func TestClassifyKernelFiles(t *testing.T) {
	files, skipped, err := ClassifyKernelFiles([]string{corpusDir})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, string(f.Kind)+" "+strings.TrimPrefix(f.Path, corpusDir+"/"))
	}
	want := []string{
		"gpud gpud_testdata/_deleted_in_history/pkg/dmesg/testdata/dmesg.decode.iso.log.1",
		"gpud gpud_testdata/components/accelerator/nvidia/xid/testdata/dmesg-with-xid-119.log",
		"gpud gpud_testdata/components/memory/testdata/dmesg.decode.iso.log",
		"gpud gpud_testdata/components/os/testdata/dmesg.decode.iso.log",
		"gpud gpud_testdata/pkg/kmsg/testdata/kmsg.1.log",
		"gpud gpud_testdata/pkg/kmsg/testdata/kmsg.2.peermem.log",
		"gpud gpud_testdata/pkg/pstore/testdata/dmesg-erst.txt",
		"lkml-blocks lkml_archives/sample.blocks.jsonl",
		"lkml-lines lkml_archives/sample.jsonl",
		"bgl loghub/BGL/BGL_2k.log",
		"npd node-problem-detector/test/kernel_log_generator/problems/au_opts_verify",
		"npd node-problem-detector/test/kernel_log_generator/problems/docker_hung",
		"npd node-problem-detector/test/kernel_log_generator/problems/oom_kill",
		"npd node-problem-detector/test/kernel_log_generator/problems/readonly_filesystem",
		"npd node-problem-detector/test/kernel_log_generator/problems/unregister_netdevice",
	}
	if !slices.Equal(got, want) {
		t.Errorf("walk:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// fabricmanager.log, BGL's structured CSV, Linux_2k.log, three NPD configs
	if skipped != 6 {
		t.Errorf("%d files skipped, want 6", skipped)
	}

	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bgl := readTestFile(t, filepath.Join(corpusDir, "loghub/BGL/BGL_2k.log"))
	blocks := readTestFile(t, filepath.Join(corpusDir, "lkml_archives/sample.blocks.jsonl"))
	lines := readTestFile(t, filepath.Join(corpusDir, "lkml_archives/sample.jsonl"))
	for _, tc := range []struct {
		path string
		want KernelFileKind
	}{
		{write("bluegene.txt", bgl), KindBGL},
		{write("excerpts", blocks), KindBlocks},
		{write("records", lines), KindLines},
		{write("boot.log", readTestFile(t, filepath.Join(corpusDir, "gpud_testdata/pkg/kmsg/testdata/kmsg.1.log"))), KindRaw},
		{filepath.Join(dir, "missing"), KindRaw},
		{filepath.Join(corpusDir, "lkml_archives/sample.blocks.jsonl"), KindBlocks},
		{filepath.Join(corpusDir, "node-problem-detector/test/kernel_log_generator/problems/oom_kill"), KindNPD},
	} {
		fs, _, err := ClassifyKernelFiles([]string{tc.path})
		if err != nil || len(fs) != 1 || fs[0].Kind != tc.want || fs[0].Path != tc.path {
			t.Errorf("%s: %+v, %v; want kind %s", tc.path, fs, err, tc.want)
		}
	}
}

// TestSplitEvalArgs: Backblaze CSVs are told from loghub's by their
// header; kernel-log directories are passed whole.
func TestSplitEvalArgs(t *testing.T) {
	csvs, kernel, err := SplitEvalArgs([]string{"testdata/backblaze", corpusDir, "x.csv", "y.log", "testdata/smartctl_json"})
	if err != nil {
		t.Fatal(err)
	}
	wantCSV := []string{bbDaily, bbFailed, bbHealthy, "x.csv"}
	if !slices.Equal(csvs, wantCSV) || !slices.Equal(kernel, []string{corpusDir, "y.log"}) {
		t.Errorf("csvs %q kernel %q, want %q and [%s y.log]", csvs, kernel, wantCSV, corpusDir)
	}
}

// TestEvalKernelCorpus evaluates testdata/kernel_logs, a copy of the
// corpus layout, with corpusMatch and the project's label disputes. The
// expected counts were worked out by reading the files:
//
// lkml line records (15): 1 excluded (the "[Hardware Error]: CPU:0" line
// is a detail); "Shutdown timeout" and "failed to mark controller" are
// disputed benign; faults left: ata failed command (caught), mce logged
// (caught), "Removing after probe failure" and "Recovering Root Port due
// to Link Down" (missed); the ESRT ghes_report_chain line is flagged.
//
// lkml blocks (8): ide 9 holds the labeled "failed command" (fault, ata,
// caught: the lookup cuts the quote's indentation and the "kernel:"
// tag); edac 56 the mce line (fault, caught); nvme 60's only fault line
// left after disputes is "Removing after probe failure" (fault, missed);
// pci 72 holds "Recovering Root Port" (fault, missed); nvme 22 and edac
// 53 have every line labeled benign (edac 53 flagged by the ESRT line);
// nvme 17 and 18 hold lines no record labels (unlabeled; 17 raises on
// "detected capacity change").
//
// gpud (42 lines): 7 Xid lines (caught); 5 OOM lines, one flagged; 2
// file-max, 2 peermem, 2 crash lines (BUG, Oops); 24 other benign lines,
// of which the three uncabled mlx5 ports' "Link down" are flagged.
//
// npd (24 lines): docker_hung's first line fires TaskHung and DockerHung
// (caught), readonly_filesystem fires FilesystemIsReadOnly (caught),
// oom_kill's second line OOMKilling and unregister_netdevice its rule
// (both missed); au_opts_verify fires nothing in these configs; 20 lines
// benign. docker-monitor.json (journald) is not read for rules.
//
// bgl (15 lines): 2 APPREAD (missed), 3 KERNDTLB (caught, no plausible
// class: not Linux), 10 non-alert, 4 of them corrected parity errors
// (flagged).
func TestEvalKernelCorpus(t *testing.T) {
	rep, err := EvalKernelLog([]string{corpusDir}, corpusMatch, KernelOptions{Disputes: readDisputes(t)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lines != 15 || rep.Excluded != 1 || rep.SkippedFiles != 6 || len(rep.Inputs) != 15 {
		t.Errorf("lines %d excluded %d skipped %d inputs %d", rep.Lines, rep.Excluded, rep.SkippedFiles, len(rep.Inputs))
	}
	checkRows(t, "lkml lines", rep.Categories, map[string]figs{
		"ata":       {faults: 1, tp: 1, classTP: 1, benign: 2},
		"nvme":      {faults: 1, fn: 1, benign: 6},
		"pcie_aer":  {faults: 1, fn: 1},
		"mce":       {faults: 1, tp: 1, classTP: 1},
		"cper_ghes": {benign: 2, fp: 1},
	})
	checkRows(t, "lkml lines raw", rep.RawCategories, map[string]figs{
		"ata":       {faults: 1, tp: 1, benign: 2},
		"nvme":      {faults: 3, fn: 3, benign: 4},
		"pcie_aer":  {faults: 1, fn: 1},
		"mce":       {faults: 2, tp: 1, fn: 1},
		"cper_ghes": {benign: 2, fp: 1},
	})
	if got := figsOf(rep.Total); got != (figs{faults: 4, tp: 2, classTP: 2, fn: 2, benign: 10, fp: 1}) {
		t.Errorf("lkml lines total %+v", got)
	}

	blocks := groupNamed(t, rep, "lkml blocks")
	if blocks.Units != 8 || blocks.Unit != "block" {
		t.Errorf("blocks: %d %ss", blocks.Units, blocks.Unit)
	}
	checkRows(t, "blocks", blocks.Categories, map[string]figs{
		"ata":       {faults: 1, tp: 1, classTP: 1},
		"mce":       {faults: 1, tp: 1, classTP: 1},
		"nvme":      {faults: 1, fn: 1, benign: 1, unlabeled: 2, unlabeledRaised: 1},
		"pcie_aer":  {faults: 1, fn: 1},
		"cper_ghes": {benign: 1, fp: 1},
	})
	if got := figsOf(blocks.Total); got != (figs{faults: 4, tp: 2, classTP: 2, fn: 2, benign: 2, fp: 1, unlabeled: 2, unlabeledRaised: 1}) {
		t.Errorf("blocks total %+v", got)
	}
	if len(blocks.Missed) != 2 || !strings.Contains(blocks.Missed[1], "pcie_aer: [   86.820059] rockchip-dw-pcie") ||
		len(blocks.Flagged) != 1 || !strings.Contains(blocks.Flagged[0], "kick ghes_report_chain notifier to report serialized -> ghes.boot") ||
		len(blocks.Unlabeled) != 1 || !strings.Contains(blocks.Unlabeled[0], "detected capacity change from 0 to -> disk.capacity") {
		t.Errorf("blocks missed %q flagged %q unlabeled %q", blocks.Missed, blocks.Flagged, blocks.Unlabeled)
	}

	gpud := groupNamed(t, rep, "gpud")
	checkRows(t, "gpud", gpud.Categories, map[string]figs{
		"gpu_xid":                     {faults: 7, tp: 7, classTP: 7},
		"oom (not hardware)":          {benign: 5, fp: 1},
		"file-max (not hardware)":     {benign: 2},
		"peermem (not hardware)":      {benign: 2},
		"kernel crash (not hardware)": {benign: 2},
		"benign":                      {benign: 24, fp: 3},
	})
	if gpud.Units != 42 || len(gpud.Files) != 7 || len(gpud.Flagged) != 4 || len(gpud.Missed) != 0 {
		t.Errorf("gpud: %d lines, %d files, flagged %q, missed %q", gpud.Units, len(gpud.Files), gpud.Flagged, gpud.Missed)
	}
	if want := "dmesg.decode.iso.log.1:8: benign: kern  :info  : 2025-01-17T15:37:28,650514+00:00 mlx5_core 0000:9d:00.1 enp157s0f1np1: Link down -> nic.link_down"; !strings.HasSuffix(gpud.Flagged[0], want) {
		t.Errorf("first flagged %q, want ...%q", gpud.Flagged[0], want)
	}

	npd := groupNamed(t, rep, "npd")
	checkRows(t, "npd", npd.Categories, map[string]figs{
		"DockerHung+TaskHung":  {faults: 1, tp: 1, classTP: 1},
		"FilesystemIsReadOnly": {faults: 1, tp: 1, classTP: 1},
		"OOMKilling":           {faults: 1, fn: 1},
		"UnregisterNetDevice":  {faults: 1, fn: 1},
		"benign":               {benign: 20},
	})
	if want := []string{
		"oom_kill:2: OOMKilling: Killed process 1012 (heapster) total-vm:327128kB, anon-rss:306328kB, file-rss:11132kB, shmem-rss:12345kB",
		"unregister_netdevice:1: UnregisterNetDevice: unregister_netdevice: waiting for lo to become free. Usage count = 1",
	}; !slices.Equal(npd.Missed, want) {
		t.Errorf("npd missed %q", npd.Missed)
	}

	bgl := groupNamed(t, rep, "bgl")
	checkRows(t, "bgl", bgl.Categories, map[string]figs{
		"APPREAD":   {faults: 2, fn: 2},
		"KERNDTLB":  {faults: 3, tp: 3},
		"non-alert": {benign: 10, fp: 4},
	})
	if bgl.Total.ClassRecall != nil || *bgl.Total.Recall != 3.0/5 {
		t.Errorf("bgl total %+v", bgl.Total)
	}

	aims := map[string]AimFigures{}
	for _, a := range rep.Aims {
		aims[a.Name] = a
	}
	type aimFigs struct{ faults, caught, classCaught, blocks, blocksCaught int }
	for name, want := range map[string]aimFigs{
		"disk": {1, 1, 1, 1, 1}, "NVMe": {1, 0, 0, 1, 0}, "memory": {}, "PCIe": {1, 0, 0, 1, 0}, "NIC": {}, "GPU": {7, 7, 7, 0, 0},
	} {
		a := aims[name]
		if got := (aimFigs{a.Faults, a.Caught, a.ClassCaught, a.Blocks, a.BlocksCaught}); got != want {
			t.Errorf("aim %s: %+v, want %+v", name, got, want)
		}
		if met := want.faults > 0 && want.classCaught == want.faults; a.Met != met {
			t.Errorf("aim %s met %v", name, a.Met)
		}
	}
	var benign []string
	for _, k := range rep.BenignFlagged {
		benign = append(benign, fmt.Sprintf("%s %d/%d", k.Name, k.FP, k.Benign))
	}
	if want := []string{"lkml lines 1/10", "lkml blocks 1/2", "gpud 4/35", "npd 0/20", "bgl 4/10", "all lines 9/75"}; !slices.Equal(benign, want) {
		t.Errorf("benign flagged %q", benign)
	}

	t.Run("block file alone", func(t *testing.T) {
		// Its line records beside it label it, without being counted.
		alone, err := EvalKernelLog([]string{filepath.Join(corpusDir, "lkml_archives/sample.blocks.jsonl")}, corpusMatch, KernelOptions{Disputes: readDisputes(t)})
		if err != nil {
			t.Fatal(err)
		}
		if alone.Lines != 0 || len(alone.Files) != 0 || len(alone.Groups) != 1 || figsOf(alone.Groups[0].Total) != figsOf(blocks.Total) {
			t.Errorf("alone: %d lines, files %v, groups %+v", alone.Lines, alone.Files, alone.Groups)
		}
		dir := t.TempDir()
		lone := filepath.Join(dir, "x.blocks.jsonl")
		if err := os.WriteFile(lone, readTestFile(t, filepath.Join(corpusDir, "lkml_archives/sample.blocks.jsonl")), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := EvalKernelLog([]string{lone}, corpusMatch, KernelOptions{}); err == nil || !strings.Contains(err.Error(), "no line records to label its blocks with") {
			t.Errorf("block file without records: %v", err)
		}
	})

	t.Run("npd sample outside its checkout", func(t *testing.T) {
		dir := t.TempDir()
		sample := filepath.Join(dir, "kernel_log_generator", "problems", "oom_kill")
		if err := os.MkdirAll(filepath.Dir(sample), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sample, readTestFile(t, filepath.Join(corpusDir, "node-problem-detector/test/kernel_log_generator/problems/oom_kill")), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := EvalKernelLog([]string{sample}, corpusMatch, KernelOptions{}); err == nil || !strings.Contains(err.Error(), "no node-problem-detector config/kernel-monitor.json") {
			t.Errorf("no config: %v", err)
		}
		r, err := EvalKernelLog([]string{sample}, corpusMatch, KernelOptions{NPDConfigDir: filepath.Join(corpusDir, "node-problem-detector/config")})
		if err != nil {
			t.Fatal(err)
		}
		if g := r.Groups[0]; g.Name != "npd" || figsOf(g.Total) != (figs{faults: 1, fn: 1, benign: 1}) {
			t.Errorf("with NPDConfigDir: %+v", g)
		}
	})
}

// TestWriteKernelTableGroups: every group gets its table with its misses
// and flags, and the aims close the report.
func TestWriteKernelTableGroups(t *testing.T) {
	rep, err := EvalKernelLog([]string{corpusDir}, corpusMatch, KernelOptions{Disputes: readDisputes(t)})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteKernelTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, line := range []string{
		"lkml line records: 15 lines, 1 excluded by label disputes",
		"| all | 2/4 (50.0%) | 1/10 (10.0%) | 66.7% | 2/7 (28.6%) | 1/8 (12.5%) |",
		"lkml blocks: 8 blocks from 1 files; labels: through the lkml line records (after disputes) of the block's lines, looked up by message",
		"| nvme | 0/1 (0.0%) | 0/1 (0.0%) | 0/1 (0.0%) | 1/2 |",
		"| all | 2/4 (50.0%) | 2/4 (50.0%) | 1/2 (50.0%) | 1/2 |",
		"unlabeled blocks raising a fault (1):",
		"| gpu_xid | 7/7 (100.0%) | 7/7 (100.0%) | 0/0 (-) | 100.0% |",
		"| oom (not hardware) | 0/0 (-) | - | 1/5 (20.0%) | 0.0% |",
		"flagged benign lines (4):",
		"| KERNDTLB | 3/3 (100.0%) | - | 0/0 (-) | 100.0% |",
		"- `oom_kill:2: OOMKilling: Killed process 1012 (heapster) total-vm:327128kB, anon-rss:306328kB, file-rss:11132kB, shmem-rss:12345kB`",
		"| GPU | gpu_xid, gpu_sxid | 7/7 (100.0%) | 7/7 (100.0%) | 0/0 (-) | 0/0 (-) | yes |",
		"| NVMe | nvme | 0/1 (0.0%) | 0/1 (0.0%) | 0/1 (0.0%) | 0/1 (0.0%) | no |",
		"| npd | 0/20 (0.0%) | yes |",
		"| all lines | 9/75 (12.0%) | no |",
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("no line %q in\n%s", line, out)
		}
	}
	// Lists are capped in Markdown: -o json has them all.
	rep.Groups[0].Missed = slices.Repeat([]string{"x"}, maxListed+3)
	b.Reset()
	if err := WriteKernelTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "- ... and 3 more (-o json lists them all)\n") {
		t.Errorf("no cap in\n%s", b.String())
	}
}
