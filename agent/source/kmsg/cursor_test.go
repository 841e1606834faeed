package kmsg

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestSaveCursorAtomic: without an fsync, atomicity rests on the rename
// alone. A reader racing a stream of saves must only ever find a whole
// cursor, and the saves must leave no temporary files behind.
func TestSaveCursorAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, cursorFile)
	const boot = "0c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"
	if err := saveCursor(path, boot, 1); err != nil {
		t.Fatal(err)
	}
	const saves = 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		last := uint64(0)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, seq, err := loadCursor(path)
			if err != nil || b != boot {
				t.Errorf("reader found a torn cursor: boot %q seq %d err %v", b, seq, err)
				return
			}
			if seq < last {
				t.Errorf("cursor went back from %d to %d", last, seq)
				return
			}
			last = seq
		}
	})
	for i := uint64(2); i <= saves; i++ {
		// Long sequence numbers make a torn write more likely to show.
		if err := saveCursor(path, boot, i*1_000_000_007); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	b, seq, err := loadCursor(path)
	if err != nil || b != boot || seq != saves*1_000_000_007 {
		t.Fatalf("final cursor %q %d (%v), want %q %d", b, seq, err, boot, saves*1_000_000_007)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("state directory holds %v, want only %s", names, cursorFile)
	}
}
