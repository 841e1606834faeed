package actuate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/hwheal/hwheal/pkg/fsutil"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// Ledger files in the state directory.
const (
	ledgerFile = "actions.ledger"
	lockFile   = "actions.lock"
)

// Ledger bounds: past compactLines lines the ledger is rewritten without
// the actions that finished more than keepFinished ago.
const (
	compactLines = 10000
	keepFinished = 90 * 24 * time.Hour
)

// ErrLocked is returned by New when another actuator holds the state
// directory's ledger.
var ErrLocked = errors.New("action ledger is in use by another process")

// Ledger events and outcomes as written.
const (
	evStarted  = "started"
	evFinished = "finished"
)

// record is one line of the ledger, JSON. A started line is written and
// fsynced before an action runs; a finished line when its final update
// is spooled. A refused order has a finished line only.
type record struct {
	ID      string    `json:"id"`
	Event   string    `json:"event"`
	Type    string    `json:"type,omitempty"`
	BootID  string    `json:"boot_id,omitempty"`
	DryRun  bool      `json:"dry_run,omitempty"`
	Outcome string    `json:"outcome,omitempty"`
	Time    time.Time `json:"time"`
}

// entry is what the ledger knows of one order id.
type entry struct {
	seq      int // order of first appearance, kept by compaction
	typ      hwhealv1.ActionType
	bootID   string
	dryRun   bool
	started  time.Time // zero: never started (refused)
	finished time.Time
	outcome  string // "" until finished
	done     bool
}

// ledger is the on-disk list of order ids the agent started and finished:
// what makes an id run at most once across restarts, and what the
// reboot-loop guard counts. It is used from one goroutine at a time.
type ledger struct {
	dir, path string
	log       *slog.Logger
	now       func() time.Time
	// rebootWindow: reboots started within it survive compaction whatever
	// their age.
	rebootWindow time.Duration

	lock      *os.File
	f         *os.File // O_APPEND
	size      int64
	lines     int
	compactAt int
	entries   map[string]*entry
	nextSeq   int
}

