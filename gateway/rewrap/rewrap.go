// Package rewrap moves stored card ciphertexts from a retiring KEK version to
// the newest one. The key service re-encrypts without ever returning the
// card; the gateway swaps the ciphertext only if the token is still under the
// old version (compare-and-set), so a concurrent or repeated job is harmless.
// Run it after `keyservice keys rotate` and before `keyservice keys retire`.
package rewrap

import (
	"context"
	"errors"
	"fmt"

	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/keyservice/client"
)

// Rewrapper is the key service's signed rewrap.
type Rewrapper interface {
	Rewrap(ctx context.Context, req client.RewrapRequest) (client.RewrapResponse, error)
}

// Store is the part of the token store the job needs.
type Store interface {
	ScanByKid(ctx context.Context, kid string, fn func(tokens.Token) error) error
	UpdateCiphertext(ctx context.Context, id, oldKid, newJWE, newKid string) error
}

// Result counts what a run did.
type Result struct {
	Moved   int // ciphertexts now under the newest KEK
	Skipped int // changed or deleted meanwhile (someone else moved them)
	Failed  int // the key service refused; the token keeps its old ciphertext
}

// Run rewraps every token under oldKid. A refusal for one token is counted
// and the run goes on; a key-service outage stops it (nothing is lost: the
// tokens left keep decrypting under the old version until it is retired).
func Run(ctx context.Context, st Store, ks Rewrapper, oldKid string) (Result, error) {
	var res Result
	err := st.ScanByKid(ctx, oldKid, func(t tokens.Token) error {
		out, err := ks.Rewrap(ctx, client.RewrapRequest{JWE: t.JWE, Token: t.ID})
		var ce *client.Error
		switch {
		case errors.As(err, &ce) && ce.Status < 500 && ce.Status != 429:
			res.Failed++
			return nil
		case err != nil:
			return fmt.Errorf("rewrap %s: %w", t.ID, err)
		}
		if out.Kid == oldKid {
			// Already the newest version: nothing to move.
			res.Skipped++
			return nil
		}
		switch err := st.UpdateCiphertext(ctx, t.ID, oldKid, out.JWE, out.Kid); {
		case errors.Is(err, tokens.ErrConflict), errors.Is(err, tokens.ErrNotFound):
			res.Skipped++
		case err != nil:
			return fmt.Errorf("store %s: %w", t.ID, err)
		default:
			res.Moved++
		}
		return nil
	})
	return res, err
}
