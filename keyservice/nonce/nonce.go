// Package nonce issues the key service's single-use challenges (a reveal's
// "rvn_" nonce, a passkey registration's "pkn_"): 32 random bytes, stored
// with what they are bound to (the signing client, the operator, the
// token) until they expire, and taken exactly once. Redis shares them
// across key-service replicas (SET NX PX, then GETDEL); Memory serves the
// embedded single-process mode.
//
// Both fail closed: a nonce that cannot be stored is not handed out, and
// one that cannot be read back is not accepted.
package nonce

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Errors.
var (
	// ErrUnknown: the nonce was never issued, has expired, or was already
	// taken (a replay): one answer for all three.
	ErrUnknown = errors.New("nonce: unknown, expired or used")
	// ErrMismatch: the nonce was issued for another binding (client,
	// operator or token). It is spent all the same.
	ErrMismatch = errors.New("nonce: issued for another request")
	// ErrUnavailable: the store cannot answer (Redis down, memory full).
	ErrUnavailable = errors.New("nonce: store unavailable")
)

// Store holds issued nonces until they expire or are taken.
type Store interface {
	// Put records nonce with its binding until ttl passes; it refuses a
	// nonce it already holds.
	Put(ctx context.Context, nonce, binding string, ttl time.Duration) error
	// Take removes nonce and returns its binding; ErrUnknown when it is
	// not there.
	Take(ctx context.Context, nonce string) (string, error)
}

// New draws a nonce: prefix and 32 random bytes in unpadded base64url.
func New(prefix string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("nonce: random: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Issue draws a nonce and stores it with binding for ttl.
func Issue(ctx context.Context, s Store, prefix, binding string, ttl time.Duration) (string, error) {
	n, err := New(prefix)
	if err != nil {
		return "", err
	}
	if err := s.Put(ctx, n, binding, ttl); err != nil {
		return "", err
	}
	return n, nil
}

// Redeem takes nonce from s and checks it was issued for binding. The
// nonce is spent whatever the outcome: a nonce tried once with the wrong
// binding cannot be tried again with the right one.
func Redeem(ctx context.Context, s Store, nonce, binding string) error {
	return RedeemWith(ctx, s.Take, nonce, binding)
}

// RedeemWith is Redeem with take in place of a Store's Take: for a caller
// that takes the nonce in a round trip of its own (keyservice/admit, which
// claims a signed request's jti first).
func RedeemWith(ctx context.Context, take func(context.Context, string) (string, error), nonce, binding string) error {
	got, err := take(ctx, nonce)
	if err != nil {
		return err
	}
	if got != binding {
		return ErrMismatch
	}
	return nil
}

// Binding joins the values a nonce is bound to; none of them may hold a
// newline (they are wire ids).
func Binding(parts ...string) string {
	out := ""
	for i, p := range parts {
		if i > 0 {
			out += "\n"
		}
		out += p
	}
	return out
}
