package seal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/keyring"
)

// newThreshold writes a keyring whose header records a k-of-n share set.
func newThreshold(t *testing.T, n, k int) (*Holder, [][]byte, string, []byte) {
	t.Helper()
	kr, err := keyring.New(keyring.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	master, _ := keyring.GenerateMasterKey()
	set, shares, err := keyring.SplitThreshold(master, n, k)
	if err != nil {
		t.Fatal(err)
	}
	kr.SetCustody(keyring.Custody{Shares: set})
	path := filepath.Join(t.TempDir(), "kr")
	if err := keyring.Save(path, kr, master); err != nil {
		t.Fatal(err)
	}
	// -unseal-shares is ignored for a keyring with a share set.
	return New(path, 5), shares, path, master
}

func submitAll(t *testing.T, h *Holder, shares ...[]byte) Progress {
	t.Helper()
	var p Progress
	for _, sh := range shares {
		var err error
		if p, err = h.Submit(p.Nonce, sh); err != nil {
			t.Fatalf("share: %v (%+v)", err, p)
		}
	}
	return p
}

func TestThresholdUnseal(t *testing.T) {
	t.Run("any-k-of-n", func(t *testing.T) {
		for _, pick := range [][]int{{0, 1, 2}, {4, 0, 3}, {2, 3, 4}} {
			h, shares, _, _ := newThreshold(t, 5, 3)
			p := h.Progress()
			if !p.Sealed || p.Need != 3 || p.Total != 5 || p.Scheme != keyring.SchemeShamir || p.Set == "" {
				t.Fatalf("status before: %+v", p)
			}
			var sub [][]byte
			for _, i := range pick {
				sub = append(sub, shares[i])
			}
			p = submitAll(t, h, sub[:2]...)
			if !p.Sealed || p.Have != 2 || len(p.ShareIDs) != 2 || p.ShareIDs[0] != p.Set+"-"+string(rune('1'+pick[0])) {
				t.Fatalf("k-1 shares: %+v", p)
			}
			if _, err := h.Keyring(); !errors.Is(err, ErrSealed) {
				t.Fatal("k-1 shares unsealed")
			}
			p = submitAll2(t, h, p.Nonce, sub[2])
			if p.Sealed || h.Sealed() || len(p.ShareIDs) != 3 {
				t.Fatalf("k shares: %+v", p)
			}
		}
	})
	t.Run("wrong-share-keeps-round", func(t *testing.T) {
		h, shares, _, _ := newThreshold(t, 3, 2)
		p := submitAll(t, h, shares[0])
		wrong := append([]byte(nil), shares[1]...)
		wrong[5] ^= 0x40
		if _, err := h.Submit(p.Nonce, wrong); !errors.Is(err, ErrWrongShare) {
			t.Fatalf("wrong share: %v", err)
		}
		if _, err := h.Submit(p.Nonce, shares[0]); !errors.Is(err, ErrDuplicateShare) {
			t.Fatalf("same share twice: %v", err)
		}
		if q := h.Progress(); q.Have != 1 || q.Nonce != p.Nonce {
			t.Fatalf("the round lost its progress: %+v", q)
		}
		if p := submitAll2(t, h, p.Nonce, shares[2]); p.Sealed {
			t.Fatal("did not unseal")
		}
	})
	t.Run("restart-starts-over", func(t *testing.T) {
		h, shares, path, _ := newThreshold(t, 3, 2)
		submitAll(t, h, shares[0])
		again := New(path, 1) // the process restarted
		if p := again.Progress(); p.Have != 0 || p.Nonce != "" || p.Need != 2 {
			t.Fatalf("a new process inherited a round: %+v", p)
		}
	})
}

func submitAll2(t *testing.T, h *Holder, nonce string, share []byte) Progress {
	t.Helper()
	p, err := h.Submit(nonce, share)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func touch(t *testing.T, path string, d time.Duration) {
	t.Helper()
	at := time.Now().Add(d)
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

// TestRekeyWhileServing: new shares for the same master key reach a running
// holder by reload; the old shares stop counting at the next unseal.
func TestRekeyWhileServing(t *testing.T) {
	h, shares, path, master := newThreshold(t, 3, 2)
	submitAll(t, h, shares[0], shares[1])
	kr, err := keyring.Load(path, master)
	if err != nil {
		t.Fatal(err)
	}
	set, newShares, _ := keyring.SplitThreshold(master, 5, 3)
	kr.SetCustody(keyring.Custody{Shares: set})
	if err := keyring.Save(path, kr, master); err != nil {
		t.Fatal(err)
	}
	touch(t, path, time.Second)
	if changed, err := h.ReloadIfChanged(); err != nil || !changed {
		t.Fatalf("reload after rekey: %v %v", changed, err)
	}
	if p := h.Progress(); p.Sealed || p.Need != 3 || p.Set != set.Set {
		t.Fatalf("after rekey: %+v", p)
	}
	again := New(path, 1)
	if _, err := again.Submit("", shares[0]); !errors.Is(err, ErrWrongShare) {
		t.Fatalf("a share of the replaced set: %v", err)
	}
	if p := submitAll(t, again, newShares[4], newShares[0], newShares[2]); p.Sealed {
		t.Fatal("new shares did not unseal")
	}
}

// TestMasterRotatedWhileServing: after `keys rotate-master` the old keyring
// keeps serving, a writer with the old key cannot undo the rotation, and a
// round of the new shares re-opens the file without a restart.
func TestMasterRotatedWhileServing(t *testing.T) {
	h, shares, path, master := newThreshold(t, 3, 2)
	submitAll(t, h, shares[0], shares[2])
	before, _ := h.Keyring()

	kr, _ := keyring.Load(path, master)
	newMaster, _ := keyring.GenerateMasterKey()
	set, newShares, _ := keyring.SplitThreshold(newMaster, 3, 2)
	kr.SetCustody(keyring.Custody{Shares: set})
	if _, err := kr.Rotate(""); err != nil {
		t.Fatal(err)
	}
	if err := keyring.Reseal(path, kr, master, newMaster); err != nil {
		t.Fatal(err)
	}
	touch(t, path, time.Second)
	if _, err := h.ReloadIfChanged(); !errors.Is(err, ErrMasterRotated) {
		t.Fatalf("reload after rotate-master: %v", err)
	}
	if _, err := h.ReloadIfChanged(); err != nil {
		t.Fatalf("reported twice: %v", err)
	}
	if got, err := h.Keyring(); err != nil || got != before {
		t.Fatal("the loaded keyring stopped serving")
	}
	p := h.Progress()
	if p.Sealed || !p.MasterRotated || p.Set != set.Set {
		t.Fatalf("status: %+v", p)
	}
	if _, err := h.Submit("", shares[1]); !errors.Is(err, ErrWrongShare) {
		t.Fatalf("an old share: %v", err)
	}
	p = submitAll(t, h, newShares[1], newShares[0])
	if p.Sealed || p.MasterRotated || h.MasterRotated() {
		t.Fatalf("after the new shares: %+v", p)
	}
	got, _ := h.Keyring()
	if got.Newest().Kid == before.Newest().Kid {
		t.Fatal("still the keyring from before the rotation")
	}
	if _, err := h.Submit("", newShares[2]); !errors.Is(err, ErrAlreadyUnsealed) {
		t.Fatalf("a share once re-opened: %v", err)
	}
}

func TestCeremonyAuditsShareIDs(t *testing.T) {
	ctx := context.Background()
	h, shares, _, _ := newThreshold(t, 3, 2)
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	c := NewCeremony(h, l, ratelimit.NewMemory(), DefaultCeremonyLimits(), nil)
	enc := keyring.EncodeMasterKey
	p, err := c.Submit(ctx, "10.0.0.1", "", enc(shares[2]))
	if err != nil {
		t.Fatal(err)
	}
	wrong := append([]byte(nil), shares[0]...)
	wrong[0] ^= 1
	if _, err := c.Submit(ctx, "10.0.0.2", p.Nonce, enc(wrong)); !errors.Is(err, ErrWrongShare) {
		t.Fatalf("wrong share: %v", err)
	}
	if p, err = c.Submit(ctx, "10.0.0.3", p.Nonce, enc(shares[0])); err != nil || p.Sealed {
		t.Fatalf("second share: %+v %v", p, err)
	}
	evs := unsealEvents(t, path) // newest first
	if len(evs) != 3 {
		t.Fatalf("%d unseal events", len(evs))
	}
	set := p.Set
	for i, want := range []struct{ outcome, resource, reason string }{
		{audit.OutcomeSuccess, "share " + set + "-1", "unsealed with shares " + set + "-3," + set + "-1"},
		{audit.OutcomeFailure, "", "not a share of this keyring's current share set"},
		{audit.OutcomeSuccess, "share " + set + "-3", "share 1 of 2 accepted"},
	} {
		e := evs[i]
		if e.Outcome != want.outcome || e.Resource != want.resource || !strings.HasPrefix(e.Reason, want.reason) {
			t.Errorf("event %d: %s %q %q, want %s %q %q", i, e.Outcome, e.Resource, e.Reason, want.outcome, want.resource, want.reason)
		}
		if strings.Contains(e.Reason+e.Resource, enc(shares[0])[:20]) {
			t.Errorf("event %d holds a share", i)
		}
	}
	if evs[1].Code != "unseal_failed" {
		t.Errorf("wrong share audited with code %q", evs[1].Code)
	}
}
