package passkey_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/passkey/passkeytest"
)

const (
	rpID   = "backoffice.example.com"
	origin = "https://backoffice.example.com"
)

func challenge(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// handleOf is a user handle as the key service derives one (wire.UserHandle).
func handleOf(actor string) []byte { return challenge("user\n" + actor) }

func verifier(t *testing.T) *passkey.Verifier {
	t.Helper()
	v, err := passkey.New(passkey.RP{ID: rpID, Origins: []string{origin}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// registered is a software authenticator and the credential the verifier
// stored for it.
func registered(t *testing.T, v *passkey.Verifier) (*passkeytest.Authenticator, passkey.Credential) {
	t.Helper()
	a, err := passkeytest.New(rpID, origin)
	if err != nil {
		t.Fatal(err)
	}
	handle := handleOf("op_1")
	att, err := a.Create(challenge("enrol"), handle)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Register(challenge("enrol"), handle, att)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return a, c
}

func TestRoundTrip(t *testing.T) {
	v := verifier(t)
	a, c := registered(t, v)
	if !bytes.Equal(c.ID, a.CredentialID) || !bytes.Equal(c.UserHandle, handleOf("op_1")) || len(c.PublicKey) == 0 {
		t.Fatalf("credential %+v", c)
	}
	if c.IDString() != a.ID() {
		t.Fatalf("IDString %s, want %s", c.IDString(), a.ID())
	}
	// The stored form survives JSON.
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back passkey.Credential
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		as, err := a.Get(challenge("reveal"))
		if err != nil {
			t.Fatal(err)
		}
		id, err := passkey.AssertionCredentialID(as)
		if err != nil || !bytes.Equal(id, c.ID) {
			t.Fatalf("AssertionCredentialID = %x, %v", id, err)
		}
		n, err := v.Verify(challenge("reveal"), back, as)
		if err != nil {
			t.Fatalf("Verify #%d: %v", i, err)
		}
		if n != uint32(i) {
			t.Fatalf("counter %d, want %d", n, i)
		}
		back.SignCount = n
	}
}

// TestSyncedPasskeyWithoutCounter: a passkey that always reports 0 (synced
// passkeys) is accepted again and again; 0/0 is not a regression.
func TestSyncedPasskeyWithoutCounter(t *testing.T) {
	v := verifier(t)
	a, err := passkeytest.New(rpID, origin)
	if err != nil {
		t.Fatal(err)
	}
	a.NoCounter, a.BackupEligible = true, true
	att, _ := a.Create(challenge("enrol"), handleOf("op_1"))
	c, err := v.Register(challenge("enrol"), handleOf("op_1"), att)
	if err != nil {
		t.Fatal(err)
	}
	if !c.BackupEligible {
		t.Fatal("backup eligibility not recorded")
	}
	for range 2 {
		as, _ := a.Get(challenge("x"))
		if _, err := v.Verify(challenge("x"), c, as); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	v := verifier(t)
	for _, tc := range []struct {
		name    string
		shape   func(a *passkeytest.Authenticator, c *passkey.Credential)
		signed  []byte // the challenge the authenticator signs (default "reveal")
		want    error
		related string
	}{
		{"invalid/wrong-challenge", nil, challenge("another reveal"), passkey.ErrInvalid, ""},
		{"invalid/wrong-origin", func(a *passkeytest.Authenticator, _ *passkey.Credential) { a.Origin = "https://evil.example.com" }, nil, passkey.ErrInvalid, ""},
		{"invalid/wrong-rp-id", func(a *passkeytest.Authenticator, _ *passkey.Credential) { a.RPID = "evil.example.com" }, nil, passkey.ErrInvalid, ""},
		{"invalid/no-user-verification", func(a *passkeytest.Authenticator, _ *passkey.Credential) { a.UserVerified = false }, nil, passkey.ErrInvalid, ""},
		{"invalid/no-user-presence", func(a *passkeytest.Authenticator, _ *passkey.Credential) { a.UserPresent = false }, nil, passkey.ErrInvalid, ""},
		{"invalid/counter-regression", func(a *passkeytest.Authenticator, c *passkey.Credential) { c.SignCount = 10; a.Counter = 4 }, nil, passkey.ErrInvalid, "counter"},
		{"invalid/counter-repeated", func(a *passkeytest.Authenticator, c *passkey.Credential) { c.SignCount = 5; a.Counter = 4 }, nil, passkey.ErrInvalid, "counter"},
		{"invalid/create-type-replayed-as-get", func(a *passkeytest.Authenticator, _ *passkey.Credential) { a.Type = "webauthn.create" }, nil, passkey.ErrInvalid, ""},
		{"invalid/other-users-handle", func(a *passkeytest.Authenticator, _ *passkey.Credential) { a.UserHandle = handleOf("op_2") }, nil, passkey.ErrInvalid, ""},
		{"invalid/another-key-same-id", func(a *passkeytest.Authenticator, _ *passkey.Credential) {
			other, _ := passkeytest.New(rpID, origin)
			a.Key = other.Key
		}, nil, passkey.ErrInvalid, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, c := registered(t, v)
			if tc.shape != nil {
				tc.shape(a, &c)
			}
			signed := tc.signed
			if signed == nil {
				signed = challenge("reveal")
			}
			as, err := a.Get(signed)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(challenge("reveal"), c, as)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.related) {
				t.Fatalf("Verify = %v, want it to say %q", err, tc.related)
			}
		})
	}
	t.Run("invalid/credential-of-another-authenticator", func(t *testing.T) {
		a, _ := registered(t, v)
		_, other := registered(t, v)
		as, _ := a.Get(challenge("reveal"))
		if _, err := v.Verify(challenge("reveal"), other, as); !errors.Is(err, passkey.ErrInvalid) {
			t.Fatalf("Verify = %v", err)
		}
	})
	for name, doc := range map[string]string{
		"malformed/not-json":    "{",
		"malformed/no-raw-id":   `{"id":"","type":"public-key","response":{}}`,
		"malformed/id-mismatch": `{"id":"AAAA","rawId":"AAAB","type":"public-key","response":{}}`,
		"malformed/garbage":     `{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AA","signature":"AA"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, c := registered(t, v)
			c.ID = []byte{0, 0, 0}
			if _, err := v.Verify(challenge("reveal"), c, []byte(doc)); !errors.Is(err, passkey.ErrMalformed) && !errors.Is(err, passkey.ErrInvalid) {
				t.Fatalf("Verify = %v", err)
			}
		})
	}
}

func TestRegisterRefusals(t *testing.T) {
	v := verifier(t)
	handle := handleOf("op_1")
	for _, tc := range []struct {
		name   string
		shape  func(a *passkeytest.Authenticator)
		signed []byte
		handle []byte
	}{
		{"invalid/wrong-challenge", nil, challenge("other"), nil},
		{"invalid/wrong-origin", func(a *passkeytest.Authenticator) { a.Origin = "https://evil.example.com" }, nil, nil},
		{"invalid/wrong-rp-id", func(a *passkeytest.Authenticator) { a.RPID = "evil.example.com" }, nil, nil},
		{"invalid/no-user-verification", func(a *passkeytest.Authenticator) { a.UserVerified = false }, nil, nil},
		{"invalid/get-type", func(a *passkeytest.Authenticator) { a.Type = "webauthn.get" }, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := passkeytest.New(rpID, origin)
			if err != nil {
				t.Fatal(err)
			}
			if tc.shape != nil {
				tc.shape(a)
			}
			signed := tc.signed
			if signed == nil {
				signed = challenge("enrol")
			}
			att, err := a.Create(signed, handle)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Register(challenge("enrol"), handle, att); !errors.Is(err, passkey.ErrInvalid) {
				t.Fatalf("Register = %v, want ErrInvalid", err)
			}
		})
	}
	t.Run("malformed/not-a-credential", func(t *testing.T) {
		if _, err := v.Register(challenge("enrol"), handle, []byte(`{"id":"x"}`)); !errors.Is(err, passkey.ErrMalformed) {
			t.Fatalf("Register = %v", err)
		}
	})
}

func TestRPValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		rp   passkey.RP
		ok   bool
	}{
		{"ok/https", passkey.RP{ID: "example.com", Origins: []string{"https://bo.example.com", "https://example.com:8443"}}, true},
		{"bad/ip-rp-id", passkey.RP{ID: "127.0.0.1", Origins: []string{"http://127.0.0.1:8080"}}, false},
		{"ok/localhost-http", passkey.RP{ID: "localhost", Origins: []string{"http://localhost:8080"}}, true},
		{"bad/http-public", passkey.RP{ID: "example.com", Origins: []string{"http://example.com"}}, false},
		{"bad/origin-off-rp", passkey.RP{ID: "example.com", Origins: []string{"https://example.org"}}, false},
		{"bad/suffix-not-label", passkey.RP{ID: "example.com", Origins: []string{"https://badexample.com"}}, false},
		{"bad/path", passkey.RP{ID: "example.com", Origins: []string{"https://example.com/bo"}}, false},
		{"bad/no-origins", passkey.RP{ID: "example.com"}, false},
		{"bad/id-with-port", passkey.RP{ID: "example.com:443", Origins: []string{"https://example.com"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := passkey.New(tc.rp)
			if (err == nil) != tc.ok {
				t.Fatalf("New = %v", err)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	v := verifier(t)
	_, c := registered(t, v)
	fp := passkey.Fingerprint(c)
	if len(fp) != 14 || fp[4] != '-' || fp[9] != '-' || passkey.NormFingerprint(fp) != fp {
		t.Fatalf("Fingerprint = %q", fp)
	}
	if got := passkey.NormFingerprint(strings.ToLower(strings.ReplaceAll(fp, "-", ""))); got != fp {
		t.Fatalf("NormFingerprint(lower, no dashes) = %q, want %q", got, fp)
	}
	_, other := registered(t, v)
	if passkey.Fingerprint(other) == fp {
		t.Fatal("two keys, one fingerprint")
	}
	for _, bad := range []string{"", "K7QD-9F2M-XW4", "K7QD-9F2M-XW4AB", "K7QD-9F2M-XW4U"} {
		if passkey.NormFingerprint(bad) != "" {
			t.Errorf("NormFingerprint(%q) accepted", bad)
		}
	}
}
