package seal

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/blindgate/blindgate/keyservice/keyring"
)

// TestUpdate: a change is written before it is served; a refused change
// touches neither the file nor what is served; the holder's own write is
// not taken for someone else's (no reload after it).
func TestUpdate(t *testing.T) {
	h, parts, path := newSealed(t, 1)
	if _, err := h.Update(func(*keyring.Keyring) error { return nil }); !errors.Is(err, ErrSealed) {
		t.Fatalf("update while sealed: %v", err)
	}
	if err := h.UnsealWithKey(parts[0]); err != nil {
		t.Fatal(err)
	}
	before, _ := h.Keyring()
	oldKid := before.Newest().Kid
	raw, _ := os.ReadFile(path)

	refused := errors.New("no")
	if _, err := h.Update(func(kr *keyring.Keyring) error {
		if _, err := kr.Rotate(""); err != nil {
			t.Fatal(err)
		}
		return refused
	}); !errors.Is(err, refused) {
		t.Fatalf("refused change: %v", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, raw) {
		t.Fatal("a refused change reached the file")
	}
	if kr, _ := h.Keyring(); kr != before || kr.Newest().Kid != oldKid {
		t.Fatal("a refused change is served")
	}

	var newKid string
	served, err := h.Update(func(kr *keyring.Keyring) error {
		v, err := kr.Rotate("")
		newKid = v.Kid
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if kr, _ := h.Keyring(); kr != served || kr.Newest().Kid != newKid {
		t.Fatalf("served %v, want the updated keyring", kr.Newest())
	}
	onDisk, err := keyring.Load(path, parts[0])
	if err != nil || onDisk.Newest().Kid != newKid {
		t.Fatalf("file holds %v (%v), want %s", onDisk.Newest(), err, newKid)
	}
	if changed, err := h.ReloadIfChanged(); err != nil || changed {
		t.Fatalf("reload after our own update: changed=%v err=%v", changed, err)
	}
	// The old version still decrypts: an update is a rotation, not a loss.
	if _, err := served.Lookup(oldKid); err != nil {
		t.Fatalf("old version after update: %v", err)
	}
}
