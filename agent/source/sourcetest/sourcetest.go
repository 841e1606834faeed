// Package sourcetest holds what the tests of the agent's sources share: a
// Sink that records, a log buffer that can be read while a source writes,
// small observation helpers, and RunLoop, the conformance check every
// periodic source's test runs against its own fixture.
package sourcetest

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Sink records what a source hands over. The zero value is ready; it is
// safe for concurrent use.
type Sink struct {
	mu     sync.Mutex
	obs    []*hwhealv1.Observation
	recs   []kernlog.Record
	faults []*hwhealv1.Fault
}

var _ source.Sink = (*Sink)(nil)

// Observe implements source.Sink.
func (s *Sink) Observe(o *hwhealv1.Observation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.obs = append(s.obs, o)
}

// Log implements source.Sink.
func (s *Sink) Log(r kernlog.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, r)
}

// Raise implements source.Sink.
func (s *Sink) Raise(f *hwhealv1.Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// Faults returns a copy of the faults raised so far, in order.
func (s *Sink) Faults() []*hwhealv1.Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.faults)
}

// Observations returns a copy of what was observed so far, in order.
func (s *Sink) Observations() []*hwhealv1.Observation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.obs)
}

// Records returns a copy of the log records taken so far, in order.
func (s *Sink) Records() []kernlog.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.recs)
}

// LogBuffer is a slog handler target that tests can read while a source
// writes to it.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// NewLogger returns a text logger at debug level writing to w.
func NewLogger(w *LogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// SampleMap returns an observation's samples by name.
func SampleMap(o *hwhealv1.Observation) map[string]float64 {
	m := map[string]float64{}
	for _, s := range o.GetSamples() {
		m[s.GetName()] = s.GetValue()
	}
	return m
}

// ByName returns observations by part name; a later one wins.
func ByName(obs []*hwhealv1.Observation) map[string]*hwhealv1.Observation {
	m := map[string]*hwhealv1.Observation{}
	for _, o := range obs {
		m[o.GetPart().GetName()] = o
	}
	return m
}

// Names returns the part names of obs, in order.
func Names(obs []*hwhealv1.Observation) []string {
	var out []string
	for _, o := range obs {
		out = append(out, o.GetPart().GetName())
	}
	return out
}

// WriteFile writes content to path, making its directories.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ReadMalformed takes one reading that must fail because a file is
// malformed: the error names each of wantErr and does not pass for an
// absent interface (which would stop the source for good). It returns what
// the reading still produced.
func ReadMalformed(t *testing.T, read func(context.Context) ([]*hwhealv1.Observation, error), wantErr ...string) []*hwhealv1.Observation {
	t.Helper()
	obs, err := read(context.Background())
	if err == nil {
		t.Fatal("Read returned no error")
	}
	for _, w := range wantErr {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a malformed file reads as an absent interface: %v", err)
	}
	return obs
}

// SamplesByName maps each observation's part name to its samples.
func SamplesByName(obs []*hwhealv1.Observation) map[string]map[string]float64 {
	m := make(map[string]map[string]float64, len(obs))
	for _, o := range obs {
		m[o.GetPart().GetName()] = SampleMap(o)
	}
	return m
}
