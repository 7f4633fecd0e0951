// Package atomicfile writes small files that a running service re-reads (the
// sealed keyring, the client allow-list, the destination list) so that a
// reader sees the old file or the new one whole, never a torn one, and reads
// them with a size cap so a swapped-in huge file cannot exhaust memory.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrTooLarge is returned by ReadCapped for a file over its limit.
var ErrTooLarge = errors.New("atomicfile: file too large")

// Write replaces path with data (mode 0600): a temporary file beside it,
// fsynced, renamed over path, then the directory fsynced, because the rename
// is durable only once the directory entry is.
func Write(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// CreateTemp already uses 0600; Chmod makes it independent of that detail.
	if err = f.Chmod(0o600); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("atomicfile: sync: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: open dir: %w", err)
	}
	defer d.Close()
	// Some file systems cannot sync a directory; the rename stands anyway.
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("atomicfile: sync dir: %w", err)
	}
	return nil
}

// ReadCapped reads path whole, or fails with ErrTooLarge past limit bytes.
func ReadCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("atomicfile: %w", err)
	}
	defer f.Close()
	return ReadOpen(f, limit)
}

// ReadOpen is ReadCapped of a file already open (a reader that also wants
// the file's identity from f.Stat, of the very file it read).
func ReadOpen(f *os.File, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("atomicfile: read %s: %w", filepath.Base(f.Name()), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, filepath.Base(f.Name()), limit)
	}
	return data, nil
}
