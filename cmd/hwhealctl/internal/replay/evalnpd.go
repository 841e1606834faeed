package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// NPDRule is one rule of a node-problem-detector system log monitor
// config (config/kernel-monitor.json and its siblings): a "temporary"
// rule reports an event, a "permanent" one sets a condition; both mean
// NPD calls the log a problem.
type NPDRule struct {
	Type      string `json:"type"`
	Condition string `json:"condition"`
	Reason    string `json:"reason"`
	Pattern   string `json:"pattern"`
	re        *regexp.Regexp
}

// NPDMonitor is one NPD system log monitor config.
type NPDMonitor struct {
	Name       string    `json:"-"` // the file it was read from
	Plugin     string    `json:"plugin"`
	Source     string    `json:"source"`
	BufferSize int       `json:"bufferSize"`
	Rules      []NPDRule `json:"rules"`
}

// npdDefaultBuffer is NPD's log buffer when a config sets none
// (pkg/systemlogmonitor/config.go, ApplyDefaultConfiguration).
const npdDefaultBuffer = 10

// ReadNPDMonitor parses one NPD monitor config. Its rules' patterns are
// compiled as NPD compiles them (pkg/systemlogmonitor/log_buffer.go,
// CompilePattern: the pattern with `\z` appended, Go's RE2, so the
// reading is NPD's own). name names the config in errors.
func ReadNPDMonitor(r io.Reader, name string) (NPDMonitor, error) {
	var m NPDMonitor
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return NPDMonitor{}, fmt.Errorf("%s: %w", name, err)
	}
	m.Name = name
	if m.BufferSize <= 0 {
		m.BufferSize = npdDefaultBuffer
	}
	for i := range m.Rules {
		ru := &m.Rules[i]
		if ru.Pattern == "" {
			continue // a custom plugin's rule runs a program instead
		}
		if ru.Reason == "" {
			return NPDMonitor{}, fmt.Errorf("%s: rule %d: no reason", name, i+1)
		}
		re, err := regexp.Compile(ru.Pattern + `\z`)
		if err != nil {
			return NPDMonitor{}, fmt.Errorf("%s: rule %s: %w", name, ru.Reason, err)
		}
		ru.re = re
	}
	return m, nil
}

// NPDLabeler labels kernel log lines the way NPD's kmsg monitors would:
// after each line is pushed into a monitor's buffer (its last
// bufferSize lines joined by "\n"), a rule whose pattern matches the end
// of the buffer fires, and the line that completed the match is a
// problem line with that rule's reason.
type NPDLabeler struct {
	monitors []NPDMonitor
}

// NewNPDLabeler labels with the rules of the monitors that read the
// kernel log from /dev/kmsg (plugin "kmsg"), which is where NPD's
// kernel_log_generator writes its samples.
func NewNPDLabeler(monitors []NPDMonitor) (*NPDLabeler, error) {
	l := &NPDLabeler{}
	for _, m := range monitors {
		if m.Plugin == "kmsg" && slices.ContainsFunc(m.Rules, func(r NPDRule) bool { return r.re != nil }) {
			l.monitors = append(l.monitors, m)
		}
	}
	if len(l.monitors) == 0 {
		return nil, errors.New("no node-problem-detector monitor with plugin kmsg and rules")
	}
	return l, nil
}

// LoadNPDConfigDir reads the *.json files of dir (NPD's config/ folder)
// whose plugin is "kmsg" and returns their labeler. The other files
// (journald, file and custom-plugin monitors, exporters, module lists)
// are left out unread beyond their plugin field.
func LoadNPDConfigDir(dir string) (*NPDLabeler, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var ms []NPDMonitor
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		var probe struct {
			Plugin string `json:"plugin"`
		}
		if json.Unmarshal(b, &probe) != nil || probe.Plugin != "kmsg" {
			continue
		}
		m, err := ReadNPDMonitor(bytes.NewReader(b), n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	l, err := NewNPDLabeler(ms)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return l, nil
}

// findNPDConfigDir returns the config/ folder of the NPD checkout a
// sample belongs to: the nearest ancestor of the sample holding
// config/kernel-monitor.json.
func findNPDConfigDir(sample string) (string, error) {
	abs, err := filepath.Abs(sample)
	if err != nil {
		return "", err
	}
	for dir := filepath.Dir(abs); ; {
		c := filepath.Join(dir, "config")
		if _, err := os.Stat(filepath.Join(c, "kernel-monitor.json")); err == nil {
			return c, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s: no node-problem-detector config/kernel-monitor.json in any folder above it", sample)
		}
		dir = parent
	}
}

// Label reads one sample (a stream of its own, as NPD's generator feeds
// each problem file) and calls fn for each non-blank line with the
// reasons of the rules it fires, sorted, none for a line NPD would not
// report. Lines are trimmed of surrounding blanks first, as the
// generator's shell `read` does before writing them to /dev/kmsg.
func (l *NPDLabeler) Label(r io.Reader, name string, fn func(line string, row int, reasons []string) error) error {
	bufs := make([][]string, len(l.monitors))
	return scanLines(r, name, func(line string, row int) error {
		line = strings.TrimSpace(line)
		if line == "" {
			return nil
		}
		var reasons []string
		for i, m := range l.monitors {
			b := append(bufs[i], line)
			if len(b) > m.BufferSize {
				b = b[len(b)-m.BufferSize:]
			}
			bufs[i] = b
			joined := strings.Join(b, "\n")
			for _, ru := range m.Rules {
				if ru.re != nil && ru.re.MatchString(joined) && !slices.Contains(reasons, ru.Reason) {
					reasons = append(reasons, ru.Reason)
				}
			}
		}
		slices.Sort(reasons)
		return fn(line, row, reasons)
	})
}
