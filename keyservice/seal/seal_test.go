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
	nonce := ""
	for i, p := range parts {
		pr, err := h.Submit(nonce, p)
		last := i == len(parts)-1
		if err != nil || pr.Sealed == last {
			t.Fatalf("share %d: %+v err=%v", i, pr, err)
		}
		if !last && (pr.Nonce == "" || pr.Have != i+1 || pr.Need != 3) {
			t.Fatalf("share %d: progress %+v", i, pr)
		}
		if last && pr.Nonce != "" {
			t.Fatalf("the round outlived the unseal: %+v", pr)
		}
		nonce = pr.Nonce
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
	pr, err := h.Submit("", parts[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Submit(pr.Nonce, wrong); !errors.Is(err, ErrBadShare) {
		t.Fatalf("wrong share: %v", err)
	}
	if p := h.Progress(); p.Have != 0 || p.Nonce != "" {
		t.Fatalf("after a failed attempt the round goes on: %+v", p)
	}
	if _, err := h.Submit("", []byte("short")); !errors.Is(err, ErrWrongShare) {
		t.Fatalf("short share: %v", err)
	}
	nonce := ""
	for _, p := range parts {
		pr, err := h.Submit(nonce, p)
		if err != nil {
			t.Fatal(err)
		}
		nonce = pr.Nonce
	}
	if h.Sealed() {
		t.Fatal("right shares did not unseal")
	}
}

// TestRoundBoundToNonce: once a round has started, a share or a reset without
// its nonce changes nothing, so a stranger cannot wipe custodians' progress.
func TestRoundBoundToNonce(t *testing.T) {
	junk, _ := keyring.GenerateMasterKey()
	for _, tc := range []struct {
		name string
		act  func(h *Holder, nonce string) error
		want error
	}{
		{"share/no-nonce", func(h *Holder, _ string) error { _, err := h.Submit("", junk); return err }, ErrNonceMismatch},
		{"share/other-nonce", func(h *Holder, _ string) error {
			_, err := h.Submit("00112233445566778899aabbccddeeff", junk)
			return err
		}, ErrNonceMismatch},
		{"reset/no-nonce", func(h *Holder, _ string) error { _, err := h.Reset(""); return err }, ErrNonceMismatch},
		{"reset/other-nonce", func(h *Holder, _ string) error { _, err := h.Reset("ffff"); return err }, ErrNonceMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, parts, _ := newSealed(t, 3)
			pr, err := h.Submit("", parts[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.act(h, pr.Nonce); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if p := h.Progress(); p.Have != 1 || p.Nonce != pr.Nonce {
				t.Fatalf("progress changed: %+v, was %+v", p, pr)
			}
			if _, err := h.Submit(pr.Nonce, parts[0]); !errors.Is(err, ErrDuplicateShare) {
				t.Fatalf("same share twice: %v", err)
			}
			for _, p := range parts[1:] {
				if _, err := h.Submit(pr.Nonce, p); err != nil {
					t.Fatal(err)
				}
			}
			if h.Sealed() {
				t.Fatal("the custodians' round did not unseal")
			}
			if _, err := h.Submit("", junk); !errors.Is(err, ErrAlreadyUnsealed) {
				t.Fatalf("share after unseal: %v", err)
			}
		})
	}
}

func TestResetWithNonce(t *testing.T) {
	h, parts, _ := newSealed(t, 2)
	pr, _ := h.Submit("", parts[0])
	if _, err := h.Reset(pr.Nonce); err != nil {
		t.Fatal(err)
	}
	if p := h.Progress(); p.Have != 0 || p.Nonce != "" || !p.Sealed {
		t.Fatalf("after reset: %+v", p)
	}
	if _, err := h.Submit(pr.Nonce, parts[1]); !errors.Is(err, ErrNonceMismatch) {
		t.Fatalf("share for an ended round: %v", err)
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
