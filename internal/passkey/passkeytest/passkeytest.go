// Package passkeytest is a software WebAuthn authenticator for tests and the
// benchmark: an ES256 (ECDSA P-256) credential that answers
// navigator.credentials.create and get with exactly the JSON a browser's
// PublicKeyCredential.toJSON() gives (base64url id, rawId, type
// "public-key", response{clientDataJSON, attestationObject |
// authenticatorData, signature, userHandle}), with "none" attestation.
//
// It is written from the WebAuthn specification, not with the library
// internal/passkey verifies with, so a round trip checks one against the
// other. Its fields can be set to make what a real authenticator would not:
// another origin or RP id, no user verification, a counter that goes back.
package passkeytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Authenticator holds one credential. Set its fields between calls to
// shape the next answer. It is not safe for concurrent use.
type Authenticator struct {
	Key          *ecdsa.PrivateKey
	CredentialID []byte
	AAGUID       [16]byte
	// RPID is hashed into the authenticator data; Origin goes into the
	// client data (what a browser on that origin would write).
	RPID   string
	Origin string
	// UserVerified sets the UV flag (true from New); UserPresent the UP
	// flag (true from New).
	UserVerified bool
	UserPresent  bool
	// BackupEligible sets BE (and BS) like a synced passkey.
	BackupEligible bool
	// Counter is the signature counter: Get adds 1 before signing unless
	// NoCounter (a synced passkey reports 0 every time).
	Counter   uint32
	NoCounter bool
	// UserHandle is the user.id of the create call, returned by Get.
	UserHandle []byte
	// Type overrides the client data type ("webauthn.create" or
	// "webauthn.get" when empty).
	Type string
}

// New returns an authenticator with a fresh key and a random 32-byte
// credential id, for rpID, answering as a page on origin.
func New(rpID, origin string) (*Authenticator, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	a := &Authenticator{Key: key, CredentialID: id, RPID: rpID, Origin: origin, UserVerified: true, UserPresent: true}
	copy(a.AAGUID[:], "blindgate-softwa")
	return a, nil
}

// ID is the credential id in unpadded base64url.
func (a *Authenticator) ID() string { return b64(a.CredentialID) }

// Create answers navigator.credentials.create with challenge and
// userHandle (user.id): the registration JSON.
func (a *Authenticator) Create(challenge, userHandle []byte) ([]byte, error) {
	a.UserHandle = append([]byte(nil), userHandle...)
	cd := a.clientData("webauthn.create", challenge)
	x, y := a.coords()
	cose := cborMap(
		cborPair{cborInt(1), cborInt(2)},    // kty: EC2
		cborPair{cborInt(3), cborInt(-7)},   // alg: ES256
		cborPair{cborInt(-1), cborInt(1)},   // crv: P-256
		cborPair{cborInt(-2), cborBytes(x)}, // x
		cborPair{cborInt(-3), cborBytes(y)}, // y
	)
	att := make([]byte, 0, 16+2+len(a.CredentialID)+len(cose))
	att = append(att, a.AAGUID[:]...)
	att = binary.BigEndian.AppendUint16(att, uint16(len(a.CredentialID)))
	att = append(att, a.CredentialID...)
	att = append(att, cose...)
	authData := a.authData(0x40, a.Counter, att) // AT
	obj := cborMap(
		cborPair{cborText("fmt"), cborText("none")},
		cborPair{cborText("attStmt"), cborMap()},
		cborPair{cborText("authData"), cborBytes(authData)},
	)
	spki, err := x509.MarshalPKIXPublicKey(&a.Key.PublicKey)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": a.ID(), "rawId": a.ID(), "type": "public-key", "authenticatorAttachment": "platform",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON": b64(cd), "attestationObject": b64(obj), "authenticatorData": b64(authData),
			"transports": []string{"internal"}, "publicKey": b64(spki), "publicKeyAlgorithm": -7,
		},
	})
}

// Get answers navigator.credentials.get with challenge: the assertion JSON.
func (a *Authenticator) Get(challenge []byte) ([]byte, error) {
	if !a.NoCounter {
		a.Counter++
	}
	cd := a.clientData("webauthn.get", challenge)
	authData := a.authData(0, a.Counter, nil)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), authData...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.Key, digest[:])
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"clientDataJSON": b64(cd), "authenticatorData": b64(authData), "signature": b64(sig)}
	if len(a.UserHandle) > 0 {
		resp["userHandle"] = b64(a.UserHandle)
	}
	return json.Marshal(map[string]any{
		"id": a.ID(), "rawId": a.ID(), "type": "public-key", "authenticatorAttachment": "platform",
		"clientExtensionResults": map[string]any{}, "response": resp,
	})
}

func (a *Authenticator) clientData(typ string, challenge []byte) []byte {
	if a.Type != "" {
		typ = a.Type
	}
	// A browser writes these members in this order (WebAuthn §5.8.1.1).
	return fmt.Appendf(nil, `{"type":%q,"challenge":%q,"origin":%q,"crossOrigin":false}`, typ, b64(challenge), a.Origin)
}

func (a *Authenticator) authData(extra byte, counter uint32, attested []byte) []byte {
	rp := sha256.Sum256([]byte(a.RPID))
	flags := extra
	if a.UserPresent {
		flags |= 0x01
	}
	if a.UserVerified {
		flags |= 0x04
	}
	if a.BackupEligible {
		flags |= 0x08 | 0x10
	}
	out := append([]byte(nil), rp[:]...)
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, counter)
	return append(out, attested...)
}

func (a *Authenticator) coords() (x, y []byte) {
	b, err := a.Key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil || len(b) != 65 {
		return make([]byte, 32), make([]byte, 32)
	}
	return b[1:33], b[33:]
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// A minimal CBOR encoder (RFC 8949) for the few shapes an attestation
// object and a COSE key need; the caller orders map keys canonically.
type cborPair struct{ k, v []byte }

func cborHead(major byte, n uint64) []byte {
	switch {
	case n < 24:
		return []byte{major<<5 | byte(n)}
	case n < 1<<8:
		return []byte{major<<5 | 24, byte(n)}
	case n < 1<<16:
		return binary.BigEndian.AppendUint16([]byte{major<<5 | 25}, uint16(n))
	default:
		return binary.BigEndian.AppendUint32([]byte{major<<5 | 26}, uint32(n))
	}
}

func cborInt(n int) []byte {
	if n < 0 {
		return cborHead(1, uint64(-1-n))
	}
	return cborHead(0, uint64(n))
}

func cborBytes(b []byte) []byte { return append(cborHead(2, uint64(len(b))), b...) }
func cborText(s string) []byte  { return append(cborHead(3, uint64(len(s))), s...) }

func cborMap(pairs ...cborPair) []byte {
	out := cborHead(5, uint64(len(pairs)))
	for _, p := range pairs {
		out = append(out, p.k...)
		out = append(out, p.v...)
	}
	return out
}
