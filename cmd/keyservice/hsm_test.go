//go:build hsm

package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/hsm"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/seal"
)

// TestHSMSeal (SoftHSM2): a keyring whose master key is wrapped by an AES
// key in the token, with 2-of-3 recovery shares. The service starts sealed
// and unseals by asking the token; a KEK rotation and a master rotation
// made with the token keep a stored card readable across restarts; with the
// token unavailable the service says so and stays sealed, and the recovery
// shares still unseal it.
func TestHSMSeal(t *testing.T) {
	tok := testenv.SoftHSM(t, "blindgate")
	t.Setenv("TEST_HSM_PIN", tok.PIN)
	hc := hsm.Config{Module: tok.Module, TokenLabel: tok.Label, PIN: "env:TEST_HSM_PIN"}
	hsmArgs := []string{"-hsm-module", hc.Module, "-hsm-token-label", hc.TokenLabel, "-hsm-pin", hc.PIN}

	dir := t.TempDir()
	krPath, al := filepath.Join(dir, "keyring.sealed"), filepath.Join(dir, "audit.log")
	out, err := runCmd(t, "", append([]string{"keys", "init", "-keyring", krPath, "-audit-log", al, "-hsm-create-key", "-shares", "3", "-threshold", "2"}, hsmArgs...)...)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	var recovery []string
	for _, m := range keyLine.FindAllStringSubmatch(out, -1) {
		recovery = append(recovery, m[1])
	}
	if len(recovery) != 3 {
		t.Fatalf("init printed %d recovery shares:\n%s", len(recovery), out)
	}
	c, err := keyring.ReadCustody(krPath)
	if err != nil || c.HSM == nil || c.HSM.KeyLabel != "blindgate-master" || c.Shares == nil {
		t.Fatalf("custody: %+v %v", c, err)
	}

	start := func(t *testing.T, cfgHSM hsm.Config) *served {
		t.Helper()
		cfg := devConfig(t, dir)
		cfg.DevUnseal, cfg.HSM = false, cfgHSM
		a, err := newApp(cfg, discard())
		if err != nil {
			t.Fatal(err)
		}
		return serveApp(t, a)
	}

	ks := start(t, hc)
	if st := ks.status(t); st.Sealed {
		t.Fatalf("not unsealed by the HSM at start: %+v", st)
	}
	kr, _ := ks.app.Holder().Keyring()
	pub := kr.PublicKeys()[0]
	const card = `{"pan":"4242424242424242","exp_month":12,"exp_year":2031}`
	stored, err := jose.Encrypt([]byte(card), pub.Key, pub.Kid, map[string]string{jose.HeaderSessionID: "cs_hsm"})
	if err != nil {
		t.Fatal(err)
	}

	// A KEK rotation with the master key from the token (no shares typed).
	if out, err := runCmd(t, "", append([]string{"keys", "rotate", "-keyring", krPath, "-audit-log", al}, hsmArgs...)...); err != nil {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	if err := ks.reload(t, krPath); err != nil {
		t.Fatal(err)
	}
	rotated, _ := ks.app.Holder().Keyring()
	if rotated.Newest().Kid == pub.Kid {
		t.Fatal("the rotation did not reach the service")
	}

	// Restart: unsealed by the token again, the rotation and the card kept.
	ks.stop()
	ks = start(t, hc)
	if st := ks.status(t); st.Sealed {
		t.Fatalf("not unsealed after a restart: %+v", st)
	}
	if kr, _ := ks.app.Holder().Keyring(); kr.Newest().Kid != rotated.Newest().Kid {
		t.Fatal("restart lost the rotation")
	}
	if got := ks.open(t, stored); got != card {
		t.Fatalf("card after restart: %s", got)
	}

	// A master rotation with the token: the running service re-opens the
	// file by asking the token, with no shares.
	out, err = runCmd(t, "", append([]string{"keys", "rotate-master", "-keyring", krPath, "-audit-log", al}, hsmArgs...)...)
	if err != nil {
		t.Fatalf("rotate-master: %v\n%s", err, out)
	}
	recovery = recovery[:0]
	for _, m := range keyLine.FindAllStringSubmatch(out, -1) {
		recovery = append(recovery, m[1])
	}
	if len(recovery) != 3 {
		t.Fatalf("rotate-master printed %d recovery shares:\n%s", len(recovery), out)
	}
	if err := ks.reload(t, krPath); !errors.Is(err, seal.ErrMasterRotated) {
		t.Fatalf("reload after rotate-master: %v", err)
	}
	if err := ks.app.UnsealWithHSM(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := ks.status(t); st.Sealed || st.MasterRotated {
		t.Fatalf("after the HSM re-opened it: %+v", st)
	}
	if got := ks.open(t, stored); got != card {
		t.Fatalf("card after rotate-master: %s", got)
	}
	ks.stop()

	// The token unavailable at start (a wrong PIN): a clear error, sealed;
	// the recovery shares still unseal.
	t.Setenv("TEST_HSM_PIN", "0000")
	ks = start(t, hc)
	if st := ks.status(t); !st.Sealed || st.Threshold != 2 {
		t.Fatalf("with the token unavailable: %+v", st)
	}
	if err := ks.app.UnsealWithHSM(context.Background()); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("HSM unseal with a wrong PIN: %v", err)
	}
	if out := unseal(t, ks.url, recovery[0], recovery[2]); ks.status(t).Sealed {
		t.Fatalf("the recovery shares did not unseal:\n%s", out)
	}
	if got := ks.open(t, stored); got != card {
		t.Fatalf("card after a recovery unseal: %s", got)
	}
	ks.stop()

	b, _ := os.ReadFile(al)
	log := string(b)
	for _, want := range []string{`"origin":"hsm"`, `"outcome":"failure"`, `HSM: hsm: token unavailable`, `"event":"key.rotate_master"`} {
		if !strings.Contains(log, want) && !spooled(t, al, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
}

// spooled reports whether a record not yet folded into the chain holds s.
func spooled(t *testing.T, logPath, s string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(audit.SpoolDir(logPath), "*"))
	for _, f := range files {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

// TestRekeyAddsHSM: a keyring with shares only gets the HSM seal by a rekey
// from its custodians; the token then opens it alone.
func TestRekeyAddsHSM(t *testing.T) {
	tok := testenv.SoftHSM(t, "blindgate")
	t.Setenv("TEST_HSM_PIN", tok.PIN)
	hsmArgs := []string{"-hsm-module", tok.Module, "-hsm-token-label", tok.Label, "-hsm-pin", "env:TEST_HSM_PIN"}
	dir := t.TempDir()
	krPath, al := filepath.Join(dir, "keyring.sealed"), filepath.Join(dir, "audit.log")
	out, err := runCmd(t, "", "keys", "init", "-keyring", krPath, "-audit-log", al, "-shares", "2")
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	shares := keyLine.FindAllStringSubmatch(out, -1)
	if len(shares) != 2 {
		t.Fatalf("init:\n%s", out)
	}
	if _, err := runCmd(t, "", append([]string{"keys", "list", "-keyring", krPath}, hsmArgs...)...); err == nil {
		t.Fatal("the token opened a keyring it does not wrap")
	}
	out, err = runCmd(t, shares[0][1]+"\n"+shares[1][1]+"\n",
		append([]string{"keys", "rekey", "-keyring", krPath, "-audit-log", al, "-hsm-create-key"}, hsmArgs...)...)
	if err != nil {
		t.Fatalf("rekey adding the HSM: %v\n%s", err, out)
	}
	if c, _ := keyring.ReadCustody(krPath); c.HSM == nil || c.Shares == nil || c.Shares.Threshold != 2 {
		t.Fatalf("custody after the rekey: %+v", c)
	}
	if out, err := runCmd(t, "", append([]string{"keys", "list", "-keyring", krPath}, hsmArgs...)...); err != nil {
		t.Fatalf("list with the token alone: %v\n%s", err, out)
	}
}
