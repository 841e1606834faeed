package ttar_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hwheal/hwheal/pkg/ttar"
	"github.com/hwheal/hwheal/pkg/ttar/ttartest"
)

// entry is what a test compares of one extracted file system object.
type entry struct {
	kind string // "file", "dir", "link"
	perm fs.FileMode
	data string // file content or link target
}

// snapshot records every object below dir, keyed by slash path.
func snapshot(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{perm: info.Mode().Perm()}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			e.kind, e.perm = "link", 0
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.data = target
		case info.IsDir():
			e.kind = "dir"
		default:
			e.kind = "file"
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.data = string(b)
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

func extractString(t *testing.T, archive string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	return dir, ttar.Extract(strings.NewReader(archive), dir)
}

func TestExtractProcfsExcerpt(t *testing.T) {
	root := ttartest.ExtractFile(t, "testdata/procfs_excerpt.ttar")
	got := snapshot(t, root)
	p := "fixtures/proc/26231/"
	tests := []struct {
		name string
		want entry
	}{
		{"fixtures", entry{"dir", 0o755, ""}},
		{p + "comm", entry{"file", 0o644, "vim\n"}},
		// NULLBYTE separators and a final EOF: no newline after the last zero.
		{p + "cmdline", entry{"file", 0o644, "vim\x00test.go\x00+10\x00"}},
		{p + "cwd", entry{"link", 0, "/usr/bin"}},
		{p + "exe", entry{"link", 0, "/usr/bin/vim"}},
		{p + "fd/0", entry{"link", 0, "../../symlinktargets/abc"}},
		{p + "fd/10", entry{"link", 0, "../../symlinktargets/xyz"}},
		{p + "fdinfo/1", entry{"file", 0o644, "pos:\t0\nflags:\t02004002\nmnt_id:\t13\neventfd-count:                0\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := got[tc.name]
			if !ok {
				t.Fatalf("%s not extracted", tc.name)
			}
			if e != tc.want {
				t.Errorf("%s = %+v, want %+v", tc.name, e, tc.want)
			}
		})
	}
	// The excerpt's last entry is mountstats; one blank content line in it
	// must survive as an empty line, not end the file.
	ms := got[p+"mountstats"].data
	if n := strings.Count(ms, "\n"); n != 20 {
		t.Errorf("mountstats has %d lines, want 20", n)
	}
	if !strings.Contains(ms, "\n\n") {
		t.Errorf("mountstats lost its blank line")
	}
}

func TestExtractEscapes(t *testing.T) {
	root := ttartest.ExtractFile(t, "testdata/escapes.ttar")
	got := snapshot(t, root)
	want := map[string]entry{
		"a":                       {"dir", 0o755, ""},
		"a/nul":                   {"file", 0o644, "x\x00y\x00\x00\n\x00"},
		"a/literal":               {"file", 0o600, "keep NULLBYTE and EOF as words\n"},
		"a/empty":                 {"file", 0o444, ""},
		"a/blankline":             {"file", 0o664, "one\n\nthree"},
		"a/link":                  {"link", 0, "nul"},
		"a/sub":                   {"dir", 0o755, ""},
		"a/sub/deep":              {"dir", 0o750, ""},
		"a/sub/deep/keyword-like": {"file", 0o640, "Path: not/an/entry\n# nor a comment\n"},
	}
	if len(got) != len(want) {
		t.Errorf("extracted %d entries, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			if g := got[name]; g != w {
				t.Errorf("%s = %+v, want %+v", name, g, w)
			}
		})
	}
}

func TestDecodeLine(t *testing.T) {
	tests := []struct {
		name, in    string
		want        string
		wantNewline bool
	}{
		{"plain", "abc", "abc", true},
		{"empty", "", "", true},
		{"null only", "NULLBYTE", "\x00", true},
		{"adjacent nulls", "NULLBYTENULLBYTE", "\x00\x00", true},
		{"escaped null", `\NULLBYTE`, "NULLBYTE", true},
		{"escaped backslash then null", `\\NULLBYTE`, `\NULLBYTE`, true},
		{"eof", "abcEOF", "abc", false},
		{"escaped eof", `abc\EOF`, "abcEOF", true},
		{"eof at start is literal", "EOF", "EOF", true},
		{"null then eof", "NULLBYTEEOF", "\x00", false},
		{"other backslashes kept", `a\b\\c`, `a\b\\c`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, nl := ttar.DecodeLine(tc.in)
			if string(got) != tc.want || nl != tc.wantNewline {
				t.Errorf("DecodeLine(%q) = %q, %v; want %q, %v", tc.in, got, nl, tc.want, tc.wantNewline)
			}
		})
	}
}

// TestExtractMatchesReferenceScript extracts the same archives with the
// upstream ttar shell script and with Extract and compares the trees.
func TestExtractMatchesReferenceScript(t *testing.T) {
	for _, tool := range []string{"bash", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("reference ttar script needs %s: %v", tool, err)
		}
	}
	script, err := filepath.Abs("testdata/ttar.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, archive := range []string{"testdata/procfs_excerpt.ttar", "testdata/escapes.ttar"} {
		t.Run(filepath.Base(archive), func(t *testing.T) {
			abs, err := filepath.Abs(archive)
			if err != nil {
				t.Fatal(err)
			}
			refDir := t.TempDir()
			cmd := exec.Command("bash", script, "-C", refDir, "-x", "-f", abs)
			cmd.Dir = refDir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("reference ttar: %v\n%s", err, out)
			}
			ours := ttartest.ExtractFile(t, archive)
			want, got := snapshot(t, refDir), snapshot(t, ours)
			if len(want) == 0 {
				t.Fatal("reference script extracted nothing")
			}
			for name, w := range want {
				if g, ok := got[name]; !ok {
					t.Errorf("%s: missing, reference has %+v", name, w)
				} else if g != w {
					t.Errorf("%s: got %+v, reference %+v", name, g, w)
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok {
					t.Errorf("%s: extracted but not by the reference script", name)
				}
			}
		})
	}
}

