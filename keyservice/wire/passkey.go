package wire

import (
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/blindgate/blindgate/internal/panshape"
)

// End-to-end encrypted reveal and operator passkeys (docs/contracts.md,
// Contract 3). The rules both sides compute live here: the reveal and
// enrolment challenges, the browser key's thumbprint, the reason's
// normalisation, the user handle, and the shapes of nonces and credential
// ids. The passkey verification itself is internal/passkey (key service
// and gateway) and the encryption to the browser is internal/jose: neither
// belongs in the wire package the gateway links.

// Paths of the reveal challenge and the passkey registry (op reveal).
const (
	PathRevealChallenge  = "/v1/reveal/challenge"
	PathPasskeyChallenge = "/v1/passkeys/challenge"
	PathPasskeys         = "/v1/passkeys"
	PathPasskeyList      = "/v1/passkeys/list"
)

// The answer's protected header: bg_tok and bg_nonce must equal the token
// and nonce the page asked with, and cty names the payload, one JSON object
// {"pan":"4242...","exp_month":1,"exp_year":2031,"name":"..."} (name may be
// absent). The page checks all three before it shows anything.
const (
	HeaderToken     = "bg_tok"
	HeaderNonce     = "bg_nonce"
	CardContentType = "blindgate-card+json"
	// BrowserKeyAlg and BrowserKeyEnc are the answer's alg and enc: ECDH-ES
	// direct key agreement (Concat KDF, RFC 7518 4.6, AlgorithmID "A256GCM")
	// and AES-256-GCM with the protected header as AAD.
	BrowserKeyAlg = "ECDH-ES"
	BrowserKeyEnc = "A256GCM"
)

// Nonce prefixes: a reveal nonce and a passkey-registration nonce are not
// interchangeable, and the prefix says which a log line holds.
const (
	RevealNoncePrefix  = "rvn_"
	PasskeyNoncePrefix = "pkn_"
	// nonceB64Len is 32 random bytes in unpadded base64url.
	nonceB64Len = 43
)

// Passkey statuses in the key service's registry. Only an approved passkey
// approves a reveal; the gateway can create only pending ones.
const (
	PasskeyPending  = "pending"
	PasskeyApproved = "approved"
	PasskeyRevoked  = "revoked"
)

// Size limits of the WebAuthn documents and ids the wire carries.
const (
	// MaxCredentialIDLen bounds a credential id in bytes. WebAuthn allows
	// up to 1023; real authenticators use 16 to about 250. 512 keeps the
	// base64url form (at most 683 characters) within an audit field.
	MaxCredentialIDLen = 512
	MaxAttestationSize = 32 << 10
	MaxAssertionSize   = 8 << 10
	MaxUsernameLen     = 64 // characters
	// MaxCredentials bounds the approved credentials listed for one actor.
	MaxCredentials = 32
)

// BrowserKey is the public half of the ECDH P-256 key pair the reveal page
// made with WebCrypto (the private half is not extractable): a public JWK
// with exactly these members. WebCrypto's exportKey("jwk") adds ext and
// key_ops; the page sends only kty, crv, x and y.
type BrowserKey struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ErrBrowserKey: the browser key is not an EC P-256 public JWK whose point
// is on the curve. The key service answers browser_key_invalid. It matches
// ErrInvalidRequest.
var ErrBrowserKey error = &FieldError{Field: "browser_key", Reason: "must be a public EC P-256 JWK (kty, crv, x, y) on the curve"}

// Point returns the key's uncompressed point after checking it: kty EC,
// crv P-256, x and y 32 bytes of canonical unpadded base64url, on the curve
// (crypto/ecdh refuses the identity and off-curve points).
func (k BrowserKey) Point() (*ecdh.PublicKey, error) {
	if k.Kty != "EC" || k.Crv != "P-256" {
		return nil, ErrBrowserKey
	}
	pt := make([]byte, 1, 65)
	pt[0] = 4
	for _, c := range []string{k.X, k.Y} {
		b, err := base64.RawURLEncoding.Strict().DecodeString(c)
		if err != nil || len(b) != 32 || len(c) != 43 {
			return nil, ErrBrowserKey
		}
		pt = append(pt, b...)
	}
	pub, err := ecdh.P256().NewPublicKey(pt)
	if err != nil {
		return nil, ErrBrowserKey
	}
	return pub, nil
}

