// Package sqlite is the collector's embedded store: store.Store on one
// SQLite file through modernc.org/sqlite (pure Go, so the collector stays a
// static binary). It owns the schema and its migrations.
//
// SQLite takes one writer at a time, so the Store has one writer connection
// through which every write goes, in a transaction, and a separate pool of
// read-only connections: in WAL mode readers see the last commit and never
// wait for the writer. Apply writes many agent batches in one transaction,
// which is what lets one collector carry a large fleet: the cost of a commit
// (an fsync of the WAL) is paid once per group of batches, not once per
// report.
//
// Faults resolve by themselves through a due_at column that every write
// keeps equal to the time, on the collector's clock, the fault's evidence
// will have been gone for its clear time (NULL while that cannot happen,
// e.g. its node is disconnected), so the periodic quiet pass reads one
// range of a small partial index: its cost is that of the faults due, not
// of the fault table. A fault derived from readings also needs a newer
// reading that does not show it: one lookup by the key of
// observations_latest.
//
// Remediation follows the same rules. An action's change, its audit
// records and its events are one transaction, and so is an agent's update
// with the acknowledgement of its sequence number, so an update is applied
// once. Audit ids are the previous record's plus one, read in the
// transaction that appends (never cached across transactions): a rollback
// leaves neither a gap nor a wrong head. The actions that have not ended,
// which the planner reads on every pass, are a partial index of their own
// (actions_active), so that read costs them and not the history; steps
// live in their own table, appended without rewriting the action, and
// listings never read them.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/hwheal/hwheal/collector/store"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Options tunes a Store. The zero value is usable.
type Options struct {
	// Logger receives migration and maintenance messages (default: discard).
	Logger *slog.Logger
	// Now is the clock used when a caller leaves a time zero (default:
	// time.Now). Tests set it to get repeatable times.
	Now func() time.Time
	// ReadConns is the size of the read pool (default: GOMAXPROCS, at
	// least 4).
	ReadConns int
	// BusyTimeout is how long a connection waits for a lock another
	// process holds (default 10s). Within one Store writes never contend:
	// they share one connection.
	BusyTimeout time.Duration
}

// Store is store.Store on SQLite. Every method is safe for concurrent use.
type Store struct {
	w   *sql.DB // exactly one connection: SQLite's single writer
	r   *sql.DB // read-only pool
	log *slog.Logger
	now func() time.Time
	st  *writeStmts // nil once closed

	closeMu sync.RWMutex // writes hold it shared, Close exclusively
	closed  bool
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store at path, a file name, and
// migrates its schema to the newest this binary knows. A database with a
// newer schema is refused with ErrSchemaTooNew. In-memory databases are not
// supported: the writer and the read pool must share one file.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" || path == ":memory:" || len(path) >= 5 && path[:5] == "file:" {
		return nil, fmt.Errorf("open sqlite store %q: want a plain file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = max(4, runtime.GOMAXPROCS(0))
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	busy := strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)

	// BEGIN IMMEDIATE takes the write lock up front, so a transaction never
	// fails half way to upgrade a read lock when another process (a backup,
	// a second collector by mistake) holds it; busy_timeout then waits.
	wq := url.Values{
		"_busy_timeout": {busy},
		"_journal_mode": {"WAL"},
		// FULL: agents delete what a commit acknowledged, so it must survive a power cut.
		"_synchronous":  {"FULL"},
		"_foreign_keys": {"1"},
		"_txlock":       {"immediate"},
		// The writer touches every node's rows; a cache of 64 MiB keeps a
		// fleet's hot pages (node, stream and open-fault index pages) in
		// memory instead of re-reading them per batch.
		"_pragma": {"cache_size(-65536)", "temp_store(MEMORY)"},
	}
	w, err := sql.Open("sqlite", dsn(abs, wq))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	s := &Store{w: w, log: opts.Logger, now: opts.Now}
	fail := func(err error) (*Store, error) {
		_ = s.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return fail(err)
	}
	if _, err := migrate(ctx, w, ms, opts.Now(), opts.Logger); err != nil {
		return fail(err)
	}

	rq := url.Values{
		"_busy_timeout": {busy},
		"_query_only":   {"1"},
		"_pragma":       {"cache_size(-16384)", "temp_store(MEMORY)"},
	}
	r, err := sql.Open("sqlite", dsn(abs, rq))
	if err != nil {
		return fail(err)
	}
	r.SetMaxOpenConns(opts.ReadConns)
	r.SetMaxIdleConns(opts.ReadConns)
	s.r = r
	if err := r.PingContext(ctx); err != nil {
		return fail(err)
	}

	if s.st, err = prepareWrite(ctx, w); err != nil {
		return fail(err)
	}
	return s, nil
}

func dsn(abs string, q url.Values) string {
	return "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
}

// Close closes the store. It runs PRAGMA optimize first, which SQLite
// recommends on close so that the query planner has fresh statistics.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.st != nil {
		errs = append(errs, s.st.close())
		s.st = nil
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		if _, err := s.w.Exec(`PRAGMA optimize`); err != nil && !errors.Is(err, sql.ErrConnDone) {
			s.log.Warn("pragma optimize failed", "err", err)
		}
		errs = append(errs, s.w.Close())
	}
	return errors.Join(errs...)
}
