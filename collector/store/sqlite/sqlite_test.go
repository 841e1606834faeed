package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/collector/store/storetest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "hwheal.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
	storetest.RunDurable(t, func(t *testing.T) func(t *testing.T) store.Store {
		path := filepath.Join(t.TempDir(), "hwheal.db")
		return func(t *testing.T) store.Store {
			s, err := Open(t.Context(), path, Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		}
	})
}

func TestOpenRejectsNonFilePaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db?mode=memory"} {
		t.Run(p, func(t *testing.T) {
			if s, err := Open(t.Context(), p, Options{}); err == nil {
				s.Close()
				t.Errorf("Open(%q) succeeded", p)
			}
		})
	}
}

func TestOpenPathWithSpecialCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a dir?x=1#frag", "hw heal.db")
	if err := mkdirAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if _, err := s.Hello(t.Context(), store.Hello{Node: "n1", StreamID: "s"}); err != nil {
		t.Fatal(err)
	}
	if !fileExists(path) {
		t.Errorf("database not created at %s", path)
	}
}

func TestPragmas(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	tests := []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.w, "journal_mode", "wal"},
		{s.w, "synchronous", "2"}, // FULL
		{s.w, "foreign_keys", "1"},
		{s.w, "busy_timeout", "10000"},
		{s.w, "cache_size", "-65536"},
		{s.r, "query_only", "1"},
		{s.r, "busy_timeout", "10000"},
		{s.r, "journal_mode", "wal"},
	}
	for _, tt := range tests {
		var got string
		if err := tt.db.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
		}
	}
	// The read pool cannot write.
	if _, err := s.r.ExecContext(t.Context(), `DELETE FROM nodes`); err == nil {
		t.Error("write through the read pool succeeded")
	}
}

func schemaVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrations(t *testing.T) {
	known, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if len(known) == 0 {
		t.Fatal("no embedded migrations")
	}

	t.Run("fresh database", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db")
		s, err := Open(t.Context(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if v := schemaVersion(t, path); v != len(known) {
			t.Errorf("schema version %d, want %d", v, len(known))
		}
	})

	t.Run("reopen is idempotent", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db")
		for i := range 3 {
			s, err := Open(t.Context(), path, Options{})
			if err != nil {
				t.Fatalf("open %d: %v", i, err)
			}
			if _, err := s.Hello(t.Context(), store.Hello{Node: "n1", StreamID: "s"}); err != nil {
				t.Fatal(err)
			}
			s.Close()
		}
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var rows, nodes int
		if err := db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`SELECT COUNT(*) FROM nodes`).Scan(&nodes); err != nil {
			t.Fatal(err)
		}
		if rows != len(known) || nodes != 1 {
			t.Errorf("%d migration rows, %d nodes; want %d, 1", rows, nodes, len(known))
		}
	})

	t.Run("newer database refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db")
		s, err := Open(t.Context(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied) VALUES (?, 'from_the_future.sql', 0)`, len(known)+1); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err = Open(t.Context(), path, Options{})
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("Open of a newer database: %v, want ErrSchemaTooNew", err)
		}
		if !strings.Contains(err.Error(), "version") {
			t.Errorf("error %q does not name the version", err)
		}
	})

	t.Run("upgrade from an older version", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db")
		db := rawWriter(t, path)
		v1 := fstest.MapFS{"m/0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);`)}}
		ms1, err := loadMigrations(v1, "m")
		if err != nil {
			t.Fatal(err)
		}
		if v, err := migrate(t.Context(), db, ms1, time.Unix(0, 0), discard()); err != nil || v != 1 {
			t.Fatalf("migrate v1 = %d, %v", v, err)
		}
		v2 := fstest.MapFS{
			"m/0001_a.sql": v1["m/0001_a.sql"],
			"m/0002_b.sql": {Data: []byte(`ALTER TABLE a ADD COLUMN y TEXT NOT NULL DEFAULT 'new'; CREATE TABLE b (z INTEGER);`)},
		}
		ms2, err := loadMigrations(v2, "m")
		if err != nil {
			t.Fatal(err)
		}
		if v, err := migrate(t.Context(), db, ms2, time.Unix(0, 0), discard()); err != nil || v != 2 {
			t.Fatalf("migrate v2 = %d, %v", v, err)
		}
		var x int
		var y string
		if err := db.QueryRow(`SELECT x, y FROM a`).Scan(&x, &y); err != nil || x != 1 || y != "new" {
			t.Errorf("row after upgrade: %d %q %v; want 1 new: 0001 must not run again", x, y, err)
		}
	})

	// The shipped migrations, from every older version a database may be
	// at: Open brings it to the newest.
	for from := 1; from < len(known); from++ {
		t.Run(fmt.Sprintf("open upgrades from version %d", from), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			db := rawWriter(t, path)
			if v, err := migrate(t.Context(), db, known[:from], time.Unix(0, 0), discard()); err != nil || v != from {
				t.Fatalf("migrate to %d = %d, %v", from, v, err)
			}
			db.Close()
			s, err := Open(t.Context(), path, Options{})
			if err != nil {
				t.Fatalf("Open of a version %d database: %v", from, err)
			}
			s.Close()
			if v := schemaVersion(t, path); v != len(known) {
				t.Errorf("schema version %d after Open, want %d", v, len(known))
			}
		})
	}

	t.Run("0002 keeps version 1 faults and counts their next record", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db")
		db := rawWriter(t, path)
		if _, err := migrate(t.Context(), db, known[:1], time.Unix(0, 0), discard()); err != nil {
			t.Fatal(err)
		}
		// What a version 1 store wrote: a node, its stream and a fault
		// counted 3 times.
		for _, q := range []string{
			`INSERT INTO nodes (name, health, first_seen, last_seen, open_faults) VALUES ('n1', 2, 0, 0, 1)`,
			`INSERT INTO streams (node, stream_id, acked_seq) VALUES ('n1', 's1', 3)`,
			`INSERT INTO faults (node, class, part_key, severity, state, count, first_seen, last_seen)
				VALUES ('n1', 'disk.io_error', '` + partKey(diskPart("sda")) + `', 3, 1, 3, 0, 0)`,
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		db.Close()
		s, err := Open(t.Context(), path, Options{})
		if err != nil {
			t.Fatalf("Open of a version 1 database: %v", err)
		}
		defer s.Close()
		if _, err := s.Hello(t.Context(), store.Hello{Node: "n1", StreamID: "s2"}); err != nil {
			t.Fatal(err)
		}
		// The row has no record mark: the first record counts, its
		// redelivery does not.
		for i, wantDups := range []int{0, 1} {
			res, err := s.Apply(t.Context(), []store.Batch{{Node: "n1", StreamID: "s2", Reports: []*hwhealv1.Report{
				kmsgFault(uint64(i+1), "boot", 42, diskPart("sda")),
			}}})
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Duplicates != wantDups {
				t.Errorf("delivery %d: %d duplicates, want %d", i+1, res[0].Duplicates, wantDups)
			}
		}
		faults, _, err := s.ListFaults(t.Context(), store.FaultFilter{Node: "n1"}, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(faults) != 1 || faults[0].GetCount() != 4 {
			t.Errorf("faults after upgrade = %v, want the version 1 fault counted 3+1", faults)
		}
	})

	t.Run("failed migration rolls back", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db")
		db := rawWriter(t, path)
		bad := fstest.MapFS{
			"m/0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)},
			"m/0002_b.sql": {Data: []byte(`CREATE TABLE b (x INTEGER); THIS IS NOT SQL;`)},
		}
		ms, err := loadMigrations(bad, "m")
		if err != nil {
			t.Fatal(err)
		}
		_, err = migrate(t.Context(), db, ms, time.Unix(0, 0), discard())
		if err == nil || !strings.Contains(err.Error(), "0002_b.sql") {
			t.Fatalf("migrate error %v, want one naming 0002_b.sql", err)
		}
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name IN ('a', 'b')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d tables of the failed migration run remain, want 0", n)
		}
	})

	t.Run("bad file names", func(t *testing.T) {
		for name, fsys := range map[string]fstest.MapFS{
			"no number": {"m/init.sql": {}},
			"gap":       {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
			"repeat":    {"m/0001_a.sql": {}, "m/1_b.sql": {}},
			"zero":      {"m/0000_a.sql": {}},
		} {
			if _, err := loadMigrations(fsys, "m"); err == nil {
				t.Errorf("%s: loadMigrations accepted it", name)
			}
		}
	})
}

