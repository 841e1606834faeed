package sysfs

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAttr(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "speed"), "1000\n")
	write(t, filepath.Join(root, "big"), strings.Repeat("x", 3*MaxAttr))
	tests := []struct {
		name    string
		path    string
		want    string
		wantOK  bool
		wantErr bool
	}{
		{name: "present", path: "speed", want: "1000\n", wantOK: true},
		{name: "absent", path: "nope"},
		{name: "bounded", path: "big", want: strings.Repeat("x", MaxAttr), wantOK: true},
		{name: "directory is an error naming it", path: ".", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(root, tt.path)
			b, ok, err := Attr(p)
			if string(b) != tt.want || ok != tt.wantOK || (err != nil) != tt.wantErr {
				t.Fatalf("Attr = %q, %v, %v", b, ok, err)
			}
			if err != nil && !strings.Contains(err.Error(), p) {
				t.Errorf("error %v does not name %s", err, p)
			}
		})
	}
	// EISDIR stands in for a driver's refusal: listed, it means no value.
	if b, ok, err := Attr(root, syscall.EISDIR); b != nil || ok || err != nil {
		t.Errorf("Attr with EISDIR as no-value = %q, %v, %v", b, ok, err)
	}
}

func TestString(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "model"), "  Samsung SSD 980  \n")
	if got := String(filepath.Join(root, "model")); got != "Samsung SSD 980" {
		t.Errorf("String = %q", got)
	}
	if got := String(filepath.Join(root, "absent")); got != "" {
		t.Errorf("String of an absent file = %q", got)
	}
}

func TestLinksStayInRoot(t *testing.T) {
	outside := t.TempDir()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	dev := filepath.Join(root, "sys/devices/pci0000:00/0000:00:1c.0/0000:03:00.0/nvme/nvme0")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(outside, "0000:99:00.0")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	in, escape, gone := filepath.Join(root, "in"), filepath.Join(root, "escape"), filepath.Join(root, "gone")
	for link, target := range map[string]string{in: dev, escape: out, gone: filepath.Join(root, "nothing")} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}

	if p, err := Resolve(root, in); p != dev || err != nil {
		t.Errorf("Resolve(in) = %q, %v", p, err)
	}
	if p, err := Resolve(root, escape); p != "" || err == nil || !strings.Contains(err.Error(), "points outside") {
		t.Errorf("Resolve(escape) = %q, %v; want an error", p, err)
	}
	if p, err := Resolve(root, gone); p != "" || err != nil {
		t.Errorf("Resolve(gone) = %q, %v; want \"\", nil", p, err)
	}

	if got := PCIAddressOf(root, in); got != "0000:03:00.0" {
		t.Errorf("PCIAddressOf(in) = %q", got)
	}
	if got := PCIAddressOf(root, escape); got != "" {
		t.Errorf("PCIAddressOf followed a link out of root: %q", got)
	}
	if got := PCIAddressOf(root, gone); got != "" {
		t.Errorf("PCIAddressOf(gone) = %q", got)
	}
	if got := PCIAddressIn(root, filepath.Join(root, "sys/devices/platform/coretemp.0")); got != "" {
		t.Errorf("PCIAddressIn(platform) = %q", got)
	}
}

func TestInside(t *testing.T) {
	for _, tt := range []struct {
		path string
		want bool
	}{
		{"/r", true}, {"/r/a/b", true}, {"/r/..a", true}, {"/", false}, {"/rx", false}, {"/r/../x", false},
	} {
		if got := Inside("/r", tt.path); got != tt.want {
			t.Errorf("Inside(/r, %s) = %v", tt.path, got)
		}
	}
}

func TestIsPCIAddress(t *testing.T) {
	for s, want := range map[string]bool{
		"0000:3b:00.0": true, "10000:00:1f.6": true, "0000:3b:00.8": false, "0000:3B:00.0": false, "pci0000:00": false, "": false,
	} {
		if got := IsPCIAddress(s); got != want {
			t.Errorf("IsPCIAddress(%q) = %v", s, got)
		}
	}
}

func FuzzIsPCIAddress(f *testing.F) {
	for _, s := range []string{"0000:3b:00.0", "0000:3b:00.8", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if IsPCIAddress(s) && PCIAddressIn("/r", "/r/a/"+s+"/b") != s {
			t.Fatalf("a PCI address %q in a path is not found", s)
		}
	})
}
