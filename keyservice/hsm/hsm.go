// Package hsm protects the key service's master key with an AES key inside
// a hardware security module, reached through PKCS#11 (Vault's "HSM seal"):
// the keyring header holds the master key encrypted by the token
// (keyring.HSMSeal), and the key service unseals at start by asking the
// token to decrypt it. The AES key is generated in the token, sensitive and
// not extractable; the master key never leaves the process in clear.
//
// PKCS#11 means loading the vendor's module (a shared library) with cgo, so
// the token code is built only with the hsm build tag (`go build -tags hsm`,
// CGO_ENABLED=1: the keyservice-hsm image). The default build stays a static
// binary for the FROM-scratch image; there Open returns ErrNotBuilt.
package hsm

import (
	"errors"
	"fmt"

	"github.com/blindgate/blindgate/internal/secret"
	"github.com/blindgate/blindgate/keyservice/keyring"
)

// ErrNotBuilt is returned by Open in a binary built without the hsm tag.
var ErrNotBuilt = errors.New("hsm: this keyservice was built without PKCS#11 support (build with -tags hsm and CGO_ENABLED=1, or run the keyservice-hsm image)")

// ErrUnavailable wraps every failure to reach or use the token: module not
// loadable, token not found, wrong PIN, key missing.
var ErrUnavailable = errors.New("hsm: token unavailable")

// ErrUnwrap is returned when the token decrypts nothing: the wrapped master
// key was made by another key (or altered).
var ErrUnwrap = errors.New("hsm: the token's key does not decrypt this keyring's master key")

// Config selects the token and the key. The PIN is a secret reference
// (env:NAME or file:PATH), never the PIN itself.
type Config struct {
	Module     string // path of the PKCS#11 module (.so)
	TokenLabel string
	PIN        string // env:NAME or file:PATH
	KeyLabel   string // the AES key's CKA_LABEL
	// CreateKey generates the AES key in the token when none has KeyLabel
	// (keys init); the service never creates one.
	CreateKey bool
}

// Enabled reports whether an HSM is configured at all.
func (c Config) Enabled() bool { return c.Module != "" }

// Validate checks the configuration without touching the token.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	switch {
	case c.TokenLabel == "":
		return errors.New("hsm: a token label is required with a module")
	case c.PIN == "":
		return errors.New("hsm: a PIN reference (env:NAME or file:PATH) is required with a module")
	}
	return secret.Validate(c.PIN)
}

// Token is an open session pool on the token. Wrap and Unwrap are safe for
// concurrent use.
type Token interface {
	// Wrap encrypts a master key under the AES key labelled label; aad
	// binds it to its keyring (the deployment id).
	Wrap(master []byte, label string, aad []byte) (*keyring.HSMSeal, error)
	// Unwrap decrypts the master key of s.
	Unwrap(s *keyring.HSMSeal, aad []byte) ([]byte, error)
	Close() error
}

// Open logs in to the token c names. Without the hsm build tag it returns
// ErrNotBuilt.
func Open(c Config) (Token, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, errors.New("hsm: no module configured")
	}
	pin, err := secret.Resolve(c.PIN)
	if err != nil {
		return nil, fmt.Errorf("%w: PIN: %w", ErrUnavailable, err)
	}
	defer clear(pin)
	return open(c, string(pin))
}

// AAD is the associated data binding a wrapped master key to its keyring.
func AAD(deployment string) []byte {
	return []byte("blindgate master key v1 " + deployment)
}
