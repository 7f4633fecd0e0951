package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// revealDriver drives the whole key-service side of a reveal as the back
// office and the operator's browser make it: a reveal nonce for (operator,
// token) from POST /v1/reveal/challenge, the operator's passkey assertion
// over the reveal's challenge, then the timed POST /v1/reveal, whose
// answer (a JWE to the browser key) is opened and checked like the page
// does, after the window (sendDeferred). Nonces and assertions are made
// ahead, between windows (the client's and the operator's work); a nonce
// lives two minutes, so items older than revealItemTTL are dropped.
type revealDriver struct {
	hc      *fasthttp.HostClient
	base    string // the key service's URL, what signatures name
	jwe     string
	fx      *fixture
	presign bool

	prepared[revealItem]
}

type revealItem struct {
	body  []byte
	nonce string
	auth  string // signed at prepare (presign), else at send
	made  time.Time
}

// revealItemTTL keeps a prepared reveal well inside its nonce's lifetime.
const revealItemTTL = 90 * time.Second

const (
	benchToken  = "tok_bench"
	benchReason = "load test of the reveal path"
)

func (d *revealDriver) prepare(ctx context.Context, n int) error {
	fresh := func(it revealItem) bool { return time.Since(it.made) < revealItemTTL/2 }
	return d.refill(ctx, n, 2*runtime.GOMAXPROCS(0), fresh, func(ctx context.Context) (revealItem, error) {
		return d.newItem(ctx, d.presign)
	})
}

// newItem asks for a nonce and makes the operator's approval of one reveal.
func (d *revealDriver) newItem(ctx context.Context, sign bool) (revealItem, error) {
	if err := ctx.Err(); err != nil {
		return revealItem{}, err
	}
	chBody, _ := json.Marshal(wire.RevealChallengeRequest{Actor: benchOperator, Token: benchToken})
	auth, err := d.fx.backoffice.Authorization(http.MethodPost, d.base+wire.PathRevealChallenge, chBody)
	if err != nil {
		return revealItem{}, err
	}
	var ch wire.RevealChallengeResponse
	if err := post(d.hc, wire.PathRevealChallenge, chBody, map[string]string{"Authorization": auth}, &ch); err != nil {
		return revealItem{}, fmt.Errorf("bench: reveal challenge: %w", err)
	}
	jkt, err := wire.JWKThumbprint(d.fx.browserKey)
	if err != nil {
		return revealItem{}, err
	}
	// The software authenticator is not safe for concurrent use.
	d.mu.Lock()
	as, err := d.fx.passkey.Get(wire.RevealChallenge(ch.Nonce, benchToken, benchReason, jkt))
	d.mu.Unlock()
	if err != nil {
		return revealItem{}, err
	}
	body, _ := json.Marshal(wire.RevealRequest{JWE: d.jwe, Actor: benchOperator, Reason: benchReason, Token: benchToken,
		Nonce: ch.Nonce, BrowserKey: d.fx.browserKey, Assertion: as})
	it := revealItem{body: body, nonce: ch.Nonce, made: time.Now()}
	if sign {
		if it.auth, err = d.fx.backoffice.Authorization(http.MethodPost, d.base+wire.PathReveal, body); err != nil {
			return revealItem{}, err
		}
	}
	return it, nil
}

func (d *revealDriver) send(ctx context.Context) error {
	check, err := d.sendDeferred(ctx)
	if err != nil {
		return err
	}
	return check()
}

// sendDeferred is send that leaves opening the answer to the caller:
// that is the operator's browser's work (an ECDH and a decrypt per
// reveal), which drive does after the window, as prepare does the
// signing before it, so that it is not charged to the cores the key
// service shares with the load generator.
func (d *revealDriver) sendDeferred(ctx context.Context) (check func() error, err error) {
	it, err := d.take(ctx, func(ctx context.Context) (revealItem, error) { return d.newItem(ctx, false) })
	if err != nil {
		return nil, err
	}
	if it.auth == "" || time.Since(it.made) > wire.MaxTTL/2 {
		if it.auth, err = d.fx.backoffice.Authorization(http.MethodPost, d.base+wire.PathReveal, it.body); err != nil {
			return nil, err
		}
	}
	var out wire.RevealResponse
	if err := post(d.hc, wire.PathReveal, it.body, map[string]string{"Authorization": it.auth}, &out); err != nil {
		return nil, err
	}
	return func() error { return d.check(out, it.nonce) }, nil
}

// errBadAnswer: a 200 whose JWE does not open to the bench card for this
// token and nonce.
var errBadAnswer = errors.New("bench: reveal answer does not open to the card")

// check opens the answer with the browser key, as the page does.
func (d *revealDriver) check(out wire.RevealResponse, nonce string) error {
	hdr, pt, err := jose.DecryptDirect([]byte(out.JWE), d.fx.browser)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadAnswer, err)
	}
	var c struct {
		PAN string `json:"pan"`
	}
	if json.Unmarshal(pt, &c) != nil || c.PAN != benchPAN || hdr[wire.HeaderToken] != benchToken || hdr[wire.HeaderNonce] != nonce {
		return errBadAnswer
	}
	return nil
}

func (d *revealDriver) closeIdle() { d.hc.CloseIdleConnections() }
