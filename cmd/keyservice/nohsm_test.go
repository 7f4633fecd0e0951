//go:build !hsm

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/keyservice/hsm"
)

// TestHSMNotBuilt: the default (static) build refuses the HSM seal with a
// message naming the build that has it, and a service configured for it
// starts sealed instead of failing open.
func TestHSMNotBuilt(t *testing.T) {
	dir := t.TempDir()
	krPath := filepath.Join(dir, "keyring.sealed")
	t.Setenv("TEST_HSM_PIN", "1234")
	hsmArgs := []string{"-hsm-module", "/usr/lib/softhsm/libsofthsm2.so", "-hsm-token-label", "t", "-hsm-pin", "env:TEST_HSM_PIN"}
	out, err := runCmd(t, "", append([]string{"keys", "init", "-keyring", krPath, "-audit-log", filepath.Join(dir, "audit.log")}, hsmArgs...)...)
	if err == nil || !strings.Contains(err.Error(), "without PKCS#11 support") {
		t.Fatalf("init with an HSM in the default build: %v\n%s", err, out)
	}
	if out, err := runCmd(t, "", "keys", "init", "-keyring", krPath, "-shares", "2", "-audit-log", filepath.Join(dir, "audit.log")); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	cfg := devConfig(t, dir)
	cfg.DevUnseal = false
	cfg.HSM = hsm.Config{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "t", PIN: "env:TEST_HSM_PIN"}
	a, err := newApp(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	if !a.Holder().Sealed() {
		t.Fatal("unsealed without a token")
	}
	ks := serveApp(t, a)
	if st := ks.status(t); !st.Sealed || st.Threshold != 2 {
		t.Fatalf("status: %+v", st)
	}
}
