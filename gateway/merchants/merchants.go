// Package merchants keeps the gateway's merchant accounts: name, the web
// origins allowed to embed the hosted checkout, and the secret API key the
// merchant's server authenticates with. Only a hash of the key is stored.
//
// Redis (production) and bbolt (demo) implement Store; one contract test runs
// against both. The package knows nothing of HTTP.
package merchants

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/blindgate/blindgate/internal/randid"

	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/internal/panshape"
)

// Sentinel errors; the HTTP layer maps them with errors.Is. None carries a key.
var (
	ErrNotFound = errors.New("merchants: not found")
	// ErrUnauthorized: unknown, malformed, rotated-out or expired secret key.
	// One error for all cases, so a caller learns nothing about which.
	ErrUnauthorized = errors.New("merchants: unauthorized")
	ErrInvalid      = errors.New("merchants: invalid")
)

// Limits and shapes.
const (
	IDPrefix     = "m_"
	SecretPrefix = "sk_"
	// secretDigits base62 digits carry 256 bits: 62^43 > 2^256.
	secretDigits = 43
	maxNameLen   = 100
	maxOrigins   = 20
	// MaxKeyGrace bounds how long a rotated-out key keeps working.
	MaxKeyGrace = 7 * 24 * time.Hour
)

// Merchant is a merchant account, without any key material.
type Merchant struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	AllowedOrigins []string  `json:"allowed_origins"`
	CreatedAt      time.Time `json:"created_at"`
}

// Store keeps merchants and authenticates their secret keys.
type Store interface {
	// Create adds a merchant and returns it with its secret key. The key is
	// shown once: only its hash is stored.
	Create(ctx context.Context, name string, origins []string) (Merchant, string, error)
	// Authenticate returns the merchant a secret key belongs to, or ErrUnauthorized.
	Authenticate(ctx context.Context, secretKey string) (Merchant, error)
	Get(ctx context.Context, id string) (Merchant, error)
	// List returns all merchants, oldest first.
	List(ctx context.Context) ([]Merchant, error)
	// RotateKey issues a new secret key. The previous one keeps working for
	// grace (0 = revoked at once, at most MaxKeyGrace) so the merchant can
	// deploy the new key without downtime; the one before it stops at once.
	RotateKey(ctx context.Context, id string, grace time.Duration) (string, error)
	// SetOrigins replaces the allowed origins.
	SetOrigins(ctx context.Context, id string, origins []string) (Merchant, error)
}

// record is what the stores persist: the merchant and its key hashes.
//
// Why a plain SHA-256 and not a password hash (argon2, bcrypt): the key is
// 256 bits from crypto/rand, so inverting its hash by guessing is 2^256
// work; slow, salted hashes exist to protect low-entropy human passwords and
// would add nothing but latency on every API call (and a CPU-exhaustion lever
// for anyone sending bad keys). An unsalted hash also lets the stores index
// keys by hash, so Authenticate is one lookup instead of a scan.
type record struct {
	Merchant
	KeyHash     string    `json:"key_hash"`                // hex SHA-256 of the current key
	PrevKeyHash string    `json:"prev_key_hash,omitempty"` // hex SHA-256 of the previous key
	PrevUntil   time.Time `json:"prev_until,omitzero"`     // previous key valid before this instant
}

// matches compares h with the current and (within its grace) the previous
// key hash in constant time. The index lookup that found the record is by
// hash too, so timing reveals at most something about a hash of a guess,
// never about a stored key; the comparison here also guards against a stale
// index entry (a rotated-out key) pointing at the record.
func (r record) matches(h []byte, now time.Time) bool {
	cur, _ := hex.DecodeString(r.KeyHash)
	okCur := subtle.ConstantTimeCompare(h, cur) == 1
	okPrev := false
	if r.PrevKeyHash != "" {
		prev, _ := hex.DecodeString(r.PrevKeyHash)
		okPrev = subtle.ConstantTimeCompare(h, prev) == 1 && now.Before(r.PrevUntil)
	}
	return okCur || okPrev
}

