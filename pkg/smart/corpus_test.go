package smart

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden files")

// TestSmartctlCorpus parses every file of the smartctl JSON corpus as
// INDEX.tsv classifies it: device reports parse with the protocol, model,
// overall verdict and exit status INDEX.tsv read from them; the two broken
// files fail with ErrMalformed naming what is wrong; scan output goes to
// ParseSmartctlScan; other tools' JSON fails with ErrNoDevice.
func TestSmartctlCorpus(t *testing.T) {
	for _, row := range readIndex(t) {
		t.Run(row.File, func(t *testing.T) {
			path := filepath.Join(corpusDir, row.File)
			rep, err := parseFile(t, path)
			switch row.Protocol {
			case "INVALID_JSON":
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("got %v, want ErrMalformed", err)
				}
				want := map[string]string{
					"04_malformed.json": "at offset 485 (line 29, column 3): invalid character 'h'",
					"05_empty.json":     "empty input",
				}[filepath.Base(row.File)]
				if want == "" || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not say %q", err, want)
				}
			case "scan":
				if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "ParseSmartctlScan") {
					t.Fatalf("ParseSmartctlJSON: got %v, want ErrNoDevice pointing at ParseSmartctlScan", err)
				}
				f, _ := os.Open(path)
				defer f.Close()
				devs, err := ParseSmartctlScan(f)
				if err != nil {
					t.Fatal(err)
				}
				want := []ScanDevice{{Name: "/dev/nvme0", InfoName: "/dev/nvme0", Type: "nvme", Protocol: ProtocolNVMe}}
				if !slices.Equal(devs, want) {
					t.Fatalf("scan = %+v, want %+v", devs, want)
				}
			case "not_smartctl_device_output":
				if strings.Contains(row.File, "smartctl_info_sata") {
					// Disagreement with INDEX.tsv (testdata/INDEX-NOTES.md):
					// `smartctl -i --json` with the smartctl section cut by
					// scrutiny; the device section is there, so it is read.
					if err != nil {
						t.Fatal(err)
					}
					if rep.Protocol != ProtocolATA || rep.Model != "WD Red SA500 2.5 4TB" || rep.Serial != "2433274A1T13" ||
						rep.CapacityBytes != 4000787030016 || rep.WWN != "0x5001b444a5523895" {
						t.Fatalf("identity = %q %q %q %d %q", rep.Protocol, rep.Model, rep.Serial, rep.CapacityBytes, rep.WWN)
					}
					return
				}
				if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "top-level keys: data") {
					t.Fatalf("got %v, want ErrNoDevice naming the keys found", err)
				}
			case "ATA", "NVMe", "SCSI":
				if err != nil {
					t.Fatal(err)
				}
				if string(rep.Protocol) != row.Protocol {
					t.Errorf("protocol = %q, want %q", rep.Protocol, row.Protocol)
				}
				if rep.Model != row.Model {
					t.Errorf("model = %q, want %q", rep.Model, row.Model)
				}
				wantPassed := map[string]*bool{"True": ptr(true), "False": ptr(false), "None": nil}[row.SmartPassed]
				if (rep.OverallPassed == nil) != (wantPassed == nil) || (wantPassed != nil && *rep.OverallPassed != *wantPassed) {
					t.Errorf("passed = %v, want %s", deref(rep.OverallPassed), row.SmartPassed)
				}
				if code, err := strconv.Atoi(row.ExitStatus); err == nil && int(rep.Smartctl.ExitStatus) != code {
					t.Errorf("exit status = %d, want %d", rep.Smartctl.ExitStatus, code)
				}
				if len(rep.Warnings) > 0 {
					t.Errorf("parser warnings: %q", rep.Warnings)
				}
				if rep.Device == "" {
					t.Error("no device path")
				}
				switch rep.Protocol {
				case ProtocolATA:
					if rep.NVMe != nil || rep.SCSI != nil {
						t.Error("ATA report with NVMe or SCSI health")
					}
				case ProtocolNVMe:
					if rep.ATA != nil || rep.SCSI != nil {
						t.Error("NVMe report with ATA or SCSI health")
					}
				case ProtocolSCSI:
					if rep.ATA != nil || rep.NVMe != nil {
						t.Error("SCSI report with ATA or NVMe health")
					}
				}
			default:
				t.Fatalf("INDEX.tsv protocol %q unknown to this test", row.Protocol)
			}
		})
	}
}

// TestCorpusFullyIndexed keeps the INDEX-driven test honest: every JSON file
// copied from the corpus has a row.
func TestCorpusFullyIndexed(t *testing.T) {
	indexed := map[string]bool{}
	for _, row := range readIndex(t) {
		indexed[row.File] = true
	}
	for _, p := range corpusJSONFiles(t, corpusDir) {
		rel, _ := filepath.Rel(corpusDir, p)
		if !indexed[filepath.ToSlash(rel)] {
			t.Errorf("%s has no INDEX.tsv row", rel)
		}
	}
}

