// Package sigauth verifies Contract 2 signed requests to the key service:
// "Authorization: Blindgate-Sig <compact JWS>" signed with the calling
// client's own key, carrying iss, aud, iat, exp, jti, htm, htu and bh.
//
// The allow-list (AllowList) says which keys belong to which client and what
// each client may call. The replay cache (ReplayCache, implemented in
// keyservice/replay) remembers every jti until it could no longer be
// accepted. Errors are sentinels, wrapped with %w; none of them quotes the
// header, the signature or the body.
package sigauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/jsonscan"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Sentinel errors; the HTTP layer maps them to statuses.
var (
	ErrMissing       = errors.New("sigauth: no Blindgate-Sig authorization") // 401
	ErrBadSignature  = errors.New("sigauth: signature malformed or invalid") // 401
	ErrUnknownClient = errors.New("sigauth: unknown client key")             // 401
	ErrRevoked       = errors.New("sigauth: client key revoked")             // 401
	ErrExpired       = errors.New("sigauth: request signature expired")      // 401
	// ErrClockSkew is wrapped by the iat-in-the-future and expired refusals
	// of an otherwise valid signature: the two clocks disagree (or the
	// request waited longer than its lifetime).
	ErrClockSkew   = errors.New("sigauth: request time outside the clock window") // 401 clock_skew
	ErrClaims      = errors.New("sigauth: request claims invalid")                // 401
	ErrBodyHash    = errors.New("sigauth: body hash mismatch")                    // 401
	ErrReplay      = errors.New("sigauth: request replayed")                      // 409
	ErrReplayStore = errors.New("sigauth: replay store unavailable")              // 503
	ErrInvalidList = errors.New("sigauth: invalid allow-list")                    // admin/config errors
)

// ReplayCache claims a jti until a time. fresh is false if it was already
// claimed; err means the store could not answer (Verify then fails closed).
type ReplayCache interface {
	Claim(ctx context.Context, jti string, until time.Time) (fresh bool, err error)
}

// Defaults for Verifier.
const (
	DefaultSkew = wire.DefaultSkew
	maxJtiLen   = 128
	minJtiLen   = 16
)

// Verifier checks signed requests. Zero Skew means DefaultSkew, zero MaxTTL
// (or one above wire.MaxTTL) means wire.MaxTTL, nil Now means time.Now.
type Verifier struct {
	Audience string // this key service's id: the required aud
	// Origins are the scheme://host[:port] this key service is reached at
	// (ParseOrigins); htu must name one of them. Empty refuses every request.
	Origins []string
	Skew    time.Duration // clock tolerance on iat and exp
	MaxTTL  time.Duration // longest exp-iat accepted
	Clients *AllowList
	Replay  ReplayCache
	Now     func() time.Time
}

// Caller is an authenticated client.
type Caller struct {
	ClientID string
	Kid      string
	Ops      []string
}

// May reports whether the caller was granted op.
func (c Caller) May(op string) bool { return slices.Contains(c.Ops, op) }

// Claim is the jti an authenticated request still has to claim in the
// replay cache before anything is done for it: JTI is scoped to the
// client (iss + ":" + jti), Until is when the request could no longer be
// accepted at all (exp + skew).
type Claim struct {
	JTI   string
	Until time.Time
}

// Verify authenticates one request. The checks run in this order: scheme;
// JWS with a known, unrevoked kid (the algorithm forced by the key type);
// iss is the client owning that kid; aud; iat and exp within Skew;
// exp-iat <= MaxTTL; htm == method; htu is one of Origins plus path; bh ==
// BodyHash(body); and last the jti claim in the replay cache, so a request
// refused for any other reason does not burn its jti.
//
// On error the returned Caller may still name the client and kid the
// request claimed (for the audit of refusals); it is then unauthenticated
// and grants nothing (Ops is empty).
func (v *Verifier) Verify(ctx context.Context, authorization, method, path string, body []byte) (Caller, error) {
	caller, claim, err := v.Authenticate(authorization, method, path, body)
	if err != nil {
		return caller, err
	}
	if err := v.Claim(ctx, claim); err != nil {
		return unauthenticated(caller), err
	}
	return caller, nil
}

