// Package passkey verifies WebAuthn registrations and assertions for one
// relying party: the operator's passkey that approves a reveal (at the key
// service) and the passkey an operator logs in with (at the gateway). It is
// the only package that imports github.com/go-webauthn/webauthn, as
// internal/jose is for jwx: a major-version move touches one package, and
// the library's types never become part of a store's format.
//
// Every ceremony requires user verification (the authenticator checked a
// PIN or biometric, not only presence), ES256 credentials, a challenge the
// caller computed (the challenge commits to what is approved), one of the
// configured origins and the RP id. A sign counter that does not move
// forward is refused (a cloned authenticator), except the 0/0 of
// authenticators that keep no counter (synced passkeys).
package passkey

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// Errors. Every verification failure is ErrInvalid (wrapped with the rule
// for logs); a document that cannot be read at all is ErrMalformed.
var (
	ErrMalformed = errors.New("passkey: malformed")
	ErrInvalid   = errors.New("passkey: invalid")
	// ErrConfig: the relying party configuration is unusable.
	ErrConfig = errors.New("passkey: bad relying party configuration")
)

// COSEAlgES256 is the one credential algorithm accepted (pubKeyCredParams
// [{type:"public-key", alg:-7}]): every platform authenticator and security
// key supports it.
const COSEAlgES256 = -7

// Limits on the documents (a browser's are a few hundred bytes to a few KiB).
const (
	MaxAttestationSize = 32 << 10
	MaxAssertionSize   = 8 << 10
	MaxCredentialIDLen = 512
)

// RP is the relying party: ID is the RP id (a registrable domain, the back
// office's host), Origins the exact origins the page runs at
// ("https://backoffice.example.com"; http only on loopback).
type RP struct {
	ID      string
	Origins []string
}

