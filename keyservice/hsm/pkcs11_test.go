//go:build hsm

package hsm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/hsm"
	"github.com/blindgate/blindgate/keyservice/keyring"
)

func config(t *testing.T) hsm.Config {
	tok := testenv.SoftHSM(t, "blindgate-test")
	t.Setenv("TEST_HSM_PIN", tok.PIN)
	return hsm.Config{Module: tok.Module, TokenLabel: tok.Label, PIN: "env:TEST_HSM_PIN", KeyLabel: "blindgate-master"}
}

func TestWrapUnwrapOnSoftHSM(t *testing.T) {
	c := config(t)
	master, _ := keyring.GenerateMasterKey()
	aad := hsm.AAD("ks_test")

	tk, err := hsm.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Wrap(master, c.KeyLabel, aad); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("wrap without a key and without CreateKey: %v", err)
	}
	_ = tk.Close()

	c.CreateKey = true
	tk, err = hsm.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tk.Wrap(master, c.KeyLabel, aad)
	if err != nil {
		t.Fatal(err)
	}
	_ = tk.Close()
	if s.KeyLabel != c.KeyLabel || len(s.Wrapped) != keyring.HSMWrappedSize || bytes.Contains(s.Wrapped, master[:8]) {
		t.Fatalf("wrapped: %+v", s)
	}

	// A new session (a restart) unwraps with the key that stayed in the token.
	c.CreateKey = false
	tk, err = hsm.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	got, err := tk.Unwrap(s, aad)
	if err != nil || !bytes.Equal(got, master) {
		t.Fatalf("unwrap: %v", err)
	}
	if _, err := tk.Unwrap(s, hsm.AAD("ks_other")); !errors.Is(err, hsm.ErrUnwrap) {
		t.Fatalf("another keyring's aad: %v", err)
	}
	bad := *s
	bad.Wrapped = append([]byte(nil), s.Wrapped...)
	bad.Wrapped[20] ^= 1
	if _, err := tk.Unwrap(&bad, aad); !errors.Is(err, hsm.ErrUnwrap) {
		t.Fatalf("altered: %v", err)
	}
	bad = *s
	bad.KeyLabel = "no-such-key"
	if _, err := tk.Unwrap(&bad, aad); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("missing key: %v", err)
	}
}

func TestTokenUnavailable(t *testing.T) {
	c := config(t)
	for name, mod := range map[string]func(*hsm.Config){
		"wrong-pin":   func(c *hsm.Config) { t.Setenv("TEST_HSM_PIN", "0000") },
		"no-token":    func(c *hsm.Config) { c.TokenLabel = "absent" },
		"no-module":   func(c *hsm.Config) { c.Module = "/nonexistent/libpkcs11.so" },
		"pin-not-set": func(c *hsm.Config) { c.PIN = "env:TEST_HSM_PIN_UNSET" },
	} {
		t.Run(name, func(t *testing.T) {
			cc := c
			t.Setenv("TEST_HSM_PIN", "1234-test-pin")
			mod(&cc)
			if tk, err := hsm.Open(cc); !errors.Is(err, hsm.ErrUnavailable) {
				if tk != nil {
					_ = tk.Close()
				}
				t.Fatalf("%s: %v, want ErrUnavailable", name, err)
			}
		})
	}
}
