package seal

import (
	"fmt"
	"os"

	"github.com/blindgate/blindgate/keyservice/keyring"
)

// Update changes the keyring file from inside the running service (the
// scheduled rotation): it opens the file afresh with the master key the
// holder was unsealed with, lets change alter that copy, seals the copy back
// to the file and only then serves it. A change that cannot be written is
// never served, so no ciphertext is ever made under a key that a restart
// would not know; and since the file is read again, a change another replica
// or `keyservice keys` made meanwhile is the one change builds on.
//
// change returning an error leaves file and service as they were; so does a
// failed write (the file is replaced atomically). ErrSealed while sealed.
func (h *Holder) Update(change func(*keyring.Keyring) error) (*keyring.Keyring, error) {
	h.upd.Lock()
	defer h.upd.Unlock()
	h.mu.RLock()
	if h.kr == nil {
		h.mu.RUnlock()
		return nil, ErrSealed
	}
	master := append([]byte(nil), h.master...)
	h.mu.RUnlock()
	defer wipe(master)
	kr, err := keyring.Load(h.path, master)
	if err != nil {
		return nil, fmt.Errorf("seal: update: load keyring: %w", err)
	}
	if err := change(kr); err != nil {
		return nil, err
	}
	if err := keyring.Save(h.path, kr, master); err != nil {
		return nil, fmt.Errorf("seal: update: save keyring: %w", err)
	}
	st, err := os.Stat(h.path)
	if err != nil {
		return nil, fmt.Errorf("seal: update: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kr == nil {
		// Sealed while the file was written: the file holds the change, and
		// the next unseal serves it.
		return nil, ErrSealed
	}
	h.kr, h.modTime = kr, st.ModTime()
	return kr, nil
}
