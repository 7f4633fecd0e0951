package seal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/blindgate/blindgate/keyservice/keyring"
)

func newSealed(t *testing.T, shares int) (*Holder, [][]byte, string) {
	t.Helper()
	kr, err := keyring.New(keyring.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	master, _ := keyring.GenerateMasterKey()
	path := filepath.Join(t.TempDir(), "kr")
	if err := keyring.Save(path, kr, master); err != nil {
		t.Fatal(err)
	}
	parts, err := keyring.SplitKey(master, shares)
	if err != nil {
		t.Fatal(err)
	}
	return New(path, shares), parts, path
}

func TestUnsealWithShares(t *testing.T) {
	h, parts, _ := newSealed(t, 3)
	if _, err := h.Keyring(); !errors.Is(err, ErrSealed) {
		t.Fatalf("new holder: %v", err)
	}
	for i, p := range parts {
		done, err := h.Unseal(p)
		if err != nil || done != (i == len(parts)-1) {
			t.Fatalf("share %d: done=%v err=%v", i, done, err)
		}
	}
	if _, err := h.Keyring(); err != nil {
		t.Fatal(err)
	}
	h.Seal()
	if !h.Sealed() {
		t.Fatal("Seal did not seal")
	}
}

func TestWrongShareStartsOver(t *testing.T) {
	h, parts, _ := newSealed(t, 2)
	wrong, _ := keyring.GenerateMasterKey()
	if _, err := h.Unseal(parts[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Unseal(wrong); !errors.Is(err, ErrBadShare) {
		t.Fatalf("wrong share: %v", err)
	}
	if _, have, _ := h.Status(); have != 0 {
		t.Fatalf("after a failed attempt %d shares are kept", have)
	}
	if _, err := h.Unseal([]byte("short")); !errors.Is(err, ErrBadShare) {
		t.Fatalf("short share: %v", err)
	}
	for _, p := range parts {
		if _, err := h.Unseal(p); err != nil {
			t.Fatal(err)
		}
	}
	if h.Sealed() {
		t.Fatal("right shares did not unseal")
	}
}

func TestReloadIfChanged(t *testing.T) {
	h, parts, path := newSealed(t, 1)
	if err := h.UnsealWithKey(parts[0]); err != nil {
		t.Fatal(err)
	}
	before, _ := h.Keyring()
	if changed, err := h.ReloadIfChanged(); err != nil || changed {
		t.Fatalf("unchanged file: %v %v", changed, err)
	}
	kr, err := keyring.Load(path, parts[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Rotate(""); err != nil {
		t.Fatal(err)
	}
	if err := keyring.Save(path, kr, parts[0]); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	_ = os.Chtimes(path, later, later)
	if changed, err := h.ReloadIfChanged(); err != nil || !changed {
		t.Fatalf("rotated file: %v %v", changed, err)
	}
	after, _ := h.Keyring()
	if after.Newest().Kid == before.Newest().Kid {
		t.Fatal("reload kept the old keyring")
	}
	// A corrupt file keeps the loaded keyring.
	_ = os.WriteFile(path, []byte("garbage"), 0o600)
	_ = os.Chtimes(path, later.Add(time.Second), later.Add(time.Second))
	if _, err := h.ReloadIfChanged(); err == nil {
		t.Fatal("corrupt keyring reloaded without error")
	}
	if kr, err := h.Keyring(); err != nil || kr.Newest().Kid != after.Newest().Kid {
		t.Fatal("a failed reload dropped the keyring")
	}
}