// JWKThumbprint is the RFC 7638 thumbprint of the browser key (SHA-256,
// unpadded base64url) over {"crv","kty","x","y"} in that order, after the
// checks of Point. The page computes the same with crypto.subtle.
func JWKThumbprint(k BrowserKey) (string, error) {
	c, err := k.Check()
	if err != nil {
		return "", err
	}
	return c.jkt, nil
}

// CheckedBrowserKey is a browser key that passed Point, parsed once: the
// public key a reveal's answer is encrypted to and its JWKThumbprint,
// which the passkey's challenge commits to. Only BrowserKey.Check makes
// one; the zero value holds no key (PublicKey is nil), and the key service
// refuses it as an invalid browser key.
type CheckedBrowserKey struct {
	pub *ecdh.PublicKey
	jkt string
}

// Check parses the key with Point's checks, once, and computes its
// thumbprint.
func (k BrowserKey) Check() (CheckedBrowserKey, error) {
	pub, err := k.Point()
	if err != nil {
		return CheckedBrowserKey{}, err
	}
	// The members are base64url and fixed names: no escaping can differ.
	canon := `{"crv":"` + k.Crv + `","kty":"` + k.Kty + `","x":"` + k.X + `","y":"` + k.Y + `"}`
	sum := sha256.Sum256([]byte(canon))
	return CheckedBrowserKey{pub: pub, jkt: base64.RawURLEncoding.EncodeToString(sum[:])}, nil
}

// PublicKey is the key to encrypt to; nil for the zero value.
func (c CheckedBrowserKey) PublicKey() *ecdh.PublicKey { return c.pub }

// Thumbprint is the key's JWKThumbprint.
func (c CheckedBrowserKey) Thumbprint() string { return c.jkt }

// NormReason folds every run of white space to one space and trims the
// ends: a reason is one line in the audit trail, and the string the
// passkey signs. White space is unicode.IsSpace plus U+FEFF, which is what
// JavaScript's /[\s\u0085]+/ matches, so the page folds exactly the same:
// reason.split(/[\s\u0085]+/).filter(Boolean).join(" ").
func NormReason(s string) string {
	return strings.Join(strings.FieldsFunc(s, isReasonSpace), " ")
}

func isReasonSpace(r rune) bool { return unicode.IsSpace(r) || r == '\ufeff' }

// RevealChallenge is the WebAuthn challenge of one reveal: SHA-256 of
// "blindgate-reveal-v1\n" + nonce + "\n" + token + "\n" + reason + "\n" + jkt,
// with reason normalised (NormReason) and jkt the browser key's
// JWKThumbprint. The passkey's signature over it commits to this nonce,
// token, reason and key; the key service recomputes it from the request.
func RevealChallenge(nonce, token, reason, jkt string) []byte {
	sum := sha256.Sum256([]byte("blindgate-reveal-v1\n" + nonce + "\n" + token + "\n" + NormReason(reason) + "\n" + jkt))
	return sum[:]
}

// EnrolChallenge is the WebAuthn challenge of a passkey registration:
// SHA-256 of "blindgate-enrol-v1\n" + nonce + "\n" + actor.
func EnrolChallenge(nonce, actor string) []byte {
	sum := sha256.Sum256([]byte("blindgate-enrol-v1\n" + nonce + "\n" + actor))
	return sum[:]
}

