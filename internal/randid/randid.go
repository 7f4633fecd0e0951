// Package randid makes the gateway's identifiers: a type prefix ("tok_",
// "cs_", "m_", ...) and 128 random bits in lower-case base32. Ids are
// capabilities (a session id opens the checkout page) and end up inside store
// keys, so they are unguessable and validated before any store sees them.
package randid

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// encodedLen is the length of 16 bytes in unpadded base32.
const encodedLen = 26

// New returns prefix + 26 base32 characters of 128 random bits.
func New(prefix string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return prefix + encoding.EncodeToString(b[:]), nil
}

// Valid reports whether id has the shape New(prefix) produces.
func Valid(prefix, id string) bool {
	if len(id) != len(prefix)+encodedLen || !strings.HasPrefix(id, prefix) {
		return false
	}
	for _, c := range id[len(prefix):] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// KeySafe reports whether an id from elsewhere (a merchant id) may go into a
// store key: 1-64 letters, digits, '_' or '-', so no brace can break a Redis
// hash tag and no separator or NUL can cross a bbolt key prefix.
func KeySafe(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
