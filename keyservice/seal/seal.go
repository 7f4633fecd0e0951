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
	"slices"
	"strconv"
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

// ErrWrongShare is returned for a share that is not one of the keyring's
// share set (a typo, another keyring's share, one replaced by a rekey). The
// share is not added; the round keeps its progress.
var ErrWrongShare = errors.New("seal: not a share of this keyring's current share set")

// ErrMasterRotated is returned by ReloadIfChanged when the keyring file no
// longer opens under the master key in memory: `keys rotate-master`
// re-sealed it. The loaded keyring keeps serving; a round of the new shares
// (or the HSM) re-opens the file without a restart.
var ErrMasterRotated = errors.New("seal: the keyring file was re-sealed under a new master key; submit the new shares to re-open it")

// Schemes of Progress.Scheme besides keyring.SchemeShamir: keyrings that
// record no share set have a whole master key or an n-of-n XOR split.
const (
	SchemeKey = "key"
	SchemeXOR = "xor"
)

// Holder owns the unsealed keyring and the master key that opened it (kept so
// that a rotation made by `keyservice keys rotate` can be picked up without a
// new unseal ceremony).
//
// Shares are collected in rounds, as in Vault: the first share starts a round
// and gets its nonce; every later share, and a reset, must carry that nonce.
// A round ends when the keyring opens, when the combined shares fail, or on a
// reset; a restart ends it too (rounds live in memory only). How many shares
// a round needs comes from the keyring's header: the threshold of its share
// set (Shamir, k of n), or for keyrings that record none the n-of-n count
// the holder was made with.
//
// The same rounds re-open the keyring while serving when `keys rotate-master`
// has re-sealed it under a new master key (MasterRotated): the old keyring
// serves until the new shares arrive.
type Holder struct {
	path   string
	shares int // n-of-n count for keyrings without a share set

	// upd serialises the writers of the keyring file in this process
	// (Update) with the reader of others' writes (ReloadIfChanged); mu is
	// held only to swap what is served, so no request waits on a key
	// generation or an fsync.
	upd sync.Mutex

	mu         sync.RWMutex
	kr         *keyring.Keyring
	master     []byte
	set        *keyring.ShareSet // from the file's header; nil: n-of-n or whole key
	setMod     time.Time         // modification time of the file set was read from
	pending    [][]byte
	pendingIDs []string
	nonce      string // of the round in progress; "" when none
	modTime    time.Time
	rotated    bool      // the file no longer opens under master
	rotatedMod time.Time // the file version found re-sealed
}

// Progress is the seal state: sealed or not, and the round in progress.
type Progress struct {
	Sealed bool
	Have   int    // shares given in this round
	Need   int    // shares needed to unseal (the threshold)
	Total  int    // shares in the set; 0 when the keyring does not record it
	Scheme string // keyring.SchemeShamir, SchemeXOR or SchemeKey
	Set    string // the share set's id (Shamir)
	Nonce  string // the round's nonce; "" when no round is in progress
	// MasterRotated: serving, but the file on disk was re-sealed under a
	// new master key; a round of the new shares re-opens it.
	MasterRotated bool
	// ShareIDs are the public ids ("<set>-<x>") of the shares given in
	// this round; after the share that ends a round, the round's.
	ShareIDs []string
}