// Claim claims an authenticated request's jti in the replay cache: last,
// so that only an otherwise valid request consumes its jti. The jti is
// held until the request could no longer be accepted at all (exp + skew),
// and is scoped to the client so clients cannot collide.
func (v *Verifier) Claim(ctx context.Context, claim Claim) error {
	if v.Replay == nil {
		return fmt.Errorf("%w: no replay cache configured", ErrReplayStore)
	}
	fresh, err := v.Replay.Claim(ctx, claim.JTI, claim.Until)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrReplayStore, err)
	}
	if !fresh {
		return ErrReplay
	}
	return nil
}

// Authenticate runs every check of Verify but the last: it does not claim
// the jti, it returns the Claim to make. The request is not admitted
// until that claim is made (keyservice/admit makes it together with the
// operation's limits, in one round trip): a caller must not act on it
// before. The Caller it returns on success carries the client's Ops.
func (v *Verifier) Authenticate(authorization, method, path string, body []byte) (Caller, Claim, error) {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, wire.AuthScheme) || token == "" {
		return Caller{}, Claim{}, ErrMissing
	}
	var entry keyEntry
	lookup := func(kid string) (crypto.PublicKey, error) {
		e, err := v.Clients.lookup(kid)
		entry = e
		if err != nil {
			return nil, err
		}
		if e.key == nil {
			return nil, ErrUnknownClient // only a revoked tombstone has no key
		}
		return e.key, nil
	}
	kid, payload, err := jose.VerifyCompact(token, lookup)
	claimed := Caller{ClientID: entry.client, Kid: kid}
	if err != nil {
		switch {
		case errors.Is(err, ErrUnknownClient), errors.Is(err, ErrRevoked):
			return claimed, Claim{}, err
		default:
			return claimed, Claim{}, fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
	}
	c, err := decodeClaims(payload)
	if err != nil {
		return claimed, Claim{}, err
	}
	// A key proves only its own client: a kid of client A under iss B is
	// someone presenting A's key as B.
	if c.Iss != entry.client {
		return claimed, Claim{}, fmt.Errorf("%w: iss does not own kid", ErrUnknownClient)
	}
	if v.Audience == "" || c.Aud != v.Audience {
		return claimed, Claim{}, fmt.Errorf("%w: aud", ErrClaims)
	}
	skew, maxTTL := v.limits()
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if c.Iat <= 0 || c.Exp <= c.Iat {
		return claimed, Claim{}, fmt.Errorf("%w: iat/exp", ErrClaims)
	}
	if time.Duration(c.Exp-c.Iat)*time.Second > maxTTL {
		return claimed, Claim{}, fmt.Errorf("%w: lifetime above %s", ErrClaims, maxTTL)
	}
	if time.Unix(c.Iat, 0).After(now.Add(skew)) {
		return claimed, Claim{}, fmt.Errorf("%w: %w: iat %s is after now %s + %s", ErrClaims, ErrClockSkew,
			time.Unix(c.Iat, 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	acceptUntil := time.Unix(c.Exp, 0).Add(skew)
	if now.After(acceptUntil) {
		return claimed, Claim{}, fmt.Errorf("%w: %w: exp %s + %s is before now %s", ErrExpired, ErrClockSkew,
			time.Unix(c.Exp, 0).UTC().Format(time.RFC3339), skew, now.UTC().Format(time.RFC3339))
	}
	if c.Htm != method {
		return claimed, Claim{}, fmt.Errorf("%w: htm", ErrClaims)
	}
	if !htuMatches(c.Htu, path, v.Origins) {
		return claimed, Claim{}, fmt.Errorf("%w: htu", ErrClaims)
	}
	if subtle.ConstantTimeCompare([]byte(c.Bh), []byte(wire.BodyHash(body))) != 1 {
		return claimed, Claim{}, ErrBodyHash
	}
	if !validJti(c.Jti) {
		return claimed, Claim{}, fmt.Errorf("%w: jti", ErrClaims)
	}
	return Caller{ClientID: entry.client, Kid: kid, Ops: slices.Clone(entry.ops)}, Claim{JTI: c.Iss + ":" + c.Jti, Until: acceptUntil}, nil
}

// unauthenticated is c granting nothing: who it claimed to be, for the
// audit of its refusal.
func unauthenticated(c Caller) Caller { return Caller{ClientID: c.ClientID, Kid: c.Kid} }

// decodeClaims reads the JWS payload strictly: one object of the Contract
// 2 claims, no other member. The claims a Signer writes are read in one
// pass (scanClaims); anything else by encoding/json, which decides.
func decodeClaims(payload []byte) (wire.Claims, error) {
	if c, ok := scanClaims(payload); ok {
		return c, nil
	}
	var c wire.Claims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return wire.Claims{}, fmt.Errorf("%w: payload is not the claims object", ErrClaims)
	}
	return c, nil
}

// scanClaims is decodeClaims' fast path: a simple object (internal/jsonscan)
// naming each claim at most once, exactly as its tag spells it, with a
// string or an integer as its field wants. On such input encoding/json
// reads the same claims; ok false sends anything else to it.
func scanClaims(payload []byte) (c wire.Claims, ok bool) {
	if !utf8.Valid(payload) {
		return wire.Claims{}, false // encoding/json would replace the bad bytes
	}
	var buf [8]jsonscan.Member
	members, ok := jsonscan.Object(payload, buf[:0])
	if !ok {
		return wire.Claims{}, false
	}
	var seen uint
	for _, m := range members {
		var bit uint
		switch string(m.Name) {
		case "iss":
			bit = 1
			c.Iss, ok = jsonscan.String(m.Value)
		case "aud":
			bit = 2
			c.Aud, ok = jsonscan.String(m.Value)
		case "iat":
			bit = 4
			c.Iat, ok = jsonscan.Int(m.Value)
		case "exp":
			bit = 8
			c.Exp, ok = jsonscan.Int(m.Value)
		case "jti":
			bit = 16
			c.Jti, ok = jsonscan.String(m.Value)
		case "htm":
			bit = 32
			c.Htm, ok = jsonscan.String(m.Value)
		case "htu":
			bit = 64
			c.Htu, ok = jsonscan.String(m.Value)
		case "bh":
			bit = 128
			c.Bh, ok = jsonscan.String(m.Value)
		default:
			return wire.Claims{}, false
		}
		if !ok || seen&bit != 0 {
			return wire.Claims{}, false
		}
		seen |= bit
	}
	return c, true
}

func (v *Verifier) limits() (skew, maxTTL time.Duration) {
	skew, maxTTL = v.Skew, v.MaxTTL
	if skew <= 0 {
		skew = DefaultSkew
	}
	if maxTTL <= 0 || maxTTL > wire.MaxTTL {
		maxTTL = wire.MaxTTL
	}
	return skew, maxTTL
}

// htuMatches checks an absolute http(s) htu against the request: its
// origin must be one this key service is configured to be reached at, and
// its path the path the request arrived on. The origin comes from
// configuration, never from the request's Host header, which the caller
// controls. A query or fragment is refused (the signer strips them).
func htuMatches(htu, path string, origins []string) bool {
	// What a Signer writes: an origin as configured, then the path. For a
	// path of plain characters url.Parse would read the same origin and
	// path back, so the comparison below is its answer, without parsing.
	if plainPath(path) {
		for _, o := range origins {
			if len(htu) == len(o)+len(path) && htu[:len(o)] == o && htu[len(o):] == path {
				return true
			}
		}
	}
	u, err := url.Parse(htu)
	if err != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil {
		return false
	}
	origin, err := originOf(u)
	if err != nil || !slices.Contains(origins, origin) {
		return false
	}
	return u.Path == path && path != ""
}

// plainPath reports a path of "/" and unreserved characters only (RFC
// 3986), which url.Parse leaves as it is.
func plainPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// ParseOrigins normalises a comma-separated list of the key service's
// public URLs ("https://keyservice:8443, https://ks.internal") to origins:
// lower-case scheme and host, the default port dropped. A path other than
// "/" , a query or user information is an error: an origin is all it names.
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("sigauth: public url %q: %w", raw, err)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("sigauth: public url %q: want scheme://host[:port] only", raw)
		}
		o, err := originOf(u)
		if err != nil {
			return nil, fmt.Errorf("sigauth: public url %q: %w", raw, err)
		}
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("sigauth: no public url")
	}
	return out, nil
}

func originOf(u *url.URL) (string, error) {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("scheme must be http or https")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", errors.New("no host")
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port, nil
	}
	return scheme + "://" + host, nil
}

func validJti(s string) bool {
	if len(s) < minJtiLen || len(s) > maxJtiLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