// NewID returns "m_" + 26 base32 characters of 128 random bits.
func NewID() (string, error) {
	id, err := randid.New(IDPrefix)
	if err != nil {
		return "", fmt.Errorf("merchants: random id: %w", err)
	}
	return id, nil
}

// ValidID reports whether id has the shape NewID produces.
func ValidID(id string) bool {
	return randid.Valid(IDPrefix, id)
}

// newSecret returns "sk_" + 43 base62 digits of 256 random bits.
func newSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("merchants: random key: %w", err)
	}
	digits := new(big.Int).SetBytes(b[:]).Text(62)
	return SecretPrefix + strings.Repeat("0", secretDigits-len(digits)) + digits, nil
}

// hashSecret returns the SHA-256 of a well-formed key, or nil for anything
// that is not one (rejected before any store access).
func hashSecret(s string) []byte {
	if len(s) != len(SecretPrefix)+secretDigits || !strings.HasPrefix(s, SecretPrefix) {
		return nil
	}
	for i := len(SecretPrefix); i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return nil
		}
	}
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func normName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > maxNameLen || !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: name must be 1 to %d characters", ErrInvalid, maxNameLen)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", fmt.Errorf("%w: name has control or format characters", ErrInvalid)
		}
	}
	if panshape.Contains(name) {
		return "", fmt.Errorf("%w: name must not look like a card number", ErrInvalid)
	}
	return name, nil
}

func normOrigins(origins []string) ([]string, error) {
	if len(origins) > maxOrigins {
		return nil, fmt.Errorf("%w: at most %d origins", ErrInvalid, maxOrigins)
	}
	out := make([]string, 0, len(origins))
	for _, o := range origins {
		n, err := sessions.ValidateOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// newRecord builds a merchant with a fresh id and key.
func newRecord(name string, origins []string, now time.Time) (record, string, error) {
	name, err := normName(name)
	if err != nil {
		return record{}, "", err
	}
	norm, err := normOrigins(origins)
	if err != nil {
		return record{}, "", err
	}
	id, err := NewID()
	if err != nil {
		return record{}, "", err
	}
	secret, err := newSecret()
	if err != nil {
		return record{}, "", err
	}
	r := record{
		Merchant: Merchant{ID: id, Name: name, AllowedOrigins: norm, CreatedAt: now.UTC().Truncate(time.Millisecond)},
		KeyHash:  hex.EncodeToString(hashSecret(secret)),
	}
	return r, secret, nil
}

// rotate moves the current key to "previous" (or drops it when grace is 0)
// and installs a new one. It returns the new secret and the index entries to
// delete (the key two rotations back, or the current one when revoked) and
// to keep for grace.
func rotate(r *record, grace time.Duration, now time.Time) (secret string, drop []string, keep string, err error) {
	if grace < 0 || grace > MaxKeyGrace {
		return "", nil, "", fmt.Errorf("%w: grace must be 0 to %s", ErrInvalid, MaxKeyGrace)
	}
	if secret, err = newSecret(); err != nil {
		return "", nil, "", err
	}
	if r.PrevKeyHash != "" {
		drop = append(drop, r.PrevKeyHash)
	}
	if grace == 0 {
		drop = append(drop, r.KeyHash)
		r.PrevKeyHash, r.PrevUntil = "", time.Time{}
	} else {
		keep = r.KeyHash
		r.PrevKeyHash, r.PrevUntil = r.KeyHash, now.Add(grace).UTC()
	}
	r.KeyHash = hex.EncodeToString(hashSecret(secret))
	return secret, drop, keep, nil
}

// Option configures a store.
type Option func(*options)

type options struct{ now func() time.Time }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

func buildOptions(opts []Option) options {
	o := options{now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	return o
}

func sortMerchants(ms []Merchant) {
	slices.SortFunc(ms, func(a, b Merchant) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
