package replay

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hwheal/hwheal/pkg/kernlog"
)

// FuzzReadBlocks: any input either fails naming the input, or gives
// blocks with lines, categories, a length no shorter than the lines kept
// and rows in order; every block can be labeled.
func FuzzReadBlocks(f *testing.F) {
	data := readTestFile(f, sampleBlocks)
	f.Add(data)
	f.Add(gz(f, data[:600]))
	f.Add([]byte(`{"categories":["ata"],"n_lines":3,"lines":["a","[ 1.0] [  T1] b"]}` + "\n\n" + `{"categories":["x"],"lines":[""],"url":"u"}`))
	f.Add([]byte(`{"categories":["ata"],"n_lines":-1,"lines":["a"]}`))
	ll := newLineLabels(kernlog.Parser{})
	ReadLabeled(bytes.NewReader(readTestFile(f, filepath.Join(corpusDir, "lkml_archives/sample.jsonl"))), "l", func(l LabeledLine) error {
		ll.add(l.Line, l.Category, map[bool]string{true: VerdictFault, false: VerdictBenign}[l.Fault])
		return nil
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		last := 0
		err := ReadBlocks(bytes.NewReader(data), "in", func(b LabeledBlock) error {
			if len(b.Lines) == 0 || len(b.Categories) == 0 || b.NLines < len(b.Lines) || b.Row <= last || b.File != "in" {
				t.Fatalf("block %+v after row %d", b, last)
			}
			last = b.Row
			lab := ll.label(b)
			if (lab.verdict == VerdictFault) != (len(lab.cats) > 0) {
				t.Fatalf("label %+v", lab)
			}
			return nil
		})
		if err != nil && !strings.HasPrefix(err.Error(), "in: ") {
			t.Fatalf("err %v does not name the input", err)
		}
	})
}

// FuzzReadBGL: any input either fails naming the input and a line, or
// gives lines whose alert is a tag or empty and whose fields hold no
// space but the message.
func FuzzReadBGL(f *testing.F) {
	f.Add(readTestFile(f, sampleBGL))
	f.Add([]byte("- 1 2005.06.03 n t n RAS KERNEL INFO \n\nAPP_1 2 x x x x x x x   spaced  message \r\n"))
	f.Add([]byte("KERNDTLB 1118536327 2005.06.11 R30 t R30 RAS KERNEL"))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := ReadBGL(bytes.NewReader(data), "in", func(l BGLLine) error {
			if l.Alert == "-" || (l.Alert != "" && !isAlertTag(l.Alert)) || strings.Contains(l.Component, " ") || strings.Contains(l.Level, " ") || l.Row < 1 {
				t.Fatalf("line %+v", l)
			}
			return nil
		})
		if err != nil && !strings.HasPrefix(err.Error(), "in: ") {
			t.Fatalf("err %v does not name the input", err)
		}
	})
}

// FuzzNPD: a fuzzed monitor config either fails naming the file or
// compiles every rule with a pattern; a fuzzed sample read by the shipped
// monitors gives trimmed non-blank lines with sorted, distinct reasons of
// those monitors' rules.
func FuzzNPD(f *testing.F) {
	cfg := readTestFile(f, filepath.Join(npdConfig, "kernel-monitor.json"))
	shipped, err := LoadNPDConfigDir(npdConfig)
	if err != nil {
		f.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, m := range shipped.monitors {
		for _, r := range m.Rules {
			reasons[r.Reason] = true
		}
	}
	for _, p := range []string{"docker_hung", "oom_kill", "readonly_filesystem"} {
		f.Add(cfg, readTestFile(f, filepath.Join(npdProblems, p)))
	}
	f.Add([]byte(`{"plugin":"kmsg","bufferSize":-3,"rules":[{"reason":"R","pattern":"a\\nb"}]}`), []byte("a\nb\n \t\n"))
	f.Fuzz(func(t *testing.T, config, sample []byte) {
		m, err := ReadNPDMonitor(bytes.NewReader(config), "c.json")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "c.json: ") {
				t.Fatalf("err %v does not name the config", err)
			}
		} else {
			for _, r := range m.Rules {
				if (r.Pattern != "") != (r.re != nil) || m.BufferSize <= 0 {
					t.Fatalf("monitor %+v rule %+v", m, r)
				}
			}
		}
		err = shipped.Label(bytes.NewReader(sample), "s", func(line string, row int, rs []string) error {
			if line == "" || line != strings.TrimSpace(line) || row < 1 {
				t.Fatalf("line %d %q", row, line)
			}
			for i, r := range rs {
				if !reasons[r] || i > 0 && rs[i-1] >= r {
					t.Fatalf("reasons %q", rs)
				}
			}
			return nil
		})
		if err != nil && !strings.HasPrefix(err.Error(), "s: ") {
			t.Fatalf("err %v does not name the sample", err)
		}
	})
}

// FuzzKindByContent: any first bytes give one of the kinds a file named
// on its own can have, and a gpud catalog label a category.
func FuzzKindByContent(f *testing.F) {
	f.Add(readTestFile(f, sampleBGL)[:200])
	f.Add(readTestFile(f, sampleBlocks)[:200])
	f.Add([]byte(`{"category":"ata","line":"x","fault":true}`))
	f.Add([]byte("6,3973,227996636,-;nvidia-peermem nv_get_p2p_free_callback:127 ERROR detected invalid context"))
	cat := GPUDCatalog()
	f.Fuzz(func(t *testing.T, head []byte) {
		switch k := kindByContent(head); k {
		case KindBGL, KindBlocks, KindLines, KindRaw:
		default:
			t.Fatalf("kind %q", k)
		}
		if utf8.Valid(head) {
			if c, _ := labelByCatalog(cat, string(head)); c == "" {
				t.Fatal("empty category")
			}
		}
	})
}