// UserHandle is the WebAuthn user handle of an operator: SHA-256 of
// "blindgate-user-v1\n" + actor. Stable, so every passkey of an operator
// carries the same handle, and opaque (no operator id on the authenticator).
func UserHandle(actor string) []byte {
	sum := sha256.Sum256([]byte("blindgate-user-v1\n" + actor))
	return sum[:]
}

// RevealChallengeRequest asks for a reveal nonce for one actor and token.
type RevealChallengeRequest struct {
	Actor string `json:"actor"`
	Token string `json:"token"`
}

// RevealChallengeResponse is a single-use nonce bound to the signing client,
// the actor and the token, valid until ExpiresAt (Unix seconds); the RP id
// and the actor's approved credentials (base64url ids) for
// navigator.credentials.get; PasskeyRequired false only when the key service
// runs with -reveal-approval none.
type RevealChallengeResponse struct {
	Nonce           string   `json:"nonce"`
	ExpiresAt       int64    `json:"expires_at"`
	RPID            string   `json:"rp_id"`
	Credentials     []string `json:"credentials"`
	PasskeyRequired bool     `json:"passkey_required"`
}

// PasskeyChallengeRequest asks for a registration nonce for an actor.
type PasskeyChallengeRequest struct {
	Actor string `json:"actor"`
}

// PasskeyChallengeResponse is a single-use registration nonce bound to the
// signing client and the actor; the page's navigator.credentials.create
// takes challenge EnrolChallenge(Nonce, actor), rp.id RPID and user.id
// UserHandle (base64url of UserHandle(actor)).
type PasskeyChallengeResponse struct {
	Nonce      string `json:"nonce"`
	ExpiresAt  int64  `json:"expires_at"`
	RPID       string `json:"rp_id"`
	UserHandle string `json:"user_handle"`
}

// PasskeyRegisterRequest registers a passkey for an actor: Attestation is
// the PublicKeyCredential of navigator.credentials.create in its JSON form.
// Username is shown to the admin who approves it, nothing else.
type PasskeyRegisterRequest struct {
	Actor       string          `json:"actor"`
	Username    string          `json:"username"`
	Nonce       string          `json:"nonce"`
	Attestation json.RawMessage `json:"attestation"`
}

func (r PasskeyRegisterRequest) String() string {
	return "PasskeyRegisterRequest{actor:" + r.Actor + " nonce:" + r.Nonce + " attestation:" + redactedLen(string(r.Attestation)) + "}"
}
func (r PasskeyRegisterRequest) GoString() string { return r.String() }
func (r PasskeyRegisterRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("actor", r.Actor), slog.String("nonce", r.Nonce), slog.String("attestation", redactedLen(string(r.Attestation))))
}

// PasskeyRegisterResponse (202): the credential is recorded as pending;
// only `keyservice passkeys approve <fingerprint>` in the key zone makes it
// approve reveals. Fingerprint is what the admin compares.
type PasskeyRegisterResponse struct {
	Credential  string `json:"credential"`
	Fingerprint string `json:"fingerprint"`
	Status      string `json:"status"`
}

// PasskeyListRequest lists an actor's passkeys.
type PasskeyListRequest struct {
	Actor string `json:"actor"`
}

