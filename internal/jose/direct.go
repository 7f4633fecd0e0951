package jose

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwe"
)

// AlgECDHESDirect is direct ECDH-ES key agreement (RFC 7518 4.6): the
// content key is the Concat KDF output itself, so the encrypted-key part
// is empty. It is used only for answers to a key the recipient made for
// one use (the reveal page's WebCrypto key), never for card ciphertexts,
// which Decrypt keeps refusing in this form.
const AlgECDHESDirect = "ECDH-ES"

// directMember is the allow-list of a direct answer's protected header
// besides alg, enc and epk: the caller's binding members and the content
// type. Nothing else is written or accepted.
func directMember(name string) bool {
	switch name {
	case "bg_tok", "bg_nonce", "cty":
		return true
	}
	return false
}

// EncryptDirect encrypts plaintext to a P-256 public key with ECDH-ES
// (direct) and A256GCM: a fresh ephemeral key per call, apu and apv
// empty, the KDF's AlgorithmID "A256GCM", and the protected header (alg,
// enc, epk and header, whose members must be bg_tok, bg_nonce or cty) as
// the AAD. The recipient can check every header member before it shows
// anything, because the tag covers them.
func EncryptDirect(plaintext []byte, pub *ecdh.PublicKey, header map[string]string) ([]byte, error) {
	if pub == nil || pub.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("%w: recipient key must be P-256", ErrUnsupported)
	}
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pub.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: recipient key", ErrMalformed)
	}
	hdrs := jwe.NewHeaders()
	for name, v := range header {
		if !directMember(name) || v == "" || len(v) > 256 {
			return nil, fmt.Errorf("%w: header member %q", ErrUnsupported, safeName(name))
		}
		if err := hdrs.Set(name, v); err != nil {
			return nil, fmt.Errorf("jose: set header member: %w", err)
		}
	}
	// No strict parse of the answer here, as Encrypt makes of a ciphertext
	// that will be stored: this one lives for one reveal, a browser that
	// cannot read it asks again, and its shape is held by the tests that
	// open it with DecryptDirect (the page's checks, in Go).
	return jwxEncrypt(plaintext, jwa.ECDH_ES, key, hdrs)
}

// DecryptDirect opens an EncryptDirect answer with the recipient's private
// key, after the strict parse (five parts, alg ECDH-ES, enc A256GCM, a
// P-256 epk on the curve, an empty encrypted key, only allow-listed
// members). It returns the protected header's string members besides alg,
// enc and epk, authenticated. It is what the reveal page does in
// JavaScript; Go uses it in tests and the benchmark.
func DecryptDirect(compact []byte, priv *ecdsa.PrivateKey) (map[string]string, []byte, error) {
	if priv == nil || priv.Curve != elliptic.P256() {
		return nil, nil, fmt.Errorf("%w: recipient key must be P-256", ErrUnsupported)
	}
	hdr, err := parseDirect(compact)
	if err != nil {
		return nil, nil, err
	}
	pt, err := jwxDecrypt(compact, jwa.ECDH_ES, priv)
	if err != nil {
		return nil, nil, err
	}
	return hdr, pt, nil
}

// parseDirect is the strict pre-parse of a direct answer.
func parseDirect(compact []byte) (map[string]string, error) {
	parts, err := splitCompact(compact, 5)
	if err != nil {
		return nil, err
	}
	raw, err := decodeB64(parts[0])
	if err != nil || len(raw) == 0 {
		return nil, fmt.Errorf("%w: protected header", ErrMalformed)
	}
	m, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for name, v := range m {
		switch {
		case name == "alg" || name == "enc" || name == "epk":
		case directMember(name):
			var s string
			if json.Unmarshal(v, &s) != nil || s == "" || len(s) > 256 {
				return nil, fmt.Errorf("%w: %s", ErrMalformed, safeName(name))
			}
			out[name] = s
		default:
			return nil, fmt.Errorf("%w: header member %q", ErrUnsupported, safeName(name))
		}
	}
	if alg, _, err := stringMember(m, "alg"); err != nil || alg != AlgECDHESDirect {
		return nil, fmt.Errorf("%w: alg", ErrUnsupported)
	}
	if enc, _, err := stringMember(m, "enc"); err != nil || enc != EncA256GCM {
		return nil, fmt.Errorf("%w: enc", ErrUnsupported)
	}
	epk, ok := m["epk"]
	if !ok {
		return nil, fmt.Errorf("%w: missing epk", ErrMalformed)
	}
	if crv, err := checkEPK(epk); err != nil {
		return nil, err
	} else if crv != "P-256" {
		return nil, fmt.Errorf("%w: epk crv", ErrUnsupported)
	}
	if len(parts[1]) != 0 {
		return nil, fmt.Errorf("%w: direct agreement has no encrypted key", ErrMalformed)
	}
	if iv, err := decodeB64(parts[2]); err != nil || len(iv) != gcmIVSize {
		return nil, fmt.Errorf("%w: iv", ErrMalformed)
	}
	if _, err := decodeB64(parts[3]); err != nil {
		return nil, fmt.Errorf("%w: ciphertext", ErrMalformed)
	}
	if tag, err := decodeB64(parts[4]); err != nil || len(tag) != gcmTagSize {
		return nil, fmt.Errorf("%w: tag", ErrMalformed)
	}
	return out, nil
}
