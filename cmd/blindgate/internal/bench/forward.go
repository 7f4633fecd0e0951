package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/blindgate/blindgate/keyservice/wire"
)

// forwardDriver forwards one stored card through the merchant API (POST
// /v1/tokens/{id}/forward on the gateway, which signs POST /v1/forward to
// the key service, which fills the template and sends it to the stand-in).
// The token is made once, by a checkout, before the first window. Each
// forward has a fresh Idempotency-Key; with replay, every request repeats
// the key of one forward already made, so the key service answers from its
// idempotency store and sends nothing.
type forwardDriver struct {
	hc        *fasthttp.HostClient
	secretKey string
	fx        *fixture
	replay    bool
	nonce     string

	mu        sync.Mutex
	path      string // "" until ready
	body      []byte
	replayKey string

	seq     atomic.Int64
	inlined atomic.Int64
}

// forwardReadyWait bounds the wait for the key service to pick up the
// stand-in's destination (its watcher reads the file every 2 s).
const forwardReadyWait = 30 * time.Second

func newForwardDriver(svc *services, fx *fixture, replay bool) (*forwardDriver, error) {
	if svc.standin == nil {
		return nil, fmt.Errorf("bench: no processor stand-in for the forward path")
	}
	return &forwardDriver{hc: newHost(svc.gw.ready.Addr), secretKey: svc.gw.ready.SecretKey, fx: fx, replay: replay, nonce: letters(12)}, nil
}

// letters is n random lowercase letters: an Idempotency-Key prefix with
// no digits, so that no key can look like a card number.
func letters(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return string(b)
}

// key is a fresh Idempotency-Key.
func (d *forwardDriver) key() string {
	return fmt.Sprintf("bench-%s-%d", d.nonce, d.seq.Add(1))
}

func (d *forwardDriver) prepare(ctx context.Context, _ int) error {
	d.inlined.Store(0)
	return d.ready(ctx)
}

// ready makes the token (a checkout through the gateway) and forwards it
// once, retrying until the key service has loaded the destination.
func (d *forwardDriver) ready(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.path != "" {
		return nil
	}
	sub := &submitDriver{hc: d.hc, secretKey: d.secretKey, fx: d.fx}
	it, err := sub.newItem(ctx)
	if err != nil {
		return err
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := post(d.hc, it.path, it.body, nil, &tok); err != nil || tok.Token == "" {
		return fmt.Errorf("bench: checkout for the forward token: %v", err)
	}
	// No {{card.cvc}}: a token's CVC is single-use, the card is not.
	body, _ := json.Marshal(map[string]any{"destination": destStandin, "request": wire.ForwardTemplate{
		Path: "/payments", ContentType: "application/json",
		Body: `{"reference":"` + tok.Token + `","number":"{{card.number}}","exp_month":"{{card.exp_month}}","exp_year":"{{card.exp_year}}"}`,
	}})
	path := "/v1/tokens/" + tok.Token + "/forward"
	deadline := time.Now().Add(forwardReadyWait)
	for {
		k := d.key()
		err = d.forward(path, body, k, false)
		if err == nil {
			d.path, d.body, d.replayKey = path, body, k
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: first forward to the stand-in: %w", err)
		}
		sleepCtx(ctx, 250*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// forward sends one forward and checks the answer: the stand-in's 201 came
// back, replayed exactly when it should be.
func (d *forwardDriver) forward(path string, body []byte, key string, wantReplay bool) error {
	var v struct {
		Status   int  `json:"status"`
		Replayed bool `json:"replayed"`
	}
	h := map[string]string{"Authorization": "Bearer " + d.secretKey, "Idempotency-Key": key}
	if err := post(d.hc, path, body, h, &v); err != nil {
		return err
	}
	switch {
	case v.Status != http.StatusCreated:
		return &httpError{status: v.Status, code: "destination_answer"}
	case v.Replayed != wantReplay:
		return &httpError{status: http.StatusOK, code: fmt.Sprintf("replayed=%v", v.Replayed)}
	}
	return nil
}

func (d *forwardDriver) send(ctx context.Context) error {
	d.mu.Lock()
	path, body, rk := d.path, d.body, d.replayKey
	d.mu.Unlock()
	if path == "" {
		// The soak drives without preparing.
		d.inlined.Add(1)
		if err := d.ready(ctx); err != nil {
			return err
		}
		return d.send(ctx)
	}
	if d.replay {
		return d.forward(path, body, rk, true)
	}
	return d.forward(path, body, d.key(), false)
}

func (d *forwardDriver) inline() int64 { return d.inlined.Load() }
func (d *forwardDriver) closeIdle()    { d.hc.CloseIdleConnections() }
