// Package seal holds the key service's keyring in memory once it is unsealed.
// The keyring file on disk is encrypted under a master key that the process
// never reads from its own configuration in production: operators supply it as
// one or more key shares (split knowledge, PCI DSS 3.6.1.2), and until the last
// share arrives every decrypting path answers "sealed".
package seal

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/blindgate/blindgate/keyservice/keyring"
)

// ErrSealed is returned while no keyring is loaded.
var ErrSealed = errors.New("seal: key service is sealed")

// ErrBadShare is returned when the combined shares do not open the keyring;
// the collected shares are discarded so the next attempt starts afresh.
var ErrBadShare = errors.New("seal: key shares do not open the keyring")

// Holder owns the unsealed keyring and the master key that opened it (kept so
// that a rotation made by `keyservice keys rotate` can be picked up without a
// new unseal ceremony).
type Holder struct {
	path   string
	shares int

	mu      sync.RWMutex
	kr      *keyring.Keyring
	master  []byte
	pending [][]byte
	modTime time.Time
}

// New returns a sealed holder for the keyring file at path that needs the given
// number of shares (1 = a whole master key).
func New(path string, shares int) *Holder {
	if shares < 1 {
		shares = 1
	}
	return &Holder{path: path, shares: shares}
}

// Keyring returns the loaded keyring, or ErrSealed.
func (h *Holder) Keyring() (*keyring.Keyring, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.kr == nil {
		return nil, ErrSealed
	}
	return h.kr, nil
}

// Sealed reports whether the keyring is not loaded.
func (h *Holder) Sealed() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.kr == nil
}

// Status reports sealed state and how many shares are collected of how many.
func (h *Holder) Status() (sealed bool, have, need int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.kr == nil, len(h.pending), h.shares
}

// Unseal adds one key share. When enough shares are present it combines them
// and opens the keyring. It returns whether the holder is now unsealed.
func (h *Holder) Unseal(share []byte) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kr != nil {
		return true, nil
	}
	if len(share) != keyring.MasterKeySize {
		return false, fmt.Errorf("%w: a share is %d bytes", ErrBadShare, keyring.MasterKeySize)
	}
	h.pending = append(h.pending, append([]byte(nil), share...))
	if len(h.pending) < h.shares {
		return false, nil
	}
	master, err := keyring.CombineShares(h.pending...)
	h.wipePending()
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrBadShare, err)
	}
	if err := h.loadLocked(master); err != nil {
		wipe(master)
		if errors.Is(err, keyring.ErrWrongMasterKey) {
			return false, fmt.Errorf("%w: %w", ErrBadShare, err)
		}
		return false, err
	}
	return true, nil
}

// UnsealWithKey opens the keyring with a whole master key (dev mode and
// -master-key deployments).
func (h *Holder) UnsealWithKey(master []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.loadLocked(append([]byte(nil), master...))
}

// Seal drops the keyring and the master key from memory.
func (h *Holder) Seal() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.kr = nil
	wipe(h.master)
	h.master = nil
	h.wipePending()
}

// ReloadIfChanged reloads the keyring when the file changed on disk (a key
// was rotated or retired by the admin command). A failed reload keeps the
// keyring that is loaded: serving old keys beats serving none.
func (h *Holder) ReloadIfChanged() (bool, error) {
	st, err := os.Stat(h.path)
	if err != nil {
		return false, fmt.Errorf("seal: stat keyring: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kr == nil || st.ModTime().Equal(h.modTime) {
		return false, nil
	}
	kr, err := keyring.Load(h.path, h.master)
	if err != nil {
		return false, fmt.Errorf("seal: reload keyring: %w", err)
	}
	h.kr, h.modTime = kr, st.ModTime()
	return true, nil
}

func (h *Holder) loadLocked(master []byte) error {
	st, err := os.Stat(h.path)
	if err != nil {
		return fmt.Errorf("seal: keyring file: %w", err)
	}
	kr, err := keyring.Load(h.path, master)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	h.kr, h.master, h.modTime = kr, master, st.ModTime()
	return nil
}

func (h *Holder) wipePending() {
	for _, s := range h.pending {
		wipe(s)
	}
	h.pending = nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
