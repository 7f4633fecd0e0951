package wire

import (
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// Operations a client may be allowed (the allow-list's "ops").
const (
	OpInspect = "inspect"
	OpReveal  = "reveal"
	OpRewrap  = "rewrap"
	OpAudit   = "audit"
	// OpForward: send a stored card to an operator-configured destination
	// (or re-encrypt it to a processor's key).
	OpForward = "forward"
)

// Ops lists every operation, for validation of allow-list entries.
func Ops() []string { return []string{OpInspect, OpReveal, OpRewrap, OpAudit, OpForward} }

// ValidOp reports whether op is a known operation.
func ValidOp(op string) bool {
	switch op {
	case OpInspect, OpReveal, OpRewrap, OpAudit, OpForward:
		return true
	}
	return false
}

// Endpoint paths of the key service (Contract 3).
const (
	PathInspect    = "/v1/inspect"
	PathReveal     = "/v1/reveal"
	PathRewrap     = "/v1/rewrap"
	PathAuditQuery = "/v1/audit/query"
	PathForward    = "/v1/forward"
	PathJWKS       = "/.well-known/jwks.json"
	PathSealStatus = "/v1/sys/seal-status"
)

// AuthScheme is the Authorization scheme of a Contract 2 signed request.
const AuthScheme = "Blindgate-Sig"

// MaxTTL is the longest lifetime (exp - iat) of a signed request the key
// service accepts; a signer must stay within it.
const MaxTTL = 60 * time.Second

// DefaultSkew is the clock difference the key service tolerates on a signed
// request's iat and exp unless its -skew says otherwise; a caller compares
// its clock with the key service's against it (client.Clock).
const DefaultSkew = 5 * time.Second

// Claims is the payload of a Contract 2 request signature (modelled on
// DPoP, RFC 9449, plus a body hash).
type Claims struct {
	Iss string `json:"iss"` // client id
	Aud string `json:"aud"` // key service id
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
	Jti string `json:"jti"` // unique; the key service refuses a replay until exp
	Htm string `json:"htm"` // HTTP method
	Htu string `json:"htu"` // request URL without query or fragment
	Bh  string `json:"bh"`  // BodyHash(body)
}

// BodyHash is base64url(SHA-256(body)) without padding.
func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