// New returns a sealed holder for the keyring file at path. shares is the
// number of n-of-n shares (1 = a whole master key) for a keyring whose
// header records no share set; a share set's own threshold wins.
func New(path string, shares int) *Holder {
	if shares < 1 {
		shares = 1
	}
	h := &Holder{path: path, shares: shares}
	h.refreshSetLocked()
	return h
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

// Progress reports the seal state and the round in progress. While sealed
// between rounds it re-reads the header, so a rekey made meanwhile shows.
func (h *Holder) Progress() Progress {
	h.mu.RLock()
	idle := h.kr == nil && h.nonce == ""
	if !idle {
		defer h.mu.RUnlock()
		return h.progressLocked()
	}
	h.mu.RUnlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kr == nil && h.nonce == "" {
		h.refreshSetLocked()
	}
	return h.progressLocked()
}

func (h *Holder) progressLocked() Progress {
	p := Progress{Sealed: h.kr == nil, Have: len(h.pending), Need: h.shares, Nonce: h.nonce, MasterRotated: h.rotated,
		ShareIDs: slices.Clone(h.pendingIDs), Scheme: SchemeXOR}
	switch {
	case h.set != nil:
		p.Need, p.Total, p.Scheme, p.Set = h.set.Threshold, h.set.Total, h.set.Scheme, h.set.Set
	case h.shares == 1:
		p.Scheme = SchemeKey
	}
	return p
}

// refreshSetLocked reads the share set from the file's header when the file
// changed. A header that cannot be read leaves the set as it was: the round
// then fails at the GCM tag, which is the real check.
func (h *Holder) refreshSetLocked() {
	st, err := os.Stat(h.path)
	if err != nil || st.ModTime().Equal(h.setMod) {
		return
	}
	c, err := keyring.ReadCustody(h.path)
	if err != nil {
		return
	}
	h.set, h.setMod = c.Shares, st.ModTime()
}

// Submit adds one key share to the round named by nonce ("" to start a new
// round, which only the first share of a round may do). When the round has
// enough shares it combines them and opens the keyring. It returns the
// progress after the share; Progress.Sealed false means the keyring is open.
func (h *Holder) Submit(nonce string, share []byte) (Progress, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kr != nil && !h.rotated {
		return h.progressLocked(), ErrAlreadyUnsealed
	}
	if !sameNonce(nonce, h.nonce) {
		return h.progressLocked(), ErrNonceMismatch
	}
	if h.nonce == "" {
		h.refreshSetLocked()
	}
	id, err := h.checkShareLocked(share)
	if err != nil {
		return h.progressLocked(), err
	}
	if h.nonce == "" {
		n, err := newNonce()
		if err != nil {
			return h.progressLocked(), err
		}
		h.nonce = n
	}
	h.pending = append(h.pending, append([]byte(nil), share...))
	h.pendingIDs = append(h.pendingIDs, id)
	p := h.progressLocked()
	if len(h.pending) < p.Need {
		return p, nil
	}
	err = h.combineLocked()
	h.endRoundLocked()
	done := h.progressLocked()
	done.ShareIDs = p.ShareIDs
	return done, err
}

// checkShareLocked returns the share's public id: "<set>-<x>" for a share of
// the keyring's share set, its place in the round for an n-of-n share.
func (h *Holder) checkShareLocked(share []byte) (string, error) {
	if h.set != nil {
		x, err := h.set.Identify(share)
		if err != nil {
			return "", fmt.Errorf("%w (set %s)", ErrWrongShare, h.set.Set)
		}
		id := h.set.ShareID(x)
		if slices.Contains(h.pendingIDs, id) {
			return id, ErrDuplicateShare
		}
		return id, nil
	}
	if len(share) != keyring.MasterKeySize {
		return "", fmt.Errorf("%w: a share of this keyring is %d bytes", ErrWrongShare, keyring.MasterKeySize)
	}
	for _, p := range h.pending {
		if subtle.ConstantTimeCompare(p, share) == 1 {
			return "", ErrDuplicateShare
		}
	}
	return strconv.Itoa(len(h.pending) + 1), nil
}

// Reset ends the round named by nonce and discards its shares.
func (h *Holder) Reset(nonce string) (Progress, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kr != nil && !h.rotated {
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
	var (
		master []byte
		err    error
	)
	if h.set != nil {
		master, _, err = h.set.Combine(h.pending)
	} else {
		master, err = keyring.CombineShares(h.pending...)
	}
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
	h.pendingIDs = nil
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

// UnsealWithKey opens the keyring with a whole master key (dev mode,
// -master-key deployments, the HSM seal). While serving it replaces the
// keyring only if the file opens with the key (after a master rotation).
func (h *Holder) UnsealWithKey(master []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := append([]byte(nil), master...)
	if err := h.loadLocked(m); err != nil {
		wipe(m)
		return err
	}
	return nil
}

// Seal drops the keyring and the master key from memory.
func (h *Holder) Seal() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.kr = nil
	wipe(h.master)
	h.master = nil
	h.rotated = false
	h.endRoundLocked()
}

// ReloadIfChanged reloads the keyring when the file changed on disk (a key
// was rotated or retired, the shares rekeyed, by the admin command). A
// failed reload keeps the keyring that is loaded: serving old keys beats
// serving none. A file re-sealed under a new master key is reported once
// (ErrMasterRotated), then waits for the new shares.
func (h *Holder) ReloadIfChanged() (bool, error) {
	h.upd.Lock()
	defer h.upd.Unlock()
	st, err := os.Stat(h.path)
	if err != nil {
		return false, fmt.Errorf("seal: stat keyring: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kr == nil || st.ModTime().Equal(h.modTime) || h.rotated && st.ModTime().Equal(h.rotatedMod) {
		return false, nil
	}
	kr, err := keyring.Load(h.path, h.master)
	if errors.Is(err, keyring.ErrWrongMasterKey) {
		h.rotated, h.rotatedMod = true, st.ModTime()
		h.refreshSetLocked()
		return false, ErrMasterRotated
	}
	if err != nil {
		return false, fmt.Errorf("seal: reload keyring: %w", err)
	}
	h.setLoadedLocked(kr, h.master, st.ModTime())
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

// MasterRotated reports whether the keyring file was re-sealed under a new
// master key that this process does not hold yet.
func (h *Holder) MasterRotated() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.rotated
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
	if h.master != nil && &h.master[0] != &master[0] {
		wipe(h.master) // the master key before a rotation
	}
	h.setLoadedLocked(kr, master, st.ModTime())
	return nil
}

// setLoadedLocked installs an opened keyring; its header's custody is now
// authenticated. Any round (a re-open after a master rotation) is over.
func (h *Holder) setLoadedLocked(kr *keyring.Keyring, master []byte, mod time.Time) {
	h.kr, h.master, h.modTime = kr, master, mod
	h.set, h.setMod = kr.Custody().Shares, mod
	h.rotated = false
	h.endRoundLocked()
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
