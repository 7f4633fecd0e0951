// Package websession keeps back-office login sessions: a 256-bit random id
// in an HttpOnly cookie, a per-session CSRF token, a sliding idle timeout, an
// absolute lifetime and the time of the last authentication (for the fresh
// login demanded before a reveal). It knows nothing of HTTP; stores are Redis
// (production) and bbolt (embedded demo) behind one interface.
//
// Stores key a session by SHA-256 of its id, so a dump of Redis or of the
// bolt file holds no cookie value that could be replayed.
package websession

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Sentinel errors.
var (
	// ErrNotFound: no such session (never existed, logged out or revoked).
	ErrNotFound = errors.New("websession: not found")
	// ErrExpired: the session passed its idle or absolute timeout; it is
	// deleted when this is returned.
	ErrExpired = errors.New("websession: expired")
)

// Config holds the session timeouts. Zero fields take the defaults.
type Config struct {
	// IdleTimeout ends a session this long after its last use (15 min,
	// PCI DSS 8.2.8).
	IdleTimeout time.Duration
	// AbsoluteTimeout ends a session this long after login, however busy (12 h).
	AbsoluteTimeout time.Duration
	// ReauthWindow is how recent the last authentication must be for a
	// reveal (5 min); see Session.FreshFor. Stores do not use it.
	ReauthWindow time.Duration
}

// Validate fills defaults and names the first bad field.
func (c *Config) Validate() error {
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 15 * time.Minute
	}
	if c.AbsoluteTimeout == 0 {
		c.AbsoluteTimeout = 12 * time.Hour
	}
	if c.ReauthWindow == 0 {
		c.ReauthWindow = 5 * time.Minute
	}
	switch {
	case c.IdleTimeout < time.Second:
		return errors.New("websession: config IdleTimeout must be at least 1s")
	case c.AbsoluteTimeout < c.IdleTimeout:
		return errors.New("websession: config AbsoluteTimeout must be >= IdleTimeout")
	case c.ReauthWindow < 0:
		return errors.New("websession: config ReauthWindow must be positive")
	}
	return nil
}

// Store keeps sessions. Implementations: *Redis and *Bolt.
type Store interface {
	// Create starts a session for operatorID at now (a login: AuthAt = now).
	Create(ctx context.Context, operatorID string, now time.Time) (Session, error)
	// Get returns the session with cookie value id and slides its idle
	// timeout (LastSeen = now). ErrNotFound, or ErrExpired past the idle or
	// absolute timeout.
	Get(ctx context.Context, id string, now time.Time) (Session, error)
	// Reauth records a fresh authentication (AuthAt = now); same errors as Get.
	Reauth(ctx context.Context, id string, now time.Time) (Session, error)
	// Delete ends one session (logout). Deleting an unknown id is no error.
	Delete(ctx context.Context, id string) error
	// DeleteForOperator ends every session of an operator (lockout, disable,
	// password or role change).
	DeleteForOperator(ctx context.Context, operatorID string) error
}

// Session is one login. ID and CSRF are secrets: String, GoString and
// LogValue leave them out.
type Session struct {
	ID         string // cookie value: 256-bit random, base64url
	OperatorID string
	CSRF       string // token for the forms of this session
	CreatedAt  time.Time
	LastSeen   time.Time
	AuthAt     time.Time // last password (+TOTP) check: login or re-login
}

// CheckCSRF compares token with the session's CSRF token in constant time.
func (s Session) CheckCSRF(token string) bool {
	if s.CSRF == "" || token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(s.CSRF), []byte(token)) == 1
}

// FreshFor reports whether the last authentication happened within d
// before now (the re-login rule before a reveal).
func (s Session) FreshFor(d time.Duration, now time.Time) bool {
	if s.AuthAt.IsZero() || now.Before(s.AuthAt) {
		return false
	}
	return now.Sub(s.AuthAt) <= d
}

func (s Session) String() string {
	return fmt.Sprintf("session(operator=%s created=%s)", s.OperatorID, s.CreatedAt.UTC().Format(time.RFC3339))
}

// GoString keeps %#v from printing the cookie value and CSRF token.
func (s Session) GoString() string { return s.String() }

// LogValue logs the operator and a short hash prefix that identifies the
// session without being usable as a cookie.
func (s Session) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("operator", s.OperatorID),
		slog.String("session", idHash(s.ID)[:12]),
	)
}

// idLen is the length of a base64url-encoded 256-bit id.
const idLen = 43

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// idHash is the storage key of a session id.
func idHash(id string) string {
	h := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// wellFormed rejects ids that cannot be ours before touching the store.
func wellFormed(id string) bool {
	if len(id) != idLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(id)
	return err == nil
}

// record is the stored form: everything but the id.
type record struct {
	OperatorID string    `json:"op"`
	CSRF       string    `json:"csrf"`
	CreatedAt  time.Time `json:"created"`
	LastSeen   time.Time `json:"last_seen"`
	AuthAt     time.Time `json:"auth_at"`
}

func (r record) session(id string) Session {
	return Session{ID: id, OperatorID: r.OperatorID, CSRF: r.CSRF, CreatedAt: r.CreatedAt, LastSeen: r.LastSeen, AuthAt: r.AuthAt}
}

func encode(r record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("websession: encode: %w", err)
	}
	return b, nil
}

func decode(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("websession: decode stored session: %w", err)
	}
	return r, nil
}

func newRecord(operatorID string, now time.Time) (Session, record, error) {
	if operatorID == "" {
		return Session{}, record{}, errors.New("websession: empty operator id")
	}
	now = now.UTC()
	r := record{OperatorID: operatorID, CSRF: randomToken(), CreatedAt: now, LastSeen: now, AuthAt: now}
	return r.session(randomToken()), r, nil
}

// remaining is how long r may live after now: the smaller of the idle and
// absolute limits; < 0 means expired (a session is still good at exactly
// IdleTimeout after its last use).
func (c Config) remaining(r record, now time.Time) time.Duration {
	idle := c.IdleTimeout - now.Sub(r.LastSeen)
	abs := c.AbsoluteTimeout - now.Sub(r.CreatedAt)
	return min(idle, abs)
}

// touch slides r to now (and sets AuthAt when reauth), or reports expiry.
func (c Config) touch(r record, now time.Time, reauth bool) (record, time.Duration, error) {
	if c.remaining(r, now) < 0 {
		return r, 0, ErrExpired
	}
	now = now.UTC()
	if now.After(r.LastSeen) {
		r.LastSeen = now
	}
	if reauth {
		r.AuthAt = now
	}
	return r, c.remaining(r, now), nil
}
