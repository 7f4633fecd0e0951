package wire

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
)

const redacted = "[redacted]"

// InspectRequest asks for the masked view of a card ciphertext bound to
// session, captured for merchant. The merchant scopes the fingerprint and the
// enumeration guard, so it is required. CVCJWE, when present, is validated
// (same session, fresh, right length for the brand) and refused otherwise.
type InspectRequest struct {
	JWE      string `json:"jwe"`
	Session  string `json:"session"`
	Merchant string `json:"merchant"`
	CVCJWE   string `json:"cvc_jwe,omitempty"`
}

func (r InspectRequest) String() string {
	return fmt.Sprintf("InspectRequest{jwe:%s session:%s merchant:%s cvc_jwe:%s}", redactedLen(r.JWE), r.Session, r.Merchant, redactedLen(r.CVCJWE))
}
func (r InspectRequest) GoString() string { return r.String() }
func (r InspectRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("jwe", redactedLen(r.JWE)), slog.String("session", r.Session),
		slog.String("merchant", r.Merchant), slog.String("cvc_jwe", redactedLen(r.CVCJWE)))
}

// InspectResponse is the masked card: never the PAN.
type InspectResponse struct {
	Kid         string `json:"kid"`
	Brand       string `json:"brand"`
	BIN         string `json:"bin"`
	Last4       string `json:"last4"`
	ExpMonth    int    `json:"exp_month"`
	ExpYear     int    `json:"exp_year"`
	Fingerprint string `json:"fingerprint"`
	// Binding ties this ciphertext to the merchant it was inspected for; the
	// gateway stores it with the token and sends it with every forward and
	// rewrap. It is the key zone's capability: never shown to a merchant or
	// logged.
	Binding string `json:"binding"`
}

func (r InspectResponse) String() string {
	return "InspectResponse{kid:" + r.Kid + " brand:" + r.Brand + " last4:" + r.Last4 + " binding:" + redactedLen(r.Binding) + "}"
}
func (r InspectResponse) GoString() string { return r.String() }
func (r InspectResponse) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kid", r.Kid), slog.String("brand", r.Brand), slog.String("last4", r.Last4),
		slog.String("binding", redactedLen(r.Binding)))
}

// RevealRequest asks for a card, encrypted to a key made in the operator's
// browser, on behalf of a named operator and reason. Assertion is the
// operator's WebAuthn assertion over RevealChallenge(Nonce, Token, Reason,
// JWKThumbprint(BrowserKey)); it may be empty only when the key service runs
// with -reveal-approval none. Nonce comes from POST /v1/reveal/challenge for
// the same actor and token, and is single use.
type RevealRequest struct {
	JWE    string `json:"jwe"`
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
	// Token is the gateway token the ciphertext belongs to: the audit
	// resource, and bound into the nonce, the challenge and the answer's
	// protected header (bg_tok).
	Token      string          `json:"token"`
	BrowserKey BrowserKey      `json:"browser_key"`
	Nonce      string          `json:"nonce"`
	Assertion  json.RawMessage `json:"assertion,omitempty"`
}

func (r RevealRequest) String() string {
	return fmt.Sprintf("RevealRequest{jwe:%s actor:%s reason:%q token:%s nonce:%s assertion:%s}", redactedLen(r.JWE), r.Actor, r.Reason, r.Token, r.Nonce, redactedLen(string(r.Assertion)))
}
func (r RevealRequest) GoString() string { return r.String() }
func (r RevealRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("jwe", redactedLen(r.JWE)), slog.String("actor", r.Actor), slog.String("reason", r.Reason),
		slog.String("token", r.Token), slog.String("nonce", r.Nonce), slog.String("assertion", redactedLen(string(r.Assertion))))
}

// RevealResponse is the card as only the operator's browser can read it: a
// compact JWE (alg ECDH-ES, enc A256GCM) to the request's BrowserKey, whose
// protected header carries bg_tok (the token), bg_nonce (the request's
// nonce) and cty CardContentType, over CardPayload JSON. No field of any wire
// type holds a card number in clear. Credential is the base64url id of the
// passkey that approved the reveal ("" with -reveal-approval none).
type RevealResponse struct {
	JWE        string `json:"jwe"`
	Credential string `json:"credential,omitempty"`
}

func (r RevealResponse) String() string {
	return "RevealResponse{jwe:" + redactedLen(r.JWE) + " credential:" + r.Credential + "}"
}
func (r RevealResponse) GoString() string { return r.String() }
func (r RevealResponse) LogValue() slog.Value {
	return slog.GroupValue(slog.String("jwe", redactedLen(r.JWE)), slog.String("credential", r.Credential))
}

// RewrapRequest asks for a ciphertext re-encrypted under the newest KEK and
// its masked fields recomputed for merchant (the token's owner), so that a
// change of fingerprint scheme or truncation reaches stored tokens too.
type RewrapRequest struct {
	JWE      string `json:"jwe"`
	Merchant string `json:"merchant"`
	Token    string `json:"token,omitempty"` // audit resource, as in RevealRequest
	// Refresh asks for the masked fields and fingerprint as the key service
	// computes them today. It is counted and guarded like an inspect (it
	// answers a fingerprint); a plain rewrap answers only jwe and kid.
	Refresh bool `json:"refresh,omitempty"`
	// Binding is the token's merchant binding for (Merchant, JWE), if it has
	// one: the answer then carries the binding of the new ciphertext. A
	// wrong one is refused; without one the answer has none (unless the key
	// service runs with -bind-legacy).
	Binding string `json:"binding,omitempty"`
}

