package detect_test

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/pkg/kernlog"
)

// prefixRE matches one layer of what saved kernel logs put before the
// message: syslog and ISO timestamps with a host and "kernel:", dmesg's
// [seconds], [Txxx]/[Cxxx] caller ids, dmesg -T dates, <level> and gpud's
// "kern  :warn  :" facility columns. The real parser is pkg/kernlog's, being
// written alongside; the tests need only this much to give the rules bare
// messages, and the rules match anywhere in the text anyway.
var prefixRE = regexp.MustCompile(`^(?:` +
	`[\s\x{a0}]+` +
	`|<\d+>` +
	`|(?:kern|daemon|user)\s*:\s*\w+\s*:\s*` +
	`|\d{4}-\d\d-\d\dT[\d:.,]+(?:Z|[+-]\d\d:?\d\d)?(?:\s+\S+)??\s+kernel:\s*` +
	`|\d{4}-\d\d-\d\dT[\d:.,]+(?:Z|[+-]\d\d:?\d\d)?\s+` +
	`|(?i:[a-z]{3})\s+\d+\s+[\d:.]+(?:\s+\S+)??\s+kernel:\s*` +
	`|kernel:\s*` +
	`|\[[\s\x{a0}]*\+?\d+\.\d+\]` +
	`|\[[\s\x{a0}]*[TC]\d+\]` +
	`|\[[A-Za-z]{2,3} [A-Za-z]{3}\s+\d+ [\d:]+ \d{4}\]` +
	`)`)

// stripPrefix removes saved-log prefixes until the message starts.
func stripPrefix(line string) string {
	for {
		loc := prefixRE.FindStringIndex(line)
		if loc == nil || loc[1] == 0 {
			return line
		}
		line = line[loc[1]:]
	}
}

func TestStripPrefix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[  702.222693] I/O error, dev sda, sector 52683104", "I/O error, dev sda, sector 52683104"},
		{"Dec 10 18:58:49 kernel: ata1.00: failed command: WRITE FPDMA QUEUED", "ata1.00: failed command: WRITE FPDMA QUEUED"},
		{"Feb 24 20:40:02 thinkpad kernel: EXT4-fs (dm-1): Remounting filesystem read-only", "EXT4-fs (dm-1): Remounting filesystem read-only"},
		{"2025-04-11T20:12:38.513032-07:00 schallkreis kernel: watchdog: BUG: soft lockup", "watchdog: BUG: soft lockup"},
		{"2026-02-13T12:47:34.505714+01:00 [T449218] mce: [Hardware Error]: Machine check events logged", "mce: [Hardware Error]: Machine check events logged"},
		{"[ 1419.919580][ T9955] EDAC MC0: 1 UE", "EDAC MC0: 1 UE"},
		{"<0>[ 1500.017790] watchdog: CPU3: Watchdog detected hard LOCKUP on cpu 4", "watchdog: CPU3: Watchdog detected hard LOCKUP on cpu 4"},
		{"kern  :warn  : 2025-01-21T04:41:44,287197+00:00 NVRM: Xid (PCI:0000:38:00): 43", "NVRM: Xid (PCI:0000:38:00): 43"},
		{"[Sun Feb 23 16:24:18 2025] NVRM: Xid (PCI:0000:9b:00): 119", "NVRM: Xid (PCI:0000:9b:00): 119"},
		{"[\u00a0 163.150716] nvme0c0n1: I/O Cmd(0x2)", "nvme0c0n1: I/O Cmd(0x2)"},
		{"[  T256] blk_update_request: I/O error", "blk_update_request: I/O error"},
		{"nvme nvme0: I/O 960 QID 26 timeout, aborting", "nvme nvme0: I/O 960 QID 26 timeout, aborting"},
	} {
		if got := stripPrefix(tc.in); got != tc.want {
			t.Errorf("stripPrefix(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func builtin(t testing.TB) *detect.RuleSet {
	t.Helper()
	rs, err := detect.Builtin()
	if err != nil {
		t.Fatalf("Builtin: %v", err)
	}
	return rs
}

// record is how a saved-log line reaches the rules: no level, no facility.
func record(msg string) kernlog.Record {
	return kernlog.Record{Level: -1, Facility: -1, Message: msg}
}

// examples is testdata/examples.yaml.
type examples struct {
	Positive []struct {
		Rule       string            `yaml:"rule"`
		Source     string            `yaml:"source"`
		Line       string            `yaml:"line"`
		Class      string            `yaml:"class"`
		Severity   string            `yaml:"severity"`
		Part       string            `yaml:"part"`
		PCIAddress string            `yaml:"pci_address"`
		Captures   map[string]string `yaml:"captures"`
	} `yaml:"positive"`
	Negative []struct {
		Near   string `yaml:"near"`
		Source string `yaml:"source"`
		Line   string `yaml:"line"`
		Why    string `yaml:"why"`
	} `yaml:"negative"`
}

func loadExamples(t testing.TB) examples {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "examples.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ex examples
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&ex); err != nil {
		t.Fatalf("examples.yaml: %v", err)
	}
	return ex
}

// lkmlLine is one record of testdata/lkml_lines.jsonl.gz.
type lkmlLine struct {
	List     string `json:"list"`
	Category string `json:"category"`
	Fault    bool   `json:"fault"`
	Line     string `json:"line"`
	URL      string `json:"url"`
}

// lkmlBlock is one record of testdata/lkml_blocks.jsonl.gz.
type lkmlBlock struct {
	List       string   `json:"list"`
	Categories []string `json:"categories"`
	Lines      []string `json:"lines"`
	URL        string   `json:"url"`
}

func readJSONL[T any](t testing.TB, name string) []T {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out []T
	dec := json.NewDecoder(zr)
	for {
		var v T
		if err := dec.Decode(&v); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, v)
	}
	return out
}

// readLines reads a testdata file, gunzipping *.gz.
func readLines(t testing.TB, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r = zr
	}
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return lines
}