func TestExtractRejects(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name    string
		archive string
		want    string // substring of the error
		unsafe  bool   // error must wrap ErrUnsafePath
	}{
		{"absolute path", "Path: /etc/hwheal-test\nLines: 1\nx\n", "line 1", true},
		{"dotdot path", "Path: a/../../x\nLines: 1\nx\n", "escapes", true},
		{"dotdot directory", "Directory: ../x\n", "escapes", true},
		{"bare dotdot", "Path: ..\nLines: 0\n", "escapes", true},
		{"write through escaping relative link", "Path: l\nSymlinkTo: ../..\n# -\nPath: l/evil\nLines: 1\nx\n", "line 4", false},
		{"write through absolute link", "Path: l\nSymlinkTo: " + outside + "\n# -\nPath: l/evil\nLines: 1\nx\n", "l/evil", false},
		{"directory through absolute link", "Path: l\nSymlinkTo: " + outside + "\nDirectory: l/evil\n", "l/evil", false},
		{"lines without path", "Lines: 1\nx\n", "without a preceding Path", false},
		{"lines after directory", "Directory: d\nLines: 1\nx\n", "without a preceding Path", false},
		{"symlink without path", "SymlinkTo: x\n", "without a preceding Path", false},
		{"mode without entry", "Mode: 644\n", "without a preceding", false},
		{"negative count", "Path: f\nLines: -1\n", "bad line count", false},
		{"count not a number", "Path: f\nLines: many\n", "bad line count", false},
		{"truncated content", "Path: f\nLines: 3\none\ntwo\n", "archive ends after 2 of 3 lines", false},
		{"bad mode", "Path: f\nLines: 0\nMode: 999\n", "bad mode", false},
		{"huge mode", "Path: f\nLines: 0\nMode: 777777\n", "bad mode", false},
		{"unknown keyword", "Path: f\nLines: 0\nOwner: root\n", `line 3: unknown keyword in "Owner: root"`, false},
		{"blank line between entries", "Path: f\nLines: 0\n\n", "line 3: unknown keyword", false},
		{"empty name", "Path: \n", "empty entry name", false},
		{"root itself", "Path: .\n", "target directory itself", false},
		{"non-empty directory replaced", "Directory: d/e\nPath: d\nLines: 0\n", "replace d", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "out")
			err := ttar.Extract(strings.NewReader(tc.archive), dir)
			if err == nil {
				t.Fatalf("Extract succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if tc.unsafe && !errors.Is(err, ttar.ErrUnsafePath) {
				t.Errorf("error %q does not wrap ErrUnsafePath", err)
			}
			assertConfined(t, parent, "out")
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("archive wrote outside the target: %v", entries)
			}
		})
	}
}

// assertConfined fails if parent holds anything but the extraction directory.
func assertConfined(t testing.TB, parent, want string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != want {
			t.Errorf("extraction wrote %s next to the target directory", e.Name())
		}
	}
}

func TestExtractReplacesEntries(t *testing.T) {
	// A later Path: replaces an earlier file or link of the same name, as the
	// reference script does.
	archive := "Path: f\nLines: 1\nold\nPath: f\nLines: 1\nnew\nPath: l\nSymlinkTo: f\nPath: l\nLines: 1\nfile now\n"
	dir, err := extractString(t, archive)
	if err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, dir)
	if got["f"].data != "new\n" {
		t.Errorf("f = %q, want %q", got["f"].data, "new\n")
	}
	if got["l"].kind != "file" || got["l"].data != "file now\n" {
		t.Errorf("l = %+v, want a regular file", got["l"])
	}
}

func TestExtractCreatesParents(t *testing.T) {
	// Excerpts cut from a large archive lose their Directory: entries.
	dir, err := extractString(t, "Path: sys/class/net/eth0/carrier_changes\nLines: 1\n2\nMode: 444\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "sys/class/net/eth0/carrier_changes"))
	if err != nil || string(b) != "2\n" {
		t.Errorf("carrier_changes = %q, %v", b, err)
	}
}

func FuzzExtract(f *testing.F) {
	for _, name := range []string{"testdata/procfs_excerpt.ttar", "testdata/escapes.ttar"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"Path: l\nSymlinkTo: ..\nPath: l/x\nLines: 1\nx\n",
		"Path: l\nSymlinkTo: /tmp\nDirectory: l/y\n",
		"Directory: d\nMode: 0\nPath: d/f\nLines: 1\nxEOF\nMode: 7777\n",
		"Path: a\nLines: 2\nNULLBYTE\\EOF\n",
		"Path: ./a//b/\nLines: 0\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "out")
		_ = ttar.Extract(bytes.NewReader(data), dir)
		assertConfined(t, parent, "out")
		// Whatever was written is below dir; walking it must not fail and
		// every object must be one of the three kinds ttar knows.
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatalf("walk %s: %v", p, err)
			}
			if m := d.Type(); m&^(fs.ModeDir|fs.ModeSymlink) != 0 {
				t.Fatalf("%s has unexpected type %v", p, m)
			}
			return nil
		})
	})
}

func BenchmarkExtract(b *testing.B) {
	data, err := os.ReadFile("testdata/procfs_excerpt.ttar")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := ttar.Extract(bytes.NewReader(data), b.TempDir()); err != nil {
			b.Fatal(err)
		}
	}
}
