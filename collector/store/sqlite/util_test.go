package sqlite

import (
	"log/slog"
	"os"
)

func mkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
