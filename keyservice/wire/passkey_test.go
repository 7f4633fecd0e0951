package wire

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// browserKey makes a public JWK as the reveal page exports it.
func browserKey(t testing.TB) BrowserKey {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt := k.PublicKey().Bytes()
	return BrowserKey{Kty: "EC", Crv: "P-256", X: base64.RawURLEncoding.EncodeToString(pt[1:33]), Y: base64.RawURLEncoding.EncodeToString(pt[33:])}
}

var testKey = func() BrowserKey {
	// A fixed key (the P-256 base point), so validReveal needs no testing.T.
	return BrowserKey{Kty: "EC", Crv: "P-256", X: "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY", Y: "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"}
}()

const testNonce = "rvn_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

func validReveal() RevealRequest {
	return RevealRequest{JWE: "a.b.c.d.e", Actor: "op_1", Reason: "ticket 1", Token: "tok_1", BrowserKey: testKey, Nonce: testNonce,
		Assertion: json.RawMessage(`{"id":"x"}`)}
}

// TestJWKThumbprint checks RFC 7638 against an independent canonical form:
// encoding/json writes map members in sorted order, which is RFC 7638's
// lexicographic order for these four names.
func TestJWKThumbprint(t *testing.T) {
	for range 5 {
		k := browserKey(t)
		got, err := JWKThumbprint(k)
		if err != nil {
			t.Fatal(err)
		}
		canon, _ := json.Marshal(map[string]string{"kty": k.Kty, "crv": k.Crv, "x": k.X, "y": k.Y})
		sum := sha256.Sum256(canon)
		if want := base64.RawURLEncoding.EncodeToString(sum[:]); got != want {
			t.Fatalf("thumbprint %s, want %s", got, want)
		}
	}
	if _, err := JWKThumbprint(testKey); err != nil {
		t.Fatalf("the base point: %v", err)
	}
}

func TestBrowserKeyRefusals(t *testing.T) {
	good := browserKey(t)
	flip := func(s string) string {
		b, _ := base64.RawURLEncoding.DecodeString(s)
		b[31] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	for name, k := range map[string]BrowserKey{
		"kty":          {Kty: "RSA", Crv: good.Crv, X: good.X, Y: good.Y},
		"crv":          {Kty: "EC", Crv: "P-384", X: good.X, Y: good.Y},
		"x-short":      {Kty: "EC", Crv: "P-256", X: good.X[:42], Y: good.Y},
		"x-padded":     {Kty: "EC", Crv: "P-256", X: good.X + "=", Y: good.Y},
		"y-not-b64url": {Kty: "EC", Crv: "P-256", X: good.X, Y: strings.Repeat("+", 43)},
		"off-curve":    {Kty: "EC", Crv: "P-256", X: good.X, Y: flip(good.Y)},
		"empty":        {},
	} {
		t.Run("invalid/"+name, func(t *testing.T) {
			if _, err := JWKThumbprint(k); !errors.Is(err, ErrBrowserKey) || !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("JWKThumbprint = %v", err)
			}
			r := validReveal()
			r.BrowserKey = k
			if err := r.Validate(); !errors.Is(err, ErrBrowserKey) {
				t.Fatalf("Validate = %v", err)
			}
			if c, err := r.Check(); !errors.Is(err, ErrBrowserKey) || c.PublicKey() != nil || c.Thumbprint() != "" {
				t.Fatalf("Check = %v, key %v", err, c.PublicKey())
			}
		})
	}
}

// TestCheckParsesOnce: Check gives the key Point parses and the
// thumbprint JWKThumbprint computes, from one parse; a request's Check
// gives the same, after the same checks as Validate.
func TestCheckParsesOnce(t *testing.T) {
	k := browserKey(t)
	c, err := k.Check()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := k.Point()
	jkt, _ := JWKThumbprint(k)
	if !c.PublicKey().Equal(pub) || c.Thumbprint() != jkt || jkt == "" {
		t.Fatal("Check differs from Point and JWKThumbprint")
	}
	r := validReveal()
	r.BrowserKey = k
	rc, err := r.Check()
	if err != nil || !rc.PublicKey().Equal(pub) || rc.Thumbprint() != jkt {
		t.Fatalf("RevealRequest.Check = %v", err)
	}
	r.Nonce = "rvn_short"
	if rc, err := r.Check(); !errors.Is(err, ErrInvalidRequest) || rc.PublicKey() != nil {
		t.Fatalf("a request refused after its key still hands the key on: %v", err)
	}
	if (CheckedBrowserKey{}).PublicKey() != nil {
		t.Fatal("the zero value holds a key")
	}
}

// TestRevealChallenge: the exact bytes the page hashes, and that every
// input changes the challenge (so an assertion for one reveal fits no other).
func TestRevealChallenge(t *testing.T) {
	sum := sha256.Sum256([]byte("blindgate-reveal-v1\nrvn_n\ntok_1\nchargeback 12\njkt"))
	if got := RevealChallenge("rvn_n", "tok_1", "  chargeback \t 12 ", "jkt"); string(got) != string(sum[:]) {
		t.Fatal("RevealChallenge is not SHA-256 of the documented string with the reason normalised")
	}
	base := RevealChallenge("n", "t", "reason", "k")
	for name, c := range map[string][]byte{
		"nonce": RevealChallenge("n2", "t", "reason", "k"), "token": RevealChallenge("n", "t2", "reason", "k"),
		"reason": RevealChallenge("n", "t", "reason2", "k"), "key": RevealChallenge("n", "t", "reason", "k2"),
		"field-boundary": RevealChallenge("n", "t\nreason", "", "k"),
	} {
		if string(c) == string(base) {
			t.Errorf("changing the %s leaves the challenge unchanged", name)
		}
	}
	enrol := sha256.Sum256([]byte("blindgate-enrol-v1\npkn_n\nop_1"))
	if string(EnrolChallenge("pkn_n", "op_1")) != string(enrol[:]) {
		t.Fatal("EnrolChallenge is not SHA-256 of the documented string")
	}
	if string(UserHandle("op_1")) == string(UserHandle("op_2")) || len(UserHandle("op_1")) != 32 {
		t.Fatal("UserHandle")
	}
}

