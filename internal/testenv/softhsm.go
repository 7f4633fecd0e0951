package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SoftHSMModules are where Debian's softhsm2 package puts its PKCS#11 module.
var SoftHSMModules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
}

// SoftHSMToken is a fresh SoftHSM2 token, initialised in t.TempDir() (the
// SOFTHSM2_CONF of the test process points at it; t.Setenv, so the test
// cannot be parallel). PIN is the user PIN.
type SoftHSMToken struct {
	Module, Label, PIN string
	// Conf is the softhsm2.conf path, for a child process's SOFTHSM2_CONF.
	Conf string
}

// SoftHSM initialises a SoftHSM2 token, or skips (fails under CI=true) when
// softhsm2 is not installed (apt-get install softhsm2).
func SoftHSM(t testing.TB, label string) SoftHSMToken {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		Missing(t, "softhsm2-util not found (apt-get install softhsm2)")
		return SoftHSMToken{}
	}
	module := ""
	for _, m := range SoftHSMModules {
		if _, err := os.Stat(m); err == nil {
			module = m
			break
		}
	}
	if module == "" {
		Missing(t, "libsofthsm2.so not found in %v", SoftHSMModules)
		return SoftHSMToken{}
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	tok := SoftHSMToken{Module: module, Label: label, PIN: "1234-test-pin", Conf: conf}
	out, err := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", tok.PIN, "--so-pin", "5678-test-so").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return tok
}