func openLedger(dir string, rebootWindow time.Duration, now func() time.Time, log *slog.Logger) (*ledger, error) {
	l := &ledger{
		dir: dir, path: filepath.Join(dir, ledgerFile), log: log, now: now, rebootWindow: rebootWindow,
		entries: map[string]*entry{}, compactAt: compactLines,
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open ledger lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", l.path, ErrLocked)
		}
		return nil, fmt.Errorf("lock ledger: %w", err)
	}
	l.lock = lock
	if err := l.load(); err != nil {
		l.close()
		return nil, err
	}
	if l.lines > l.compactAt {
		if err := l.compact(); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

// load reads the ledger and opens it for appending. A last line cut short
// (a crash in the middle of a write) is cut away: its start was never
// fsynced, so that action never ran. A damaged line before the last one
// is an error: the ledger cannot be trusted to keep an id from running
// twice.
func (l *ledger) load() error {
	_, statErr := os.Stat(l.path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	l.f = f
	if created {
		if err := fsutil.SyncDir(l.dir); err != nil {
			return err
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("read ledger %s: %w", l.path, err)
	}
	good, lineNo := 0, 0
	for len(data[good:]) > 0 {
		rest := data[good:]
		nl := bytes.IndexByte(rest, '\n')
		lineNo++
		var rec record
		var perr error
		if nl < 0 {
			perr = errors.New("line not ended")
		} else {
			perr = parseRecord(rest[:nl], &rec)
		}
		if perr != nil {
			if nl < 0 || len(bytes.TrimRight(rest[nl+1:], "\x00\n")) == 0 {
				// The last line: a write cut short.
				l.log.Warn("action ledger ends in a partial line, cutting it", "path", l.path, "line", lineNo, "err", perr)
				if err := f.Truncate(int64(good)); err != nil {
					return fmt.Errorf("cut ledger %s at line %d: %w", l.path, lineNo, err)
				}
				if err := f.Sync(); err != nil {
					return fmt.Errorf("sync ledger %s: %w", l.path, err)
				}
				break
			}
			return fmt.Errorf("ledger %s:%d: %w (the ledger keeps actions from running twice; move it away to start afresh)", l.path, lineNo, perr)
		}
		l.apply(rec)
		l.lines++
		good += nl + 1
	}
	l.size = int64(good)
	return nil
}

func parseRecord(line []byte, rec *record) error {
	if err := json.Unmarshal(line, rec); err != nil {
		return err
	}
	switch {
	case rec.ID == "":
		return errors.New("record without id")
	case rec.Event != evStarted && rec.Event != evFinished:
		return fmt.Errorf("unknown event %q", rec.Event)
	}
	return nil
}

func (l *ledger) apply(rec record) {
	e := l.entries[rec.ID]
	if e == nil {
		e = &entry{seq: l.nextSeq}
		l.nextSeq++
		l.entries[rec.ID] = e
	}
	if rec.Type != "" {
		e.typ = parseTypeName(rec.Type)
	}
	switch rec.Event {
	case evStarted:
		e.bootID, e.dryRun, e.started = rec.BootID, rec.DryRun, rec.Time
	case evFinished:
		e.done, e.outcome, e.finished = true, rec.Outcome, rec.Time
	}
}

// parseTypeName reads action.TypeLabel's output back.
func parseTypeName(s string) hwhealv1.ActionType {
	if t, ok := action.ParseType(s); ok {
		return t
	}
	if n, err := strconv.Atoi(s); err == nil {
		return hwhealv1.ActionType(n) // a type this build has no name for
	}
	return hwhealv1.ActionType(hwhealv1.ActionType_value[s])
}

func (l *ledger) get(id string) *entry { return l.entries[id] }

// start records that id is about to run; it returns once that is on disk.
func (l *ledger) start(id string, t hwhealv1.ActionType, bootID string, dryRun bool) error {
	return l.append(record{ID: id, Event: evStarted, Type: action.TypeLabel(t), BootID: bootID, DryRun: dryRun, Time: l.now()})
}

// finish records how id ended (outcome "refused" for an order that never
// started).
func (l *ledger) finish(id string, t hwhealv1.ActionType, outcome string) error {
	return l.append(record{ID: id, Event: evFinished, Type: action.TypeLabel(t), Outcome: outcome, Time: l.now()})
}

func (l *ledger) append(rec record) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode ledger record: %w", err)
	}
	line = append(line, '\n')
	if _, err := l.f.Write(line); err != nil {
		// Leave no half line for the next record to follow.
		l.f.Truncate(l.size)
		return fmt.Errorf("write ledger %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync ledger %s: %w", l.path, err)
	}
	l.size += int64(len(line))
	l.lines++
	l.apply(rec)
	if l.lines > l.compactAt {
		if err := l.compact(); err != nil {
			// The record is on disk; a ledger that stays long is no
			// danger, and the next append tries again.
			l.log.Error("action ledger compaction failed", "path", l.path, "err", err)
		}
	}
	return nil
}

// reboots counts the reboots (not dry runs) started after since.
func (l *ledger) reboots(since time.Time) int {
	n := 0
	for _, e := range l.entries {
		if e.typ == hwhealv1.ActionType_ACTION_TYPE_REBOOT && !e.dryRun && !e.started.IsZero() && e.started.After(since) {
			n++
		}
	}
	return n
}

// unfinished lists the ids started and not finished, oldest first.
func (l *ledger) unfinished() []string {
	var ids []string
	for id, e := range l.entries {
		if !e.started.IsZero() && !e.done {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int { return l.entries[a].seq - l.entries[b].seq })
	return ids
}

// compact rewrites the ledger, through a temporary file and a rename,
// without the actions that finished more than keepFinished ago (a
// collector resends an order only until its final update is stored, so
// such an id never comes back). Unfinished actions and reboots within the
// guard's window are always kept.
func (l *ledger) compact() error {
	now := l.now()
	type kept struct {
		id string
		e  *entry
	}
	var keep []kept
	for id, e := range l.entries {
		recentReboot := e.typ == hwhealv1.ActionType_ACTION_TYPE_REBOOT && !e.started.IsZero() && now.Sub(e.started) < l.rebootWindow
		if !e.done || now.Sub(e.finished) < keepFinished || recentReboot {
			keep = append(keep, kept{id, e})
		}
	}
	slices.SortFunc(keep, func(a, b kept) int { return a.e.seq - b.e.seq })
	var buf bytes.Buffer
	lines := 0
	enc := json.NewEncoder(&buf)
	for _, k := range keep {
		e := k.e
		if !e.started.IsZero() {
			enc.Encode(record{ID: k.id, Event: evStarted, Type: action.TypeLabel(e.typ), BootID: e.bootID, DryRun: e.dryRun, Time: e.started})
			lines++
		}
		if e.done {
			enc.Encode(record{ID: k.id, Event: evFinished, Type: action.TypeLabel(e.typ), Outcome: e.outcome, Time: e.finished})
			lines++
		}
	}
	if err := fsutil.WriteFileAtomic(l.dir, ledgerFile, buf.Bytes(), true); err != nil {
		return fmt.Errorf("replace ledger: %w", err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("reopen ledger: %w", err)
	}
	l.f.Close()
	l.f = f
	l.size = int64(buf.Len())
	dropped := len(l.entries) - len(keep)
	l.entries = make(map[string]*entry, len(keep))
	for _, k := range keep {
		l.entries[k.id] = k.e
	}
	l.log.Info("action ledger compacted", "path", l.path, "lines_before", l.lines, "lines", lines, "dropped_actions", dropped)
	l.lines = lines
	// A ledger full of recent actions would otherwise be rewritten on
	// every append.
	l.compactAt = max(compactLines, 2*lines)
	return nil
}

func (l *ledger) close() error {
	var err error
	if l.f != nil {
		err = l.f.Close()
	}
	if l.lock != nil {
		l.lock.Close() // releases the flock
	}
	return err
}
