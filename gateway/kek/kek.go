// Package kek caches the key service's public key-encryption keys (the JWKS)
// for the checkout page. Public keys are not secret, so a cached set may be
// served for a while when the key service is briefly unreachable: shoppers
// can keep encrypting, and their ciphertexts wait for inspect. Not while it
// says it is sealed: nothing can be inspected until custodians unseal it, so
// the page says "temporarily unavailable" before a card is typed, not after.
package kek

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/keyservice/client"
)

// ErrNoKeys is returned when no usable set was ever fetched or it is too old.
var ErrNoKeys = errors.New("kek: no public key set available")

// Fetcher returns the raw JWKS.
type Fetcher interface {
	JWKS(ctx context.Context) ([]byte, error)
}

// Cache serves a JWKS fetched at most every Fresh, and keeps serving the last
// good one for up to Stale when a refresh fails.
type Cache struct {
	src   Fetcher
	fresh time.Duration
	stale time.Duration
	now   func() time.Time

	mu      sync.Mutex
	body    []byte
	fetched time.Time
}

// New returns a Cache. fresh bounds how quickly a rotation reaches pages;
// stale bounds how long an outage is papered over.
func New(src Fetcher, fresh, stale time.Duration) *Cache {
	return &Cache{src: src, fresh: fresh, stale: stale, now: time.Now}
}

// JWKS returns the cached set, refreshing it when due.
func (c *Cache) JWKS(ctx context.Context) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.body != nil && now.Sub(c.fetched) < c.fresh {
		return c.body, nil
	}
	b, err := c.src.JWKS(ctx)
	if err == nil {
		err = check(b)
	}
	if err != nil {
		if Sealed(err) {
			c.body = nil
		}
		if c.body != nil && now.Sub(c.fetched) < c.stale {
			return c.body, nil
		}
		return nil, fmt.Errorf("%w: %w", ErrNoKeys, err)
	}
	c.body, c.fetched = b, now
	return b, nil
}

// Kids lists the key ids of the cached set's encryption keys: the versions
// the key service publishes, which new ciphertexts use (the background
// rewrap moves every token under another one).
func (c *Cache) Kids(ctx context.Context) ([]string, error) {
	b, err := c.JWKS(ctx)
	if err != nil {
		return nil, err
	}
	set, err := parse(b)
	if err != nil {
		return nil, err
	}
	var kids []string
	for _, k := range set.Keys {
		if k.Use == "enc" && k.Kid != "" {
			kids = append(kids, k.Kid)
		}
	}
	return kids, nil
}

// Sealed reports whether err is the key service's answer that it is sealed.
func Sealed(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Code == apierr.Sealed.Code
}

// Invalidate forgets the cached set (after the page reports an unknown kid,
// or when the gateway's readiness finds the key service sealed).
func (c *Cache) Invalidate() {
	c.mu.Lock()
	c.body = nil
	c.mu.Unlock()
}

// check makes sure the set is a JWKS with at least one encryption key; the
// page would otherwise fail with a less helpful error.
func check(b []byte) error {
	set, err := parse(b)
	if err != nil {
		return err
	}
	for _, k := range set.Keys {
		if k.Use == "enc" && k.Kid != "" {
			return nil
		}
	}
	return errors.New("kek: JWKS has no encryption key")
}

type jwks struct {
	Keys []struct {
		Use string `json:"use"`
		Kid string `json:"kid"`
	} `json:"keys"`
}

func parse(b []byte) (jwks, error) {
	var set jwks
	if err := json.Unmarshal(b, &set); err != nil {
		return set, fmt.Errorf("kek: not a JWKS: %w", err)
	}
	return set, nil
}
