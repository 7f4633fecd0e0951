// Package rewrap moves stored card ciphertexts to the newest KEK and brings
// their masked fields (brand, BIN, last 4, fingerprint) up to date. The key
// service re-encrypts and recomputes without ever returning the card; the
// gateway swaps the ciphertext and fields only if the token is still under
// the version and fingerprint it read (compare-and-set), so a concurrent or
// repeated job is harmless.
//
// Run it after `keyservice keys rotate` and before `keyservice keys retire`
// (Run with the old kid), and after a change of fingerprint scheme or
// truncation (RunAll: every token, also those already under the newest KEK).
package rewrap

import (
	"context"
	"errors"
	"fmt"

	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Rewrapper is the key service's signed rewrap.
type Rewrapper interface {
	Rewrap(ctx context.Context, req wire.RewrapRequest) (wire.RewrapResponse, error)
}

// Store is the part of the token store the job needs.
type Store interface {
	ScanByKid(ctx context.Context, kid string, fn func(tokens.Token) error) error
	ScanAll(ctx context.Context, fn func(tokens.Token) error) error
	UpdateCiphertext(ctx context.Context, id, oldKid, oldFingerprint string, u tokens.Rewrapped) error
}

// Result counts what a run did.
type Result struct {
	Moved     int // ciphertexts now under the newest KEK
	Refreshed int // masked fields changed, ciphertext already under the newest KEK
	Unchanged int // already up to date
	Skipped   int // changed or deleted meanwhile (someone else moved them)
	Failed    int // the key service refused; the token keeps its old ciphertext and fields
}

// Run rewraps every token under oldKid. A refusal for one token is counted
// and the run goes on; a key-service outage stops it (nothing is lost: the
// tokens left keep decrypting under the old version until it is retired).
func Run(ctx context.Context, st Store, ks Rewrapper, oldKid string) (Result, error) {
	var res Result
	err := st.ScanByKid(ctx, oldKid, func(t tokens.Token) error { return one(ctx, st, ks, t, false, &res) })
	return res, err
}

// RunAll does the same for every token, whatever its kid: masked fields
// change without a key rotation (merchant-scoped fingerprints, 6+4
// truncation), and only the key service can recompute them.
func RunAll(ctx context.Context, st Store, ks Rewrapper) (Result, error) {
	var res Result
	err := st.ScanAll(ctx, func(t tokens.Token) error { return one(ctx, st, ks, t, true, &res) })
	return res, err
}

// one moves (and with refresh, re-masks) one token. A refresh is guarded by
// the key service like an inspect, so a merchant with many cards sharing a
// first 6 and last 4 may see some refused with card_enumeration: they count
// as failed and a later run picks them up once the window has slid.
func one(ctx context.Context, st Store, ks Rewrapper, t tokens.Token, refresh bool, res *Result) error {
	// The binding goes along so the key service can bind the new
	// ciphertext; a token without one gets one only while the key service
	// runs with -bind-legacy.
	out, err := ks.Rewrap(ctx, wire.RewrapRequest{JWE: t.JWE, Merchant: t.MerchantID, Token: t.ID, Refresh: refresh, Binding: t.Binding})
	var ce *client.Error
	switch {
	case errors.As(err, &ce) && ((ce.Status < 500 && ce.Status != 429) || ce.Code == apierr.CardEnumeration.Code):
		res.Failed++
		return nil
	case err != nil:
		return fmt.Errorf("rewrap %s: %w", t.ID, err)
	}
	u := tokens.Rewrapped{JWE: out.JWE, Kid: out.Kid, Brand: out.Brand, BIN: out.BIN, Last4: out.Last4, Fingerprint: out.Fingerprint, Binding: out.Binding}
	if u.Binding == "" && out.JWE == t.JWE {
		u.Binding = t.Binding // the same ciphertext keeps its binding
	}
	moved := out.Kid != t.Kid
	if !moved && u.Binding == t.Binding && (!refresh || out.Brand == t.Brand && out.BIN == t.BIN && out.Last4 == t.Last4 && out.Fingerprint == t.Fingerprint) {
		res.Unchanged++
		return nil
	}
	switch err := st.UpdateCiphertext(ctx, t.ID, t.Kid, t.Fingerprint, u); {
	case errors.Is(err, tokens.ErrConflict), errors.Is(err, tokens.ErrNotFound):
		res.Skipped++
	case err != nil:
		return fmt.Errorf("store %s: %w", t.ID, err)
	case moved:
		res.Moved++
	default:
		res.Refreshed++
	}
	return nil
}
