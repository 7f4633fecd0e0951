// Package tokens is the gateway's token vault: for each token it keeps the
// card ciphertext (an opaque compact JWE that only the key service can open),
// the masked fields the key service returned at inspection (brand, BIN, last
// four, expiry, keyed fingerprint) and, for a short while, the CVC ciphertext.
//
// The gateway never sees a card number, so nothing here parses one: a token
// is stored as the key service described it. Two implementations share one
// contract (Store): Redis for production and bbolt for the single-binary demo.
package tokens

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/blindgate/blindgate/gateway/orderref"
	"github.com/blindgate/blindgate/internal/jose/compact"
	"github.com/blindgate/blindgate/internal/randid"
)

// Sentinel errors; the HTTP layer maps them with errors.Is. Their messages never
// carry a ciphertext, a CVC or an idempotency key.
var (
	// ErrNotFound: no such token for this caller (also when it belongs to
	// another merchant, so a merchant cannot probe for other merchants' ids),
	// or a CVC that was already used or has expired.
	ErrNotFound = errors.New("tokens: not found")
	// ErrConflict: a compare-and-set lost (the key id changed under a rewrap)
	// or a caller-chosen token id is already taken.
	ErrConflict = errors.New("tokens: conflict")
	// ErrInvalid: malformed input (missing ciphertext, bad id, bad cursor...).
	ErrInvalid = errors.New("tokens: invalid")
)

// Limits.
const (
	// DefaultListLimit and MaxListLimit bound one page of List.
	DefaultListLimit = 20
	MaxListLimit     = 100
	// DefaultSearchLimit and MaxSearchLimit bound one Search.
	DefaultSearchLimit = 50
	MaxSearchLimit     = 500
	// MaxCVCTTL caps how long a CVC ciphertext may live: PCI DSS 3.3.1 allows
	// it only until the authorization it exists for.
	MaxCVCTTL = time.Hour
)

