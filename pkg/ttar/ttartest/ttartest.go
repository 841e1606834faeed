// Package ttartest unpacks ttar fixture archives for tests: the one helper
// every package with sysfs/procfs fixtures needs, kept out of package ttar so
// that production code never links package testing.
package ttartest

import (
	"os"
	"testing"

	"github.com/hwheal/hwheal/pkg/ttar"
)

// ExtractFile extracts the ttar archive at path into a fresh t.TempDir() and
// returns that directory. The archive's own entry names decide the layout
// below it (node_exporter's sys.ttar yields <dir>/sys/..., procfs's
// fixtures.ttar <dir>/fixtures/...). It fails the test on any error.
func ExtractFile(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open fixture archive: %v", err)
	}
	defer f.Close()
	dir := t.TempDir()
	if err := ttar.Extract(f, dir); err != nil {
		t.Fatalf("extract %s: %v", path, err)
	}
	return dir
}
