// Package idempotency keeps the merchant API's Idempotency-Key records: a
// retry of a POST with the same key and the same request gets the stored
// answer instead of doing the work twice; the same key with another request
// is refused (ErrMismatch); while the first request is still running, a
// retry is told so (ErrInProgress) rather than run beside it.
//
// Keys are scoped per merchant (two merchants may use the same key) and are
// stored hashed, so a caller-chosen string never becomes part of a store key.
// Begin claims a key with an in-flight marker atomically: of any number of
// concurrent requests with one key exactly one proceeds. The marker is a
// lease: if its holder dies without Complete or Abandon, the key is free
// again once the lease ends (a crash must not block a merchant's key for a
// day). An answer is kept for the retention (24 h) after it is stored.
//
// Stored answers are kept as they were sent, unless the caller seals them
// (Seal, Open): an answer that holds a secret (a new webhook endpoint's
// signing secret) must be sealed before it is stored.
//
// The package knows nothing of HTTP frameworks; gateway/web wraps handlers
// with it.
package idempotency

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/blindgate/blindgate/internal/panshape"

	"github.com/blindgate/blindgate/internal/randid"
)

// Errors. ErrMismatch and ErrInProgress are answers for the caller; ErrLost
// means the caller's claim ended (its lease ran out and another request took
// the key) so its answer was not stored.
var (
	ErrMismatch   = errors.New("idempotency: key used for another request")
	ErrInProgress = errors.New("idempotency: a request with this key is in progress")
	ErrInvalidKey = errors.New("idempotency: invalid key")
	ErrLost       = errors.New("idempotency: claim lost")
)

// Defaults.
const (
	// DefaultRetention is how long an answer is replayed.
	DefaultRetention = 24 * time.Hour
	// DefaultLease bounds how long an in-flight marker blocks a key when its
	// holder never finishes; longer than any merchant API request runs.
	DefaultLease = 2 * time.Minute
	// MaxKeyLen is the longest key accepted (as Stripe's).
	MaxKeyLen = 255
	// MaxAnswerBytes caps a stored answer's body; a larger one is not
	// stored (the key is released, a retry runs again).
	MaxAnswerBytes = 64 << 10
)

// Answer is a stored response.
type Answer struct {
	Status      int    `json:"status"`
	ContentType string `json:"content_type"`
	Body        []byte `json:"body"`
}

// Result is Begin's outcome without an error: either a stored Answer to
// replay, or a Claim the caller now holds and must end with Complete or
// Abandon.
type Result struct {
	Answer *Answer
	Claim  string
}

// Store keeps idempotency records. Implementations: Redis, Bolt.
type Store interface {
	// Begin looks up (merchant, key): a stored answer for requestHash is
	// returned; another hash is ErrMismatch; a live marker for the same hash
	// is ErrInProgress; otherwise the key is claimed and the claim returned.
	Begin(ctx context.Context, merchant, key, requestHash string) (Result, error)
	// Complete stores a under the caller's claim for the retention.
	Complete(ctx context.Context, merchant, key, claim string, a Answer) error
	// Abandon drops the caller's claim: nothing was done that a retry must
	// not repeat.
	Abandon(ctx context.Context, merchant, key, claim string) error
}

// ValidKey reports whether key is an acceptable Idempotency-Key: 1-255
// printable ASCII characters, and nothing shaped like a card number (a key
// is stored and logged as a merchant's free text). The one rule for every
// merchant API POST, forward included.
func ValidKey(key string) bool {
	if key == "" || len(key) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return !panshape.Contains(key)
}

// RequestHash is the fingerprint of a request compared across retries:
// method, path and body, length-prefixed so no two differ only in where
// one part ends.
func RequestHash(method, path string, body []byte) string {
	h := sha256.New()
	for _, p := range [][]byte{[]byte(method), []byte(path), body} {
		var n [8]byte
		l := uint64(len(p))
		for i := range n {
			n[i] = byte(l >> (56 - 8*i))
		}
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// record is what both stores keep per key: the request's hash, and either
// the in-flight claim or the answer. Exp is unix milliseconds on the
// caller's clock (the lease's end, then the retention's).
type record struct {
	Hash   string  `json:"hash"`
	Claim  string  `json:"claim,omitempty"`
	Answer *Answer `json:"answer,omitempty"`
	Exp    int64   `json:"exp"`
}

// decide is Begin's rule on an existing, unexpired record.
func decide(r record, hash string) (Result, error) {
	switch {
	case r.Hash != hash:
		return Result{}, ErrMismatch
	case r.Answer != nil:
		a := *r.Answer
		return Result{Answer: &a}, nil
	default:
		return Result{}, ErrInProgress
	}
}

// storeKey names a record: the merchant id (checked for store safety) and
// a hash of the caller's key.
func storeKey(merchant, key string) (string, error) {
	if !randid.KeySafe(merchant) || !ValidKey(key) {
		return "", ErrInvalidKey
	}
	h := sha256.Sum256([]byte(key))
	return merchant + ":" + hex.EncodeToString(h[:]), nil
}

func newClaim() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func checkAnswer(a Answer) error {
	if len(a.Body) > MaxAnswerBytes {
		return errors.New("idempotency: answer too large to store")
	}
	return nil
}

// Option configures a store.
type Option func(*options)

type options struct {
	now       func() time.Time
	retention time.Duration
	lease     time.Duration
}

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithRetention sets how long answers are kept (default 24 h).
func WithRetention(d time.Duration) Option { return func(o *options) { o.retention = d } }

// WithLease sets how long an unfinished claim blocks its key (default 2 min).
func WithLease(d time.Duration) Option { return func(o *options) { o.lease = d } }

func buildOptions(opts []Option) options {
	o := options{now: time.Now, retention: DefaultRetention, lease: DefaultLease}
	for _, f := range opts {
		f(&o)
	}
	if o.retention <= 0 {
		o.retention = DefaultRetention
	}
	if o.lease <= 0 {
		o.lease = DefaultLease
	}
	return o
}

// Seal encrypts a's body for storage under a key derived from the merchant
// and the caller's Idempotency-Key, which the store never holds (it keeps a
// SHA-256 of the key, a different derivation): an answer that holds a
// secret (a webhook signing secret) is then not readable from the store
// alone. Open reverses it for the retry that presents the same key.
func Seal(merchant, key string, a Answer) (Answer, error) {
	aead, err := sealAEAD(merchant, key)
	if err != nil {
		return Answer{}, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return Answer{}, err
	}
	a.Body = aead.Seal(nonce, nonce, a.Body, []byte(a.ContentType))
	return a, nil
}

// Open decrypts an answer made by Seal.
func Open(merchant, key string, a Answer) (Answer, error) {
	aead, err := sealAEAD(merchant, key)
	if err != nil {
		return Answer{}, err
	}
	if len(a.Body) < aead.NonceSize() {
		return Answer{}, errors.New("idempotency: sealed answer too short")
	}
	body, err := aead.Open(nil, a.Body[:aead.NonceSize()], a.Body[aead.NonceSize():], []byte(a.ContentType))
	if err != nil {
		return Answer{}, fmt.Errorf("idempotency: open sealed answer: %w", err)
	}
	a.Body = body
	return a, nil
}

func sealAEAD(merchant, key string) (cipher.AEAD, error) {
	m := hmac.New(sha256.New, []byte("blindgate idempotency answer seal v1"))
	m.Write([]byte(merchant))
	m.Write([]byte{0})
	m.Write([]byte(key))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