// Token is a stored card, masked. JWE is the card ciphertext; it is left out
// of JSON, fmt and slog output so that rendering or logging a Token can never
// leak it (the HTTP layer renders masked fields only).
type Token struct {
	ID          string    `json:"id"`
	MerchantID  string    `json:"merchant_id"`
	SessionID   string    `json:"session_id,omitempty"`
	JWE         string    `json:"-"`
	Kid         string    `json:"kid"`
	Brand       string    `json:"brand"`
	BIN         string    `json:"bin"`
	Last4       string    `json:"last4"`
	ExpMonth    int       `json:"exp_month"`
	ExpYear     int       `json:"exp_year"`
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
	// Binding is the key service's merchant binding of JWE (from inspect or
	// rewrap), sent with every forward and rewrap: without it the card
	// cannot be forwarded. It is the key zone's capability, not the
	// merchant's: never shown, printed or logged.
	Binding string `json:"-"`
	// Reference and Metadata are the merchant's, from the checkout session
	// (its order number, a few keys of its choice), under
	// gateway/orderref's rule: bounded, and nothing shaped like a card
	// number. Operators search by Reference.
	Reference string            `json:"reference,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// Format prints a Token without its ciphertext, whatever the verb (%v, %+v, %#v, %s).
func (t Token) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "Token{ID:%s MerchantID:%s SessionID:%s Kid:%s Brand:%s BIN:%s Last4:%s Exp:%02d/%d Fingerprint:%s CreatedAt:%s JWE:[%d bytes]}",
		t.ID, t.MerchantID, t.SessionID, t.Kid, t.Brand, t.BIN, t.Last4, t.ExpMonth, t.ExpYear,
		t.Fingerprint, t.CreatedAt.UTC().Format(time.RFC3339Nano), len(t.JWE))
}

// LogValue keeps the ciphertext and the token id out of slog output; key id and
// merchant are what an operator needs to follow an event.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("merchant_id", t.MerchantID),
		slog.String("kid", t.Kid),
		slog.String("brand", t.Brand),
	)
}

// Query selects tokens for the back office. Set fields are AND-ed; empty ones
// match anything. BIN matches as a prefix (a 6-digit BIN finds 8-digit ones).
// Reference matches the merchant's reference whole, compared as
// orderref.Fold makes it (case and surrounding white space aside).
// From is inclusive and To exclusive; zero means unbounded. Results are newest
// first, at most Limit (DefaultSearchLimit when 0, capped at MaxSearchLimit).
type Query struct {
	MerchantID  string // "" = all merchants (platform operators only)
	TokenID     string
	Last4       string
	BIN         string
	Brand       string
	Fingerprint string
	Reference   string
	From, To    time.Time
	Limit       int
}

// Store is the token vault. Both implementations pass the same contract tests.
type Store interface {
	// Put stores t (ID and CreatedAt are filled in when empty) together with its
	// ciphertext, the merchant, fingerprint and search indexes, the CVC ciphertext with
	// its own TTL (skipped when cvcJWE is ""), and idempotencyKey -> token id,
	// all in one atomic write. A repeated idempotencyKey (per merchant) returns
	// the first token and created=false. An empty idempotencyKey disables replay
	// detection. The idempotency key lives as long as its token.
	Put(ctx context.Context, t Token, cvcJWE string, cvcTTL time.Duration, idempotencyKey string) (Token, bool, error)
	// Get returns merchantID's token; ErrNotFound also when it is another merchant's.
	Get(ctx context.Context, merchantID, id string) (Token, error)
	// Lookup returns a token of any merchant (platform back office, rewrap).
	Lookup(ctx context.Context, id string) (Token, error)
	// Delete removes the token, its indexes and its CVC.
	Delete(ctx context.Context, merchantID, id string) error
	// List pages through a merchant's tokens newest first. cursor is "" for the
	// first page or the next value of the previous page; next is "" on the last
	// page. Cursors stay valid when tokens are added or deleted meanwhile.
	List(ctx context.Context, merchantID, cursor string, limit int) ([]Token, string, error)
	// Search finds tokens for the back office (masked fields only), through
	// the search index (index.go) of merchants whose index is complete.
	Search(ctx context.Context, q Query) ([]Token, error)
	// IndexStatus says whether the search index covers merchantID's tokens
	// ("" = every merchant's); see Reindex.
	IndexStatus(ctx context.Context, merchantID string) (IndexStatus, error)
	// TakeCVC returns the CVC ciphertext and deletes it in the same step, so it
	// is destroyed after its first use (PCI DSS 3.3.1); ErrNotFound when it was
	// never stored, already taken or expired.
	TakeCVC(ctx context.Context, id string) (string, error)
	// UpdateCiphertext replaces the ciphertext and the masked fields after a
	// rewrap, only if the token is still under oldKid with oldFingerprint
	// (ErrConflict otherwise), so a concurrent rewrap or a stale job cannot
	// roll a token back to an older KEK or an older fingerprint. The
	// fingerprint index follows, and the search index when a listed field
	// changes.
	UpdateCiphertext(ctx context.Context, id, oldKid, oldFingerprint string, u Rewrapped) error
	// ScanAll calls fn for every token, under the same rules as ScanByKid;
	// the rewrap job's refresh uses it when masked fields change without a
	// key rotation.
	ScanAll(ctx context.Context, fn func(Token) error) error
	// ScanByKid calls fn for each token whose ciphertext is under kid. fn may
	// call UpdateCiphertext or Delete on the token it receives. An error from
	// fn stops the scan and is returned wrapped.
	ScanByKid(ctx context.Context, kid string, fn func(Token) error) error
	// Walk calls fn for every token in one fixed order (merchant id, then
	// creation), starting after the position after (WalkStart for the
	// first), with the token's position. A job that keeps the position of
	// the last token it finished resumes there after a crash: nothing is
	// visited twice and nothing is skipped, but for tokens created during
	// the walk, which may or may not be visited. Positions mean the same in
	// both stores. fn may call UpdateCiphertext on the token it receives; an
	// error from fn stops the walk and is returned wrapped. ErrInvalid for a
	// position Walk could not have given.
	Walk(ctx context.Context, after string, fn func(t Token, pos string) error) error
	// Count is the number of tokens (what a Walk from the start visits,
	// give or take those created or deleted meanwhile).
	Count(ctx context.Context) (int, error)
}

// Rewrapped is what a rewrap changes on a token: its ciphertext and key id,
// and the masked fields as the key service computes them now. An empty
// masked field is left as it was.
type Rewrapped struct {
	JWE, Kid                       string
	Brand, BIN, Last4, Fingerprint string
	// Binding is the new ciphertext's merchant binding; it replaces the
	// token's, empty included (an old binding never fits a new ciphertext).
	Binding string
}

func (u Rewrapped) validate() error {
	if err := checkJWE(u.JWE); err != nil {
		return err
	}
	switch {
	case !validLabel(u.Kid, 128):
		return fmt.Errorf("%w: kid", ErrInvalid)
	case u.Brand != "" && !validLabel(u.Brand, 32):
		return fmt.Errorf("%w: brand", ErrInvalid)
	case u.Fingerprint != "" && !validLabel(u.Fingerprint, 256):
		return fmt.Errorf("%w: fingerprint", ErrInvalid)
	case u.Binding != "" && !validLabel(u.Binding, maxBinding):
		return fmt.Errorf("%w: binding", ErrInvalid)
	case u.Last4 != "" && (len(u.Last4) != 4 || !digits(u.Last4)):
		return fmt.Errorf("%w: last4 must be 4 digits", ErrInvalid)
	case u.BIN != "" && ((len(u.BIN) != 6 && len(u.BIN) != 8) || !digits(u.BIN)):
		return fmt.Errorf("%w: bin must be 6 or 8 digits", ErrInvalid)
	}
	return nil
}

// maxBinding bounds a stored merchant binding; the key service's are 26
// characters, and its shape is the key service's to check.
const maxBinding = 64

// IDPrefix starts every token id.
const IDPrefix = "tok_"

// NewID returns "tok_" + 26 base32 characters of 128 random bits.
func NewID() (string, error) {
	id, err := randid.New(IDPrefix)
	if err != nil {
		return "", fmt.Errorf("tokens: random id: %w", err)
	}
	return id, nil
}

// ValidID reports whether id has the shape NewID produces. Checking it before
// touching a store keeps arbitrary input out of key names.
func ValidID(id string) bool {
	return randid.Valid(IDPrefix, id)
}

// validLabel accepts key ids, fingerprints, brands and session ids: printable
// ASCII without spaces, braces or separators, since they too end up in keys.
func validLabel(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '{' || c == '}' || c == ':' {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// prepare validates t and fills its id and creation time.
func prepare(t Token, cvcJWE string, cvcTTL time.Duration, now time.Time) (Token, error) {
	if !randid.KeySafe(t.MerchantID) {
		return t, fmt.Errorf("%w: merchant id", ErrInvalid)
	}
	if t.ID == "" {
		id, err := NewID()
		if err != nil {
			return t, err
		}
		t.ID = id
	} else if !ValidID(t.ID) {
		return t, fmt.Errorf("%w: token id", ErrInvalid)
	}
	// A token without its ciphertext would be a token that can never be used.
	if err := checkJWE(t.JWE); err != nil {
		return t, err
	}
	if !validLabel(t.Kid, 128) {
		return t, fmt.Errorf("%w: kid", ErrInvalid)
	}
	if t.SessionID != "" && !validLabel(t.SessionID, 128) {
		return t, fmt.Errorf("%w: session id", ErrInvalid)
	}
	if t.Brand != "" && !validLabel(t.Brand, 32) {
		return t, fmt.Errorf("%w: brand", ErrInvalid)
	}
	if t.Fingerprint != "" && !validLabel(t.Fingerprint, 256) {
		return t, fmt.Errorf("%w: fingerprint", ErrInvalid)
	}
	if t.Binding != "" && !validLabel(t.Binding, maxBinding) {
		return t, fmt.Errorf("%w: binding", ErrInvalid)
	}
	if len(t.Metadata) == 0 {
		t.Metadata = nil
	}
	if err := orderref.Check(t.Reference, t.Metadata); err != nil {
		return t, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	// Masked fields only: at most the first 8 and last 4 digits (PCI DSS 3.4.1).
	if len(t.Last4) != 4 || !digits(t.Last4) {
		return t, fmt.Errorf("%w: last4 must be 4 digits", ErrInvalid)
	}
	if (len(t.BIN) != 6 && len(t.BIN) != 8) || !digits(t.BIN) {
		return t, fmt.Errorf("%w: bin must be 6 or 8 digits", ErrInvalid)
	}
	if t.ExpMonth < 1 || t.ExpMonth > 12 || t.ExpYear < 2000 || t.ExpYear > 9999 {
		return t, fmt.Errorf("%w: expiry", ErrInvalid)
	}
	if cvcJWE != "" {
		if err := checkJWE(cvcJWE); err != nil {
			return t, fmt.Errorf("cvc: %w", err)
		}
		if cvcTTL <= 0 || cvcTTL > MaxCVCTTL {
			return t, fmt.Errorf("%w: cvc ttl must be in (0, %s]", ErrInvalid, MaxCVCTTL)
		}
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now
	}
	t.CreatedAt = t.CreatedAt.UTC()
	if t.CreatedAt.UnixNano() <= 0 {
		return t, fmt.Errorf("%w: created_at", ErrInvalid)
	}
	return t, nil
}

// checkJWE is a shape check only, the one every entry point applies
// (compact.CheckJWE): the store treats the ciphertext as opaque, but never
// stores what the key service would refuse to open.
func checkJWE(s string) error {
	if err := compact.CheckJWE(s); err != nil {
		return fmt.Errorf("%w: ciphertext: %w", ErrInvalid, err)
	}
	return nil
}

// idemHash names an idempotency key in storage: keys are caller-chosen, so
// they are hashed to a fixed length rather than stored or used as key names.
func idemHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// orderKey sorts tokens by creation time, then id: zero-padded Unix nanoseconds
// compare the same as byte strings, so Redis (ZRANGE BYLEX) and bbolt (byte
// order) page through the same order, and a cursor is one such key.
func orderKey(created time.Time, id string) string {
	return fmt.Sprintf("%020d:%s", created.UnixNano(), id)
}

// timeBound is an orderKey prefix: every key of a token created at or after t
// sorts at or after it, every earlier one before it.
func timeBound(t time.Time) string { return fmt.Sprintf("%020d", t.UnixNano()) }

// encodeCursor makes an order key opaque for callers.
func encodeCursor(orderKey string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(orderKey))
}

// decodeCursor checks that a cursor is one we issued the shape of.
func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", fmt.Errorf("%w: cursor", ErrInvalid)
	}
	s := string(b)
	if len(s) != 21+len(IDPrefix)+26 || s[20] != ':' || !digits(s[:20]) || !ValidID(s[21:]) {
		return "", fmt.Errorf("%w: cursor", ErrInvalid)
	}
	return s, nil
}

func clampLimit(n, def, max int) int {
	if n <= 0 {
		return def
	}
	if n > max {
		return max
	}
	return n
}

// normQuery validates a search and fills its limit.
func normQuery(q Query) (Query, error) {
	q.Limit = clampLimit(q.Limit, DefaultSearchLimit, MaxSearchLimit)
	if q.MerchantID != "" && !randid.KeySafe(q.MerchantID) {
		return q, fmt.Errorf("%w: merchant id", ErrInvalid)
	}
	if q.TokenID != "" && !ValidID(q.TokenID) {
		return q, fmt.Errorf("%w: token id", ErrInvalid)
	}
	if q.Last4 != "" && (len(q.Last4) != 4 || !digits(q.Last4)) {
		return q, fmt.Errorf("%w: last4 must be 4 digits", ErrInvalid)
	}
	if q.BIN != "" && (len(q.BIN) < 1 || len(q.BIN) > 8 || !digits(q.BIN)) {
		return q, fmt.Errorf("%w: bin must be up to 8 digits", ErrInvalid)
	}
	q.Brand = strings.ToLower(q.Brand)
	if q.Brand != "" && !validLabel(q.Brand, 32) {
		return q, fmt.Errorf("%w: brand", ErrInvalid)
	}
	if q.Fingerprint != "" && !validLabel(q.Fingerprint, 256) {
		return q, fmt.Errorf("%w: fingerprint", ErrInvalid)
	}
	q.Reference = orderref.Normalize(q.Reference)
	if err := orderref.CheckReference(q.Reference); err != nil {
		return q, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, fmt.Errorf("%w: from must be before to", ErrInvalid)
	}
	return q, nil
}

// match applies every criterion of q, including the ones an index already
// narrowed, so both stores agree whatever index they used.
func (q Query) match(t Token) bool {
	switch {
	case q.MerchantID != "" && t.MerchantID != q.MerchantID,
		q.TokenID != "" && t.ID != q.TokenID,
		q.Last4 != "" && t.Last4 != q.Last4,
		q.BIN != "" && !strings.HasPrefix(t.BIN, q.BIN),
		q.Brand != "" && !strings.EqualFold(t.Brand, q.Brand),
		q.Fingerprint != "" && t.Fingerprint != q.Fingerprint,
		q.Reference != "" && orderref.Fold(t.Reference) != orderref.Fold(q.Reference),
		!q.From.IsZero() && t.CreatedAt.Before(q.From),
		!q.To.IsZero() && !t.CreatedAt.Before(q.To):
		return false
	}
	return true
}

// upperBound is the exclusive upper order key of a search ("" = none).
func (q Query) upperBound() string {
	if q.To.IsZero() {
		return ""
	}
	return timeBound(q.To)
}

// lowerBound is the inclusive lower order key of a search ("" = none).
func (q Query) lowerBound() string {
	if q.From.IsZero() {
		return ""
	}
	return timeBound(q.From)
}

// newestFirst sorts by order key descending and keeps at most n.
func newestFirst(ts []Token, n int) []Token {
	sortTokens(ts)
	if len(ts) > n {
		ts = ts[:n]
	}
	return ts
}

func sortTokens(ts []Token) {
	slices.SortFunc(ts, func(a, b Token) int {
		return strings.Compare(orderKey(b.CreatedAt, b.ID), orderKey(a.CreatedAt, a.ID))
	})
}

func parseInt(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }

// encodeMetadata is the Redis field of a token's metadata ("" for none).
func encodeMetadata(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	b, err := json.Marshal(m)
	if err != nil { // a map of strings always encodes
		return ""
	}
	return string(b)
}

func decodeMetadata(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return m, nil
}
