//go:build hsm

package hsm

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/ThalesGroup/crypto11"

	"github.com/blindgate/blindgate/keyservice/keyring"
)

const gcmNonceSize = 12

type token struct {
	ctx    *crypto11.Context
	create bool
	mu     sync.Mutex // serialises key creation
}

func open(c Config, pin string) (Token, error) {
	ctx, err := crypto11.Configure(&crypto11.Config{Path: c.Module, TokenLabel: c.TokenLabel, Pin: pin})
	if err != nil {
		return nil, fmt.Errorf("%w: %s, token %q: %w", ErrUnavailable, c.Module, c.TokenLabel, err)
	}
	return &token{ctx: ctx, create: c.CreateKey}, nil
}

func (t *token) key(label string, create bool) (*crypto11.SecretKey, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ks, err := t.ctx.FindKeys(nil, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("%w: find key %q: %w", ErrUnavailable, label, err)
	}
	switch len(ks) {
	case 0:
	case 1:
		return ks[0], nil
	default:
		return nil, fmt.Errorf("%w: %d keys are labelled %q; which one wraps the master key is ambiguous", ErrUnavailable, len(ks), label)
	}
	if !create {
		return nil, fmt.Errorf("%w: no AES key labelled %q in the token", ErrUnavailable, label)
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	// crypto11 makes it sensitive and not extractable.
	k, err := t.ctx.GenerateSecretKeyWithLabel(id, []byte(label), 256, crypto11.CipherAES)
	if err != nil {
		return nil, fmt.Errorf("%w: generate AES key %q: %w", ErrUnavailable, label, err)
	}
	return k, nil
}

func (t *token) Wrap(master []byte, label string, aad []byte) (*keyring.HSMSeal, error) {
	if len(master) != keyring.MasterKeySize {
		return nil, fmt.Errorf("hsm: master key is %d bytes", len(master))
	}
	k, err := t.key(label, t.create)
	if err != nil {
		return nil, err
	}
	gcm, err := k.NewGCM()
	if err != nil {
		return nil, fmt.Errorf("%w: AES-GCM: %w", ErrUnavailable, err)
	}
	nonce := make([]byte, gcmNonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	ct := gcm.Seal(nil, nonce, master, aad)
	s := &keyring.HSMSeal{KeyLabel: label, Wrapped: append(nonce, ct...)}
	if len(s.Wrapped) != keyring.HSMWrappedSize {
		return nil, fmt.Errorf("%w: the token's AES-GCM answered %d bytes", ErrUnavailable, len(s.Wrapped))
	}
	// Prove the token can open what it sealed before the keyring depends on it.
	back, err := t.Unwrap(s, aad)
	if err != nil {
		return nil, err
	}
	clear(back)
	return s, nil
}

func (t *token) Unwrap(s *keyring.HSMSeal, aad []byte) ([]byte, error) {
	if s == nil || len(s.Wrapped) != keyring.HSMWrappedSize {
		return nil, errors.New("hsm: no wrapped master key")
	}
	k, err := t.key(s.KeyLabel, false)
	if err != nil {
		return nil, err
	}
	gcm, err := k.NewGCM()
	if err != nil {
		return nil, fmt.Errorf("%w: AES-GCM: %w", ErrUnavailable, err)
	}
	master, err := gcm.Open(nil, s.Wrapped[:gcmNonceSize], s.Wrapped[gcmNonceSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w (key %q): %w", ErrUnwrap, s.KeyLabel, err)
	}
	return master, nil
}

func (t *token) Close() error { return t.ctx.Close() }