// PasskeyInfo is one passkey as the registry lists it. ApprovedAt is Unix
// seconds, 0 while pending.
type PasskeyInfo struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`
	Status      string `json:"status"`
	CreatedAt   int64  `json:"created_at"`
	ApprovedAt  int64  `json:"approved_at,omitempty"`
}

// PasskeyListResponse is an actor's passkeys, oldest first.
type PasskeyListResponse struct {
	Credentials []PasskeyInfo `json:"credentials"`
}

// Validate checks a reveal challenge request: actor and token are ids.
func (r RevealChallengeRequest) Validate() error {
	if err := checkID("actor", r.Actor, true); err != nil {
		return err
	}
	return checkID("token", r.Token, true)
}

// Validate checks a registration challenge request.
func (r PasskeyChallengeRequest) Validate() error { return checkID("actor", r.Actor, true) }

// Validate checks a passkey list request.
func (r PasskeyListRequest) Validate() error { return checkID("actor", r.Actor, true) }

// Validate checks a registration's shape; the attestation itself is
// verified by the key service (internal/passkey).
func (r PasskeyRegisterRequest) Validate() error {
	if err := checkID("actor", r.Actor, true); err != nil {
		return err
	}
	if err := ValidateUsername(r.Username); err != nil {
		return err
	}
	if err := CheckNonce(PasskeyNoncePrefix, r.Nonce); err != nil {
		return err
	}
	return checkDocument("attestation", r.Attestation, MaxAttestationSize)
}

// ValidateUsername is the rule for the display name shown with a passkey:
// 1 to MaxUsernameLen characters of valid UTF-8, no control characters,
// nothing shaped like a card number.
func ValidateUsername(s string) error {
	if !utf8.ValidString(s) || s == "" || utf8.RuneCountInString(s) > MaxUsernameLen {
		return invalid("username")
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return invalid("username")
		}
	}
	if panshape.Contains(s) {
		return &FieldError{Field: "username", Reason: "looks like a card number", Err: ErrPANInText}
	}
	return nil
}

// CheckNonce checks a nonce's shape: prefix and 43 base64url characters.
func CheckNonce(prefix, s string) error {
	if len(s) != len(prefix)+nonceB64Len || !strings.HasPrefix(s, prefix) {
		return invalid("nonce")
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(s[len(prefix):]); err != nil {
		return invalid("nonce")
	}
	return nil
}

// CheckCredentialID checks a base64url credential id (unpadded, canonical,
// 1 to MaxCredentialIDLen bytes) and returns its bytes.
func CheckCredentialID(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) == 0 || len(b) > MaxCredentialIDLen {
		return nil, invalid("credential")
	}
	return b, nil
}

// checkDocument accepts a JSON object of at most max bytes (its content
// is the verifier's business).
func checkDocument(field string, doc json.RawMessage, max int) error {
	if len(doc) == 0 || len(doc) > max {
		return invalid(field)
	}
	if !json.Valid(doc) || strings.TrimSpace(string(doc))[0] != '{' {
		return &FieldError{Field: field, Reason: "must be a JSON object"}
	}
	return nil
}

// Validate checks the shape of a reveal request: the stored ciphertext, a
// named actor and token, a reason that passes ValidateReason and is already
// normalised (the passkey signed the normalised text, and the trail keeps
// exactly what was signed), the browser key, the nonce, and the assertion
// when present (whether one is required is the key service's setting).
func (r RevealRequest) Validate() error {
	_, err := r.Check()
	return err
}

// Check is Validate, which also returns the browser key as its check
// parsed it: the key service binds a reveal with it and hands the key on,
// parsed once.
func (r RevealRequest) Check() (CheckedBrowserKey, error) {
	if err := checkJWE("jwe", r.JWE); err != nil {
		return CheckedBrowserKey{}, err
	}
	if err := checkID("actor", r.Actor, true); err != nil {
		return CheckedBrowserKey{}, err
	}
	if err := ValidateReason(r.Reason); err != nil {
		return CheckedBrowserKey{}, err
	}
	if NormReason(r.Reason) != r.Reason {
		return CheckedBrowserKey{}, &FieldError{Field: "reason", Reason: "must be normalised (white space folded to single spaces, trimmed)"}
	}
	if err := checkID("token", r.Token, true); err != nil {
		return CheckedBrowserKey{}, err
	}
	key, err := r.BrowserKey.Check()
	if err != nil {
		return CheckedBrowserKey{}, err
	}
	if err := CheckNonce(RevealNoncePrefix, r.Nonce); err != nil {
		return CheckedBrowserKey{}, err
	}
	if len(r.Assertion) > 0 {
		if err := checkDocument("assertion", r.Assertion, MaxAssertionSize); err != nil {
			return CheckedBrowserKey{}, err
		}
	}
	return key, nil
}