// TestAssessAgainstIndex checks Assess against the fault flags INDEX.tsv
// derived: drives it flags are flagged (a warning or critical finding) and
// the others are not, except where testdata/INDEX-NOTES.md explains why we
// read the drive differently. A disagreement that goes away fails too, so
// the notes stay true.
func TestAssessAgainstIndex(t *testing.T) {
	// file -> why Assess does not flag a drive INDEX.tsv flags.
	disagree := map[string]string{
		"smartctl_exporter/testdata/HGST_HUS724020ALE640_28.json":                                         "12 logged errors, all ICRC (interface CRC), 67,000 h ago",
		"smartctl_exporter/testdata/ST3200820AS_16.json":                                                  "98 logged errors, IDNF on SET NATIVE MAX ADDRESS (host HPA commands), 93,000 h ago",
		"smartctl_exporter/testdata/sat-Western_Digital_Ultrastar_DC_HC550-WDC__WUH721816ALE6L4-sdx.json": "1 logged error, ICRC at 1,762 h",
	}
	seen := 0
	for _, row := range readIndex(t) {
		if row.Protocol != "ATA" && row.Protocol != "NVMe" && row.Protocol != "SCSI" {
			continue
		}
		t.Run(row.File, func(t *testing.T) {
			rep := mustParse(t, filepath.Join(corpusDir, row.File))
			fs := Assess(rep)
			want := row.FaultFlags != ""
			if why, ok := disagree[row.File]; ok {
				seen++
				if flagged(fs) == want {
					t.Fatalf("listed as a disagreement (%s) but Assess now agrees with INDEX.tsv: %v", why, findingCodes(fs))
				}
				// Not flagged, but the evidence is there as info.
				if !slices.Contains(findingCodes(fs), CodeATAErrorLog) {
					t.Fatalf("no %s info finding: %v", CodeATAErrorLog, findingCodes(fs))
				}
				return
			}
			if flagged(fs) != want {
				t.Fatalf("flagged = %v (%v), INDEX.tsv fault flags %q", flagged(fs), findingCodes(fs), row.FaultFlags)
			}
			// Each flag INDEX.tsv derived has the finding that reads it.
			for _, flag := range strings.Fields(row.FaultFlags) {
				code := map[string]string{
					"SMART_FAILED":          CodeOverallFailed,
					"attr5_when_failed":     CodeATAPrefailFailingNow,
					"attr5_raw":             CodeATAReallocated,
					"attr187_raw":           CodeATAReportedUncorrect,
					"attr197_raw":           CodeATAPending,
					"attr198_raw":           CodeATAOfflineUncorrect,
					"ata_error_log_count":   CodeATAErrorLog,
					"selftest_error_count":  CodeATASelfTestFailed,
					"nvme_critical_warning": CodeNVMeCriticalWarning + ".volatile_backup",
				}[strings.SplitN(flag, "=", 2)[0]]
				if code == "" {
					t.Fatalf("INDEX.tsv flag %q unknown to this test", flag)
				}
				if code == CodeOverallFailed && rep.Protocol == ProtocolNVMe {
					continue // folded into the critical-warning bits
				}
				if !slices.Contains(findingCodes(fs), code) {
					t.Errorf("flag %s: no %s finding in %v", flag, code, findingCodes(fs))
				}
			}
		})
	}
	if seen != len(disagree) {
		t.Fatalf("%d of %d listed disagreements are in INDEX.tsv", seen, len(disagree))
	}
}

// TestAssessGolden records every corpus report's key values and findings;
// run with -update after a deliberate change and review the diff.
func TestAssessGolden(t *testing.T) {
	var b strings.Builder
	fmt.Fprintln(&b, "# file\tprotocol\tpassed\tpower_on_hours\ttemperature_c\tfindings (severity:code[/attribute]=value)")
	files := corpusJSONFiles(t, corpusDir)
	files = append(files, corpusJSONFiles(t, syntheticDir)...)
	for _, p := range files {
		rep, err := parseFile(t, p)
		if err != nil {
			continue // the error cases have their own tests
		}
		var fs []string
		for _, f := range Assess(rep) {
			s := f.Severity.String() + ":" + f.Code
			if f.Attribute != 0 {
				s += "/" + strconv.Itoa(int(f.Attribute))
			}
			fs = append(fs, s+"="+strconv.FormatUint(f.Value, 10))
		}
		passed := "-"
		if rep.OverallPassed != nil {
			passed = strconv.FormatBool(*rep.OverallPassed)
		}
		if rep.Standby {
			passed = "standby:" + rep.PowerMode
		}
		fmt.Fprintf(&b, "%s\t%s\t%s\t%d\t%d\t%s\n", filepath.ToSlash(p), rep.Protocol, passed,
			rep.PowerOnHours, rep.TemperatureC, strings.Join(fs, " "))
	}
	got := b.String()
	if *update {
		if err := os.MkdirAll(filepath.Dir(goldenAssess), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenAssess, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := string(readAll(t, goldenAssess))
	if got != want {
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		for i := range max(len(gl), len(wl)) {
			g, w := at(gl, i), at(wl, i)
			if g != w {
				t.Fatalf("golden mismatch at line %d (run go test -update and review the diff):\n got: %s\nwant: %s", i+1, g, w)
			}
		}
	}
}

func at(ss []string, i int) string {
	if i < len(ss) {
		return ss[i]
	}
	return "<none>"
}

func ptr[T any](v T) *T { return &v }

func deref(p *bool) string {
	if p == nil {
		return "None"
	}
	return strconv.FormatBool(*p)
}
