package atomicfile

import (
	"crypto/sha256"
	"sync"
)

// Doc holds the parsed form S of a small file that an admin command
// rewrites and a running service re-reads (the client allow-list, the
// destination list). Readers take the snapshot in force; a reload or an
// update swaps in a whole new one, never a half-changed one. The zero value
// holds the zero S and no file.
type Doc[S any] struct {
	update sync.Mutex   // serializes read-modify-write changes and reloads
	mu     sync.RWMutex // guards snap and hash
	snap   S
	hash   [sha256.Size]byte // of the bytes last loaded or saved
}

// Get returns the snapshot in force.
func (d *Doc[S]) Get() S {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.snap
}

// Load puts snap, parsed from data, in force (the first read of the file).
func (d *Doc[S]) Load(snap S, data []byte) {
	d.mu.Lock()
	d.snap, d.hash = snap, sha256.Sum256(data)
	d.mu.Unlock()
}

// Reload parses data and puts it in force if it differs from what was last
// loaded or saved. On a parse error the snapshot in force stays: a
// half-written or bad file never empties or widens what the service obeys.
func (d *Doc[S]) Reload(data []byte, parse func([]byte) (S, error)) (bool, error) {
	sum := sha256.Sum256(data)
	d.update.Lock()
	defer d.update.Unlock()
	d.mu.RLock()
	same := sum == d.hash
	d.mu.RUnlock()
	if same {
		return false, nil
	}
	snap, err := parse(data)
	if err != nil {
		return false, err
	}
	d.Load(snap, data)
	return true, nil
}

// Update derives a new snapshot from the one in force and puts it in force,
// unless change fails. Changes are serialized, so none is lost.
func (d *Doc[S]) Update(change func(cur S) (S, error)) error {
	d.update.Lock()
	defer d.update.Unlock()
	next, err := change(d.Get())
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.snap = next
	d.mu.Unlock()
	return nil
}

// Save writes data (the encoded snapshot) to path atomically and records it
// as the file's content, so the next Reload of the same bytes is a no-op.
func (d *Doc[S]) Save(path string, data []byte) error {
	if err := Write(path, data); err != nil {
		return err
	}
	d.mu.Lock()
	d.hash = sha256.Sum256(data)
	d.mu.Unlock()
	return nil
}