// Validate checks the RP: an id that is a host name (not an IP address),
// and origins that are
// https (or http on a loopback host) whose host is the id or under it.
func (rp RP) Validate() error {
	if rp.ID == "" || strings.ContainsAny(rp.ID, "/:@ ") || strings.ToLower(rp.ID) != rp.ID {
		return fmt.Errorf("%w: rp id %q must be a lower-case host name", ErrConfig, rp.ID)
	}
	if net.ParseIP(rp.ID) != nil {
		// WebAuthn has no RP id for an IP address: browsers refuse one, so a
		// back office on http://127.0.0.1 uses localhost for its passkeys.
		return fmt.Errorf("%w: rp id %q is an IP address; use a host name (localhost on this machine)", ErrConfig, rp.ID)
	}
	if len(rp.Origins) == 0 {
		return fmt.Errorf("%w: no origins", ErrConfig)
	}
	for _, o := range rp.Origins {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("%w: origin %q must be scheme://host[:port]", ErrConfig, o)
		}
		host := u.Hostname()
		switch u.Scheme {
		case "https":
		case "http":
			if !loopback(host) {
				return fmt.Errorf("%w: origin %q: http only on a loopback host", ErrConfig, o)
			}
		default:
			return fmt.Errorf("%w: origin %q must be https", ErrConfig, o)
		}
		if host != rp.ID && !strings.HasSuffix(host, "."+rp.ID) {
			return fmt.Errorf("%w: origin %q is not on rp id %q", ErrConfig, o, rp.ID)
		}
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Credential is a registered passkey as Blindgate stores it (JSON). It is
// our own form: the library's record type never reaches a file.
type Credential struct {
	ID             []byte    `json:"id"`
	PublicKey      []byte    `json:"public_key"` // COSE_Key
	UserHandle     []byte    `json:"user_handle"`
	AAGUID         []byte    `json:"aaguid,omitempty"`
	SignCount      uint32    `json:"sign_count"`
	BackupEligible bool      `json:"backup_eligible"`
	Attestation    string    `json:"attestation_format,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// IDString is the credential id in unpadded base64url, as pages and the
// wire carry it.
func (c Credential) IDString() string { return base64.RawURLEncoding.EncodeToString(c.ID) }

// Verifier checks ceremonies for one RP. Safe for concurrent use.
type Verifier struct {
	rp  RP
	wa  *webauthn.WebAuthn
	now func() time.Time
}

// New returns a Verifier for rp.
func New(rp RP) (*Verifier, error) {
	if err := rp.Validate(); err != nil {
		return nil, err
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          rp.ID,
		RPDisplayName: "Blindgate",
		RPOrigins:     append([]string(nil), rp.Origins...),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return &Verifier{rp: rp, wa: wa, now: time.Now}, nil
}

// RP is the relying party the verifier checks for.
func (v *Verifier) RP() RP { return v.rp }

// user is the library's view of one operator for one ceremony.
type user struct {
	handle []byte
	creds  []webauthn.Credential
}

func (u user) WebAuthnID() []byte                         { return u.handle }
func (u user) WebAuthnName() string                       { return "operator" }
func (u user) WebAuthnDisplayName() string                { return "operator" }
func (u user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// Register verifies a registration (the JSON of navigator.credentials.create's
// PublicKeyCredential) made for challenge and userHandle, and returns the
// credential to store. The attestation statement is checked when there is one
// ("none" is accepted: synced passkeys carry no attestation, so an AAGUID is
// the authenticator's own claim).
func (v *Verifier) Register(challenge, userHandle, attestationJSON []byte) (Credential, error) {
	if len(challenge) < 16 || len(userHandle) == 0 || len(userHandle) > 64 {
		return Credential{}, fmt.Errorf("%w: challenge or user handle", ErrInvalid)
	}
	if len(attestationJSON) == 0 || len(attestationJSON) > MaxAttestationSize {
		return Credential{}, fmt.Errorf("%w: attestation size", ErrMalformed)
	}
	parsed, err := parseCreation(attestationJSON)
	if err != nil {
		return Credential{}, err
	}
	if len(parsed.RawID) > MaxCredentialIDLen {
		return Credential{}, fmt.Errorf("%w: credential id longer than %d bytes", ErrInvalid, MaxCredentialIDLen)
	}
	session := webauthn.SessionData{
		Challenge:        base64.RawURLEncoding.EncodeToString(challenge),
		UserID:           userHandle,
		UserVerification: protocol.VerificationRequired,
		CredParams:       []protocol.CredentialParameter{{Type: protocol.PublicKeyCredentialType, Algorithm: COSEAlgES256}},
	}
	c, err := v.wa.CreateCredential(user{handle: userHandle}, session, parsed)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: registration: %s", ErrInvalid, libReason(err))
	}
	if !bytes.Equal(c.ID, parsed.RawID) || len(c.PublicKey) == 0 {
		return Credential{}, fmt.Errorf("%w: credential data", ErrInvalid)
	}
	return Credential{
		ID: bytes.Clone(c.ID), PublicKey: bytes.Clone(c.PublicKey), UserHandle: bytes.Clone(userHandle),
		AAGUID: bytes.Clone(c.Authenticator.AAGUID), SignCount: c.Authenticator.SignCount,
		BackupEligible: c.Flags.BackupEligible, Attestation: c.AttestationFormat,
		CreatedAt: v.now().UTC().Truncate(time.Second),
	}, nil
}

// AssertionCredentialID reads the credential id an assertion claims (its
// rawId), without verifying anything, so the caller can look the
// credential up before Verify.
func AssertionCredentialID(assertionJSON []byte) ([]byte, error) {
	if len(assertionJSON) == 0 || len(assertionJSON) > MaxAssertionSize {
		return nil, fmt.Errorf("%w: assertion size", ErrMalformed)
	}
	var a struct {
		ID    string `json:"id"`
		RawID string `json:"rawId"`
	}
	if err := json.Unmarshal(assertionJSON, &a); err != nil {
		return nil, fmt.Errorf("%w: assertion JSON", ErrMalformed)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(a.RawID)
	if err != nil || len(raw) == 0 || len(raw) > MaxCredentialIDLen || a.ID != a.RawID {
		return nil, fmt.Errorf("%w: assertion credential id", ErrMalformed)
	}
	return raw, nil
}

// Verify checks an assertion (the JSON of navigator.credentials.get's
// PublicKeyCredential) over challenge by cred: signature, challenge,
// origin, RP id, user presence and verification, the user handle when the
// authenticator sends one, and a sign counter that moved forward. It
// returns the counter to store.
func (v *Verifier) Verify(challenge []byte, cred Credential, assertionJSON []byte) (uint32, error) {
	if len(challenge) < 16 || len(cred.ID) == 0 || len(cred.UserHandle) == 0 {
		return 0, fmt.Errorf("%w: challenge or credential", ErrInvalid)
	}
	id, err := AssertionCredentialID(assertionJSON)
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(id, cred.ID) {
		return 0, fmt.Errorf("%w: assertion is by another credential", ErrInvalid)
	}
	parsed, err := parseRequest(assertionJSON)
	if err != nil {
		return 0, err
	}
	wc := webauthn.Credential{
		ID: cred.ID, PublicKey: cred.PublicKey, AttestationFormat: cred.Attestation,
		Flags:         webauthn.CredentialFlags{UserPresent: true, UserVerified: true, BackupEligible: cred.BackupEligible},
		Authenticator: webauthn.Authenticator{AAGUID: cred.AAGUID, SignCount: cred.SignCount},
	}
	session := webauthn.SessionData{
		Challenge:            base64.RawURLEncoding.EncodeToString(challenge),
		UserID:               cred.UserHandle,
		AllowedCredentialIDs: [][]byte{cred.ID},
		UserVerification:     protocol.VerificationRequired,
	}
	out, err := v.wa.ValidateLogin(user{handle: cred.UserHandle, creds: []webauthn.Credential{wc}}, session, parsed)
	if err != nil {
		return 0, fmt.Errorf("%w: assertion: %s", ErrInvalid, libReason(err))
	}
	if out.Authenticator.CloneWarning {
		return 0, fmt.Errorf("%w: sign counter did not move forward (%d after %d): a cloned authenticator?", ErrInvalid, parsed.Response.AuthenticatorData.Counter, cred.SignCount)
	}
	return out.Authenticator.SignCount, nil
}

// parseCreation and parseRequest run the library's parsers, turning a
// panic inside a third-party CBOR parser into ErrMalformed.
func parseCreation(b []byte) (p *protocol.ParsedCredentialCreationData, err error) {
	defer func() {
		if recover() != nil {
			p, err = nil, fmt.Errorf("%w: attestation", ErrMalformed)
		}
	}()
	p, err = protocol.ParseCredentialCreationResponseBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: attestation: %s", ErrMalformed, libReason(err))
	}
	return p, nil
}

func parseRequest(b []byte) (p *protocol.ParsedCredentialAssertionData, err error) {
	defer func() {
		if recover() != nil {
			p, err = nil, fmt.Errorf("%w: assertion", ErrMalformed)
		}
	}()
	p, err = protocol.ParseCredentialRequestResponseBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: assertion: %s", ErrMalformed, libReason(err))
	}
	return p, nil
}

// libReason is the library's short description of a failure. Its DevInfo
// can quote the received client data (challenges, origins); only the
// fixed Details text is kept.
func libReason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if pe.Details != "" {
			return pe.Details
		}
		return pe.Type
	}
	var ue *protocol.ErrorUnknownCredential
	if errors.As(err, &ue) {
		return "unknown credential"
	}
	return "verification failed"
}

// Fingerprint is a short human code of the credential's public key: the
// first 60 bits of SHA-256(COSE key) in Crockford base32, grouped
// "K7QD-9F2M-XW4A". A key-zone admin compares it with the one the operator
// was shown before approving (docs/SECURITY.md says what that does and does
// not prove).
func Fingerprint(c Credential) string {
	sum := sha256.Sum256(c.PublicKey)
	var out []byte
	var acc uint64
	for _, b := range sum[:8] {
		acc = acc<<8 | uint64(b)
	}
	for i := 0; i < 12; i++ {
		if i > 0 && i%4 == 0 {
			out = append(out, '-')
		}
		out = append(out, crockford[(acc>>(64-5*(i+1)))&31])
	}
	return string(out)
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NormFingerprint reads a fingerprint as a person types it: case and dashes
// do not matter, O reads as 0 and I or L as 1 (Crockford). It returns the
// canonical form, or "" when s cannot be one.
func NormFingerprint(s string) string {
	var b []byte
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		}
		if r > 0x7f || !strings.ContainsRune(crockford, r) {
			return ""
		}
		b = append(b, byte(r))
	}
	if len(b) != 12 {
		return ""
	}
	return string(b[0:4]) + "-" + string(b[4:8]) + "-" + string(b[8:12])
}