func TestNormReason(t *testing.T) {
	for in, want := range map[string]string{
		"  a  b ":              "a b",
		"a\u00a0\u2003b\ufeff": "a b", // NBSP, em space, BOM: JavaScript's \s
		"a\u0085b":             "a b", // NEL: the page adds it to \s
		"ticket 1":             "ticket 1",
	} {
		if got := NormReason(in); got != want {
			t.Errorf("NormReason(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRevealRequestValidate(t *testing.T) {
	if err := validReveal().Validate(); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	noAssertion := validReveal()
	noAssertion.Assertion = nil
	if err := noAssertion.Validate(); err != nil {
		t.Fatalf("an assertion is optional on the wire (-reveal-approval none): %v", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(r *RevealRequest)
		field string
	}{
		{"invalid/no-token", func(r *RevealRequest) { r.Token = "" }, "token"},
		{"invalid/reason-not-normalised", func(r *RevealRequest) { r.Reason = "ticket  1" }, "reason"},
		{"invalid/no-nonce", func(r *RevealRequest) { r.Nonce = "" }, "nonce"},
		{"invalid/enrol-nonce", func(r *RevealRequest) { r.Nonce = "pkn_" + testNonce[4:] }, "nonce"},
		{"invalid/nonce-not-b64url", func(r *RevealRequest) { r.Nonce = "rvn_" + strings.Repeat("+", 43) }, "nonce"},
		{"invalid/assertion-not-object", func(r *RevealRequest) { r.Assertion = json.RawMessage(`"x"`) }, "assertion"},
		{"invalid/assertion-too-large", func(r *RevealRequest) {
			r.Assertion = json.RawMessage(`{"x":"` + strings.Repeat("a", MaxAssertionSize) + `"}`)
		}, "assertion"},
		{"invalid/no-browser-key", func(r *RevealRequest) { r.BrowserKey = BrowserKey{} }, "browser_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := validReveal()
			tc.edit(&r)
			err := r.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Validate = %v, want a %s error", err, tc.field)
			}
		})
	}
}

func TestPasskeyRequestsValidate(t *testing.T) {
	att := json.RawMessage(`{"id":"x"}`)
	nonce := "pkn_" + testNonce[4:]
	for _, tc := range []struct {
		name string
		req  interface{ Validate() error }
		ok   bool
	}{
		{"ok/register", PasskeyRegisterRequest{Actor: "op_1", Username: "Rita Révéla", Nonce: nonce, Attestation: att}, true},
		{"invalid/register-reveal-nonce", PasskeyRegisterRequest{Actor: "op_1", Username: "rita", Nonce: testNonce, Attestation: att}, false},
		{"invalid/register-no-username", PasskeyRegisterRequest{Actor: "op_1", Nonce: nonce, Attestation: att}, false},
		{"invalid/register-username-control", PasskeyRegisterRequest{Actor: "op_1", Username: "a\nb", Nonce: nonce, Attestation: att}, false},
		{"invalid/register-username-pan", PasskeyRegisterRequest{Actor: "op_1", Username: "4242 4242 4242 4242", Nonce: nonce, Attestation: att}, false},
		{"invalid/register-no-attestation", PasskeyRegisterRequest{Actor: "op_1", Username: "rita", Nonce: nonce}, false},
		{"ok/challenge", RevealChallengeRequest{Actor: "op_1", Token: "tok_1"}, true},
		{"invalid/challenge-no-token", RevealChallengeRequest{Actor: "op_1"}, false},
		{"ok/passkey-challenge", PasskeyChallengeRequest{Actor: "op_1"}, true},
		{"invalid/passkey-challenge-no-actor", PasskeyChallengeRequest{}, false},
		{"ok/list", PasskeyListRequest{Actor: "op_1"}, true},
		{"invalid/list-actor-space", PasskeyListRequest{Actor: "op 1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.req.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate = %v", err)
			}
		})
	}
	if err := (PasskeyRegisterRequest{Actor: "op_1", Username: "4242 4242 4242 4242", Nonce: nonce, Attestation: att}).Validate(); !errors.Is(err, ErrPANInText) {
		t.Fatalf("a card number as username: %v, want ErrPANInText", err)
	}
}

func TestCheckCredentialID(t *testing.T) {
	for s, ok := range map[string]bool{
		"AAAA": true, "": false, "AA==": false, "A+AA": false,
		base64.RawURLEncoding.EncodeToString(make([]byte, MaxCredentialIDLen)):   true,
		base64.RawURLEncoding.EncodeToString(make([]byte, MaxCredentialIDLen+1)): false,
	} {
		if _, err := CheckCredentialID(s); (err == nil) != ok {
			t.Errorf("CheckCredentialID(%.12q...) = %v", s, err)
		}
	}
	if base64.RawURLEncoding.EncodedLen(32) != nonceB64Len {
		t.Fatal("a nonce is not 32 random bytes")
	}
}