func (r RewrapRequest) String() string {
	return "RewrapRequest{jwe:" + redactedLen(r.JWE) + " merchant:" + r.Merchant + " token:" + r.Token + " binding:" + redactedLen(r.Binding) + "}"
}
func (r RewrapRequest) GoString() string { return r.String() }
func (r RewrapRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("jwe", redactedLen(r.JWE)), slog.String("merchant", r.Merchant), slog.String("token", r.Token),
		slog.String("binding", redactedLen(r.Binding)))
}

// RewrapResponse is the ciphertext under the newest KEK (the same one when it
// already is), the kid it is under, and, for a refresh only, the masked fields
// as the key service computes them today.
type RewrapResponse struct {
	JWE         string `json:"jwe"`
	Kid         string `json:"kid"`
	Brand       string `json:"brand,omitempty"`
	BIN         string `json:"bin,omitempty"`
	Last4       string `json:"last4,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	// Binding is the merchant binding of JWE, when the request carried a
	// valid one (or the key service runs with -bind-legacy).
	Binding string `json:"binding,omitempty"`
}

func (r RewrapResponse) String() string {
	return "RewrapResponse{jwe:" + redactedLen(r.JWE) + " kid:" + r.Kid + " binding:" + redactedLen(r.Binding) + "}"
}
func (r RewrapResponse) GoString() string { return r.String() }
func (r RewrapResponse) LogValue() slog.Value {
	return slog.GroupValue(slog.String("jwe", redactedLen(r.JWE)), slog.String("kid", r.Kid), slog.String("binding", redactedLen(r.Binding)))
}

// AuditQueryRequest filters the key service's audit trail (newest first)
// and asks for one page of it. The key service filters and pages: a caller
// never fetches the whole trail to filter it locally.
type AuditQueryRequest struct {
	Actor   string `json:"actor,omitempty"`
	Outcome string `json:"outcome,omitempty"`
	Event   string `json:"event,omitempty"`
	// Actors, when not empty, keeps only events whose actor is one of them
	// (a merchant's admin sees its own operators' events); at most
	// MaxAuditActors. With Actor, both must match.
	Actors []string `json:"actors,omitempty"`
	// BeforeSeq, when not 0, keeps only events older than that seq: the
	// cursor of the next page is the previous answer's NextBeforeSeq.
	BeforeSeq uint64 `json:"before_seq,omitempty"`
	// Limit is the page size, 1 to MaxAuditPage; 0 means MaxAuditPage.
	Limit int `json:"limit,omitempty"`
}

// AuditQueryResponse is a page of audit events and the state of the hash chain.
type AuditQueryResponse struct {
	Events     []AuditEvent `json:"events"`
	Lines      int          `json:"lines"`
	Head       string       `json:"head"`
	ChainOK    bool         `json:"chain_ok"`
	ChainError string       `json:"chain_error,omitempty"`
	// NextBeforeSeq is the BeforeSeq of the next (older) page; 0 when this
	// page is the last.
	NextBeforeSeq uint64 `json:"next_before_seq,omitempty"`
}

// SealStatus is the key service's seal state (unauthenticated endpoint) and
// the unseal round in progress.
type SealStatus struct {
	Sealed bool   `json:"sealed"`
	Shares int    `json:"shares"`          // shares supplied so far in this round (= progress)
	Needed int    `json:"needed"`          // shares required to unseal (= threshold)
	Nonce  string `json:"nonce,omitempty"` // the round in progress; later shares and a reset carry it
	// Threshold of Total shares open the keyring; Progress of them are in.
	// Total is 0 for a keyring that records no share set (an n-of-n split
	// or a whole master key, told by -unseal-shares).
	Threshold int `json:"threshold"`
	Total     int `json:"total"`
	Progress  int `json:"progress"`
	// Scheme is "shamir-gf256" (k of n), "xor" (n of n) or "key" (one
	// whole master key); ShareSet the share set's id ("<set>-<x>" are the
	// share ids the audit trail names).
	Scheme   string `json:"scheme"`
	ShareSet string `json:"share_set,omitempty"`
	// MasterRotated: unsealed and serving, but the keyring file was
	// re-sealed under a new master key (keys rotate-master); a round of the
	// new shares re-opens it.
	MasterRotated bool `json:"master_rotated,omitempty"`
	// Audience is the aud signed requests must carry (the keyring's
	// deployment id unless set): what the gateway's -keyservice-audience is.
	Audience string `json:"audience,omitempty"`
}

// UnsealRequest carries one master-key share, or a reset of the round. The
// first share of a round has no nonce; every other share and a reset carry
// the round's nonce (from SealStatus). It prints redacted.
type UnsealRequest struct {
	Key   string `json:"key,omitempty"`
	Nonce string `json:"nonce,omitempty"`
	Reset bool   `json:"reset,omitempty"`
}

func (r UnsealRequest) String() string {
	return "UnsealRequest{key:" + redacted + ",nonce:" + r.Nonce + ",reset:" + strconv.FormatBool(r.Reset) + "}"
}
func (r UnsealRequest) GoString() string     { return r.String() }
func (r UnsealRequest) LogValue() slog.Value { return slog.StringValue(redacted) }

// redactedLen hides a secret but keeps its length, which helps debugging
// ("empty" vs "present") without revealing content.
func redactedLen(s string) string {
	if s == "" {
		return `""`
	}
	return redacted + "(" + strconv.Itoa(len(s)) + "B)"
}

// ErrorBody is the key service's error document: {"error":{"code","message"}}.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}
