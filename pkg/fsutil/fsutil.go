// Package fsutil holds the agent's durable file writes: replacing a small
// file so that a crash leaves the old content or the new, never a torn
// one, and syncing a directory so that a file created or renamed in it
// survives a power cut.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces dir/name with data (mode 0600) through a
// synced temporary file and a rename. With syncDir the rename itself is
// made durable too, by syncing dir.
func WriteFileAtomic(dir, name string, data []byte, syncDir bool) error {
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if syncDir {
		return SyncDir(dir)
	}
	return nil
}

// SyncDir fsyncs a directory: what was created, renamed or removed in it
// is then on disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