func diskPart(name string) *hwhealv1.Part {
	return &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: name}
}

// kmsgFault is a disk.io_error report raised from kernel record (boot, kseq).
func kmsgFault(seq uint64, boot string, kseq uint64, part *hwhealv1.Part) *hwhealv1.Report {
	return &hwhealv1.Report{Seq: seq, Item: &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{
		FaultClass: "disk.io_error", Severity: hwhealv1.Severity_SEVERITY_WARNING, Part: part,
		Evidence: &hwhealv1.Evidence{KernelLog: &hwhealv1.KernelLogRecord{BootId: boot, Sequence: kseq}},
	}}}
}

func rawWriter(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOptionsNow(t *testing.T) {
	fixed := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "db"), Options{Now: func() time.Time { return fixed }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Hello(context.Background(), store.Hello{Node: "n1", StreamID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Events[0].GetTime().AsTime(); !got.Equal(fixed) {
		t.Errorf("event time %v, want the store clock %v", got, fixed)
	}
	n, err := s.GetNode(t.Context(), "n1")
	if err != nil {
		t.Fatal(err)
	}
	if !n.GetFirstSeen().AsTime().Equal(fixed) {
		t.Errorf("first seen %v, want %v", n.GetFirstSeen().AsTime(), fixed)
	}
}

func TestUseAfterCloseFailsCleanly(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "hwheal.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := st.Disconnected(ctx, "n", time.Now()); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Disconnected after Close: %v, want ErrClosed", err)
	}
	if _, err := st.Hello(ctx, store.Hello{Node: "n", StreamID: "s"}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Hello after Close: %v, want ErrClosed", err)
	}
	if _, _, err := st.ListNodes(ctx, store.NodeFilter{}, store.Page{Size: 10}); err == nil {
		t.Fatal("ListNodes after Close succeeded")
	}
}
