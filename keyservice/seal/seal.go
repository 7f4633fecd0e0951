// Package seal holds the key service's keyring in memory once it is unsealed.
// The keyring file on disk is encrypted under a master key that the process
// never reads from its own configuration in production: operators supply it as
// one or more key shares (split knowledge, PCI DSS 3.6.1.2), and until the last
// share arrives every decrypting path answers "sealed".
package seal

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
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
// the round ends and its shares are discarded, so the next attempt starts
// afresh.
var ErrBadShare = errors.New("seal: key shares do not open the keyring")

// ErrAlreadyUnsealed is returned for a share or reset that arrives while the
// keyring is open: it has no effect.
var ErrAlreadyUnsealed = errors.New("seal: key service is already unsealed")

// ErrNonceMismatch is returned when a share or reset does not carry the nonce
// of the round in progress (or carries one when no round is in progress). The
// round is left as it was: only those who know its nonce can add to it or end it.
var ErrNonceMismatch = errors.New("seal: nonce does not match the unseal round in progress")

// ErrDuplicateShare is returned for a share already given in this round; the
// round keeps its progress (a custodian pressing enter twice).
var ErrDuplicateShare = errors.New("seal: this share was already given in this round")

// Holder owns the unsealed keyring and the master key that opened it (kept so
// that a rotation made by `keyservice keys rotate` can be picked up without a
// new unseal ceremony).
//
// Shares are collected in rounds, as in Vault: the first share starts a round
// and gets its nonce; every later share, and a reset, must carry that nonce.
// A round ends when the keyring opens, when the combined shares fail, or on a
// reset. The model counts shares against Need and leaves combining to one
// place (combineLocked), so a threshold scheme can replace the n-of-n XOR
// without changing the round logic.
type Holder struct {
	path   string
	shares int

	// upd serialises the writers of the keyring file in this process
	// (Update) with the reader of others' writes (ReloadIfChanged); mu is
	// held only to swap what is served, so no request waits on a key
	// generation or an fsync.
	upd sync.Mutex

	mu      sync.RWMutex
	kr      *keyring.Keyring
	master  []byte
	pending [][]byte
	nonce   string // of the round in progress; "" when none
	modTime time.Time
}

// Progress is the seal state: sealed or not, and the round in progress.
type Progress struct {
	Sealed bool
	Have   int    // shares given in this round
	Need   int    // shares needed to unseal
	Nonce  string // the round's nonce; "" when no round is in progress
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
	p := h.Progress()
	return p.Sealed, p.Have, p.Need
}

// Progress reports the seal state and the round in progress.
func (h *Holder) Progress() Progress {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.progressLocked()
}

func (h *Holder) progressLocked() Progress {
	return Progress{Sealed: h.kr == nil, Have: len(h.pending), Need: h.shares, Nonce: h.nonce}
}

// Submit adds one key share to the round named by nonce ("" to start a new
// round, which only the first share of a round may do). When the round has
// enough shares it combines them and opens the keyring. It returns the
// progress after the share; Progress.Sealed false means the keyring is open.
func (h *Holder) Submit(nonce string, share []byte) (Progress, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kr != nil {
		return h.progressLocked(), ErrAlreadyUnsealed
	}
	if !sameNonce(nonce, h.nonce) {
		return h.progressLocked(), ErrNonceMismatch
	}
	if len(share) != keyring.MasterKeySize {
		return h.progressLocked(), fmt.Errorf("%w: a share is %d bytes", ErrBadShare, keyring.MasterKeySize)
	}
	for _, p := range h.pending {
		if subtle.ConstantTimeCompare(p, share) == 1 {
			return h.progressLocked(), ErrDuplicateShare
		}
	}
	if h.nonce == "" {
		n, err := newNonce()
		if err != nil {
			return h.progressLocked(), err
		}
		h.nonce = n
	}
	h.pending = append(h.pending, append([]byte(nil), share...))
	if len(h.pending) < h.shares {
		return h.progressLocked(), nil
	}
	err := h.combineLocked()
	h.endRoundLocked()
	return h.progressLocked(), err
}

// Reset ends the round named by nonce and discards its shares.
func (h *Holder) Reset(nonce string) (Progress, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kr != nil {
		return h.progressLocked(), ErrAlreadyUnsealed
	}
	if nonce == "" || !sameNonce(nonce, h.nonce) {
		return h.progressLocked(), ErrNonceMismatch
	}
	h.endRoundLocked()
	return h.progressLocked(), nil
}

// combineLocked turns the round's shares into the master key and opens the
// keyring with it.
func (h *Holder) combineLocked() error {
	master, err := keyring.CombineShares(h.pending...)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadShare, err)
	}
	if err := h.loadLocked(master); err != nil {
		wipe(master)
		if errors.Is(err, keyring.ErrWrongMasterKey) {
			return fmt.Errorf("%w: %w", ErrBadShare, err)
		}
		return err
	}
	return nil
}

func (h *Holder) endRoundLocked() {
	h.wipePending()
	h.nonce = ""
}

// sameNonce compares in constant time: the nonce is what lets a caller act on
// a round.
func sameNonce(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func newNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("seal: nonce: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
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
	h.endRoundLocked()
}

// ReloadIfChanged reloads the keyring when the file changed on disk (a key
// was rotated or retired by the admin command). A failed reload keeps the
// keyring that is loaded: serving old keys beats serving none.
func (h *Holder) ReloadIfChanged() (bool, error) {
	h.upd.Lock()
	defer h.upd.Unlock()
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

// KeyringReadable reports whether the keyring file can still be read and
// parsed (its header; the master key is not needed). The keyring in memory
// keeps working without it, but a rotation cannot be picked up and the
// service could not start again: readiness reports it.
func (h *Holder) KeyringReadable() error {
	if _, err := keyring.ReadDeployment(h.path); err != nil {
		return fmt.Errorf("seal: keyring file: %w", err)
	}
	return nil
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
