package wire

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/internal/jose/compact"
)

const testPAN = "4242424242424242"

func TestBodyHash(t *testing.T) {
	// SHA-256 of the empty string, base64url without padding.
	if got := BodyHash(nil); got != "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU" {
		t.Fatalf("BodyHash(nil) = %s", got)
	}
}

func TestRedaction(t *testing.T) {
	jwe := "eyJhbGciOi.secret.iv.ct.tag"
	values := []any{
		RevealResponse{JWE: jwe, Credential: "cred"},
		PasskeyRegisterRequest{Actor: "op", Nonce: "pkn_x", Attestation: []byte(`{"secret":1}`)},
		InspectRequest{JWE: jwe, Session: "cs", Merchant: "m_1"},
		RevealRequest{JWE: jwe, Actor: "op", Reason: "why", Assertion: []byte(`{"secret":1}`)},
		RewrapRequest{JWE: jwe, Merchant: "m_1", Binding: "bnd_secretbindingAAAAAAAAA"},
		RewrapResponse{JWE: jwe, Kid: "k", Binding: "bnd_secretbindingAAAAAAAAA"},
		InspectResponse{Kid: "k", Last4: "4242", Fingerprint: "fpm_x", Binding: "bnd_secretbindingAAAAAAAAA"},
		UnsealRequest{Key: "c2hhcmUtc2VjcmV0"},
	}
	var logBuf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logBuf, nil))
	for _, v := range values {
		s := fmt.Sprintf("%v %+v %#v %s", v, v, v, v)
		log.Info("value", "v", v)
		for _, secret := range []string{testPAN, "secret", "Jane", "c2hhcmUtc2VjcmV0"} {
			if strings.Contains(s, secret) || strings.Contains(logBuf.String(), secret) {
				t.Fatalf("%T leaks %q: %s | %s", v, secret, s, logBuf.String())
			}
		}
	}
}

// TestValidateReason: one rule in characters, so a reason the gateway's back
// office accepts is one the key service accepts (300 accented letters are
// 600 bytes, and once made the operator a 502).
func TestValidateReason(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		want         error
	}{
		{"ok/ascii", "ticket 1234", nil},
		{"ok/300-accented", strings.Repeat("é", 300), nil},
		{"ok/max-accented", strings.Repeat("é", MaxReasonLen), nil},
		{"ok/min-runes", "éééé", nil},
		{"invalid/short", "abc", ErrReasonLength},
		{"invalid/long", strings.Repeat("é", MaxReasonLen+1), ErrReasonLength},
		{"invalid/not-utf8", "abcd\xff", ErrReasonCharacters},
		{"invalid/control", "line\nbreak", ErrReasonCharacters},
		{"invalid/del", "abcd\x7f", ErrReasonCharacters},
		{"pan/in-text", "card 4242 4242 4242 4242 disputed", ErrPANInText},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateReason(tc.reason)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("ValidateReason = %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error quotes the reason: %v", err)
			}
			rr := validReveal()
			rr.Reason = tc.reason
			if verr := rr.Validate(); (verr == nil) != (err == nil) {
				t.Fatalf("RevealRequest.Validate = %v, ValidateReason = %v: two rules", verr, err)
			}
		})
	}
	for _, e := range []error{ErrPANInText, ErrReasonLength, ErrReasonCharacters} {
		if !errors.Is(e, ErrInvalidRequest) {
			t.Fatalf("%v must match ErrInvalidRequest", e)
		}
	}
}

// TestRequestJWEShape: every request type applies compact.CheckJWE; a
// malformed value also matches compact.ErrMalformed (the key service answers
// invalid_jwe), a missing or oversized one only ErrInvalidRequest.
func TestRequestJWEShape(t *testing.T) {
	for _, tc := range []struct {
		name      string
		jwe       string
		malformed bool
	}{
		{"ok", "a.b.c.d.e", false},
		{"missing", "", false},
		{"too-large", strings.Repeat("a", compact.MaxSize-3) + ".b.c.d.e", false},
		{"four-parts", "a.b.c.d", true},
		{"not-base64url", "a.b+.c.d.e", true},
		{"json", `{"protected":"x"}`, true},
	} {
		reqs := map[string]interface{ Validate() error }{
			"inspect":     InspectRequest{JWE: tc.jwe, Session: "cs_1", Merchant: "m_1"},
			"inspect-cvc": InspectRequest{JWE: "a.b.c.d.e", CVCJWE: tc.jwe, Session: "cs_1", Merchant: "m_1"},
			"reveal":      func() RevealRequest { r := validReveal(); r.JWE = tc.jwe; return r }(),
			"rewrap":      RewrapRequest{JWE: tc.jwe, Merchant: "m_1"},
		}
		for kind, r := range reqs {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				err := r.Validate()
				if tc.name == "ok" || kind == "inspect-cvc" && tc.jwe == "" {
					if err != nil {
						t.Fatalf("Validate = %v", err)
					}
					return
				}
				if !errors.Is(err, ErrInvalidRequest) || errors.Is(err, compact.ErrMalformed) != tc.malformed {
					t.Fatalf("Validate = %v", err)
				}
			})
		}
	}
}

func TestBrandsUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range Brands() {
		if b.ID == "" || b.Name == "" || seen[b.ID] {
			t.Fatalf("brand %+v empty or listed twice", b)
		}
		seen[b.ID] = true
	}
	if len(seen) != 8 {
		t.Fatalf("%d brands", len(seen))
	}
}
