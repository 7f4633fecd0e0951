package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Paths the bench drives.
const (
	PathInspect = "inspect" // key service POST /v1/inspect, signed (the gateway's call)
	PathReveal  = "reveal"  // key service POST /v1/reveal, signed (the back office's call)
	PathSubmit  = "submit"  // gateway POST /checkout/{session}/submit: the shopper's whole checkout
	// PathForward is the merchant API's POST /v1/tokens/{id}/forward to the
	// bench's processor stand-in, each with a fresh Idempotency-Key;
	// PathForwardReplay repeats one key, so every answer is a replay.
	PathForward       = "forward"
	PathForwardReplay = "forward-replay"
)

// forwardPath reports whether path is one of the forward paths.
func forwardPath(path string) bool { return path == PathForward || path == PathForwardReplay }

// driver sends one kind of request. prepare readies n requests before a
// window opens, so that signing, session creation and card encryption (the
// client's work) stay out of the timed loop; if a window outruns what was
// prepared, send prepares inline and counts it.
type driver interface {
	prepare(ctx context.Context, n int) error
	send(ctx context.Context) error
	inline() int64
	closeIdle()
}

// deferredSender is a driver whose answers need client work to check
// (opening a reveal's JWE, as the operator's browser does): drive sends
// with sendDeferred and runs the checks after the window closes, so the
// window's CPU figures hold the services' work, not the client's.
type deferredSender interface {
	sendDeferred(ctx context.Context) (check func() error, err error)
}

// maxDeferred bounds the checks one worker holds for after the window
// (each holds its answer, about 1 KiB): a sweep window holds a few hundred
// per worker; past the bound (a long soak, which measures growth, not
// CPU per request) answers are checked as they come.
const maxDeferred = 1 << 12

// httpError is a non-2xx answer, classified by status and error code.
type httpError struct {
	status int
	code   string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d/%s", e.status, e.code) }

// newHost is the load generator's client for one service: fasthttp's
// HostClient keeps one keep-alive connection per busy worker and costs a
// fraction of net/http's CPU per request, which matters because the load
// generator shares the machine's cores with the services it measures.
func newHost(addr string) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr: addr, MaxConns: 4096, MaxIdleConnDuration: time.Minute,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		NoDefaultUserAgentHeader: true, MaxIdemponentCallAttempts: 1,
	}
}

// post sends body and reads the answer, keeping the connection alive. A
// non-2xx answer is an *httpError; into, when set, receives a 2xx body.
func post(hc *fasthttp.HostClient, path string, body []byte, header map[string]string, into any) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer func() {
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}()
	req.SetRequestURI("http://" + hc.Addr + path)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	req.SetBodyRaw(body)
	if err := hc.Do(req, resp); err != nil {
		return err
	}
	if st := resp.StatusCode(); st/100 != 2 {
		var eb wire.ErrorBody
		_ = json.Unmarshal(resp.Body(), &eb)
		return &httpError{status: st, code: eb.Error.Code}
	}
	if into != nil {
		return json.Unmarshal(resp.Body(), into)
	}
	return nil
}

// signedDriver posts one body to a key-service endpoint, each time with a
// fresh signature (a jti is single-use). Signatures are made ahead, in
// parallel, between windows.
type signedDriver struct {
	hc     *fasthttp.HostClient
	url    string // what the signature names (htu)
	path   string
	body   []byte
	signer *client.Signer

	mu       sync.Mutex
	auths    []string
	next     atomic.Int64
	inlined  atomic.Int64
	presign  bool
	prepared time.Time
}

func (d *signedDriver) prepare(ctx context.Context, n int) error {
	d.inlined.Store(0)
	if !d.presign {
		return nil
	}
	auths := make([]string, n)
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n && ctx.Err() == nil; i += workers {
				a, err := d.signer.Authorization(http.MethodPost, d.url, d.body)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				auths[i] = a
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	d.mu.Lock()
	d.auths = auths
	d.prepared = time.Now()
	d.mu.Unlock()
	d.next.Store(0)
	return ctx.Err()
}

func (d *signedDriver) auth() (string, error) {
	i := d.next.Add(1) - 1
	d.mu.Lock()
	auths, at := d.auths, d.prepared
	d.mu.Unlock()
	// A signature older than half its lifetime is not worth the risk of
	// expiring in flight; sign a fresh one.
	if i < int64(len(auths)) && time.Since(at) < wire.MaxTTL/2 {
		return auths[i], nil
	}
	d.inlined.Add(1)
	return d.signer.Authorization(http.MethodPost, d.url, d.body)
}

func (d *signedDriver) send(context.Context) error {
	a, err := d.auth()
	if err != nil {
		return err
	}
	return post(d.hc, d.path, d.body, map[string]string{"Authorization": a}, nil)
}

func (d *signedDriver) inline() int64 { return d.inlined.Load() }
func (d *signedDriver) closeIdle()    { d.hc.CloseIdleConnections() }

// submitDriver completes checkouts through the gateway. Every submission
// needs its own session (a session completes on its first success) and a
// card JWE bound to that session id, so both are made ahead through the
// merchant API and the public KEK, as a merchant server and a shopper's
// browser would.
type submitDriver struct {
	hc        *fasthttp.HostClient
	secretKey string
	fx        *fixture

	prepared[submitItem]
}

type submitItem struct {
	path string
	body []byte
}

func (d *submitDriver) prepare(ctx context.Context, n int) error {
	// What the last window left unused stays: a session keeps.
	return d.refill(ctx, n, 4*runtime.GOMAXPROCS(0), nil, d.newItem)
}

// newItem creates a checkout session (merchant API) and encrypts the card
// for it (the page's job).
func (d *submitDriver) newItem(ctx context.Context) (submitItem, error) {
	if err := ctx.Err(); err != nil {
		return submitItem{}, err
	}
	var s struct {
		ID string `json:"id"`
	}
	err := post(d.hc, "/v1/checkout/sessions", []byte(`{}`), map[string]string{"Authorization": "Bearer " + d.secretKey}, &s)
	if err != nil || s.ID == "" {
		return submitItem{}, fmt.Errorf("bench: create checkout session: %v", err)
	}
	jwe, err := d.fx.cardJWE(s.ID)
	if err != nil {
		return submitItem{}, err
	}
	body, _ := json.Marshal(map[string]string{"card_jwe": string(jwe)})
	return submitItem{path: "/checkout/" + s.ID + "/submit", body: body}, nil
}

func (d *submitDriver) send(ctx context.Context) error {
	it, err := d.take(ctx, d.newItem)
	if err != nil {
		return err
	}
	return post(d.hc, it.path, it.body, nil, nil)
}

func (d *submitDriver) closeIdle() { d.hc.CloseIdleConnections() }

// window is the result of driving one load pattern for a while.
type window struct {
	ok, failed int64
	errKinds   map[string]int64
	lat        hist
	elapsed    time.Duration
}

// drive runs workers closed-loop (each sends its next request as soon as
// the previous answer arrives) or, with rate > 0, paced: request k is due at
// start + k/rate and its latency counts from when it was due, so a service
// that falls behind is charged for the queueing it causes. Only requests
// that complete inside the window [warmup, warmup+dur) are counted; mark is
// called at both edges (to snapshot CPU and memory). With minOK > 0 the
// window is stretched (up to 20 times dur, or 10 s) until minOK requests succeeded in
// it; throughput is counted over the real elapsed time either way. A
// deferredSender's answers in the window are checked after it closes.
func drive(ctx context.Context, d driver, workers int, rate float64, warmup, dur time.Duration, minOK int64, mark func(edge int)) window {
	const (
		phaseWarm = iota
		phaseMeasure
		phaseDone
	)
	var phase atomic.Int32
	var ticket, measured atomic.Int64
	type deferred struct {
		lat   time.Duration
		check func() error
	}
	type wres struct {
		h        hist
		ok, bad  int64
		kinds    map[string]int64
		deferred []deferred
	}
	ds, _ := d.(deferredSender)
	res := make([]*wres, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		r := &wres{kinds: map[string]int64{}}
		res[w] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && phase.Load() != phaseDone {
				t0 := time.Now()
				if rate > 0 {
					due := start.Add(time.Duration(float64(ticket.Add(1)-1) / rate * float64(time.Second)))
					if wait := time.Until(due); wait > 0 {
						select {
						case <-time.After(wait):
						case <-ctx.Done():
							return
						}
					}
					t0 = due
				}
				var check func() error
				var err error
				if ds != nil {
					check, err = ds.sendDeferred(ctx)
				} else {
					err = d.send(ctx)
				}
				lat := time.Since(t0)
				if phase.Load() != phaseMeasure {
					continue
				}
				if err == nil && check != nil {
					if len(r.deferred) < maxDeferred {
						r.deferred = append(r.deferred, deferred{lat, check})
						measured.Add(1)
						continue
					}
					err = check()
				}
				if err != nil {
					r.bad++
					r.kinds[errKind(err)]++
					continue
				}
				r.ok++
				measured.Add(1)
				r.h.add(lat)
			}
		}()
	}
	sleepCtx(ctx, warmup)
	mark(0)
	phase.Store(phaseMeasure)
	t0 := time.Now()
	sleepCtx(ctx, dur)
	for minOK > 0 && measured.Load() < minOK && time.Since(t0) < max(20*dur, 10*time.Second) && ctx.Err() == nil {
		sleepCtx(ctx, dur/10+time.Millisecond)
	}
	phase.Store(phaseDone)
	elapsed := time.Since(t0)
	mark(1)
	wg.Wait()
	for _, r := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, dc := range r.deferred {
				if err := dc.check(); err != nil {
					r.bad++
					r.kinds[errKind(err)]++
					continue
				}
				r.ok++
				r.h.add(dc.lat)
			}
			r.deferred = nil
		}()
	}
	wg.Wait()
	out := window{errKinds: map[string]int64{}, elapsed: elapsed}
	for _, r := range res {
		out.ok += r.ok
		out.failed += r.bad
		out.lat.merge(&r.h)
		for k, v := range r.kinds {
			out.errKinds[k] += v
		}
	}
	return out
}

func errKind(err error) string {
	var he *httpError
	if errors.As(err, &he) {
		return he.Error()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	if errors.Is(err, fasthttp.ErrTimeout) {
		return "timeout"
	}
	if errors.Is(err, errBadAnswer) {
		return "bad_answer"
	}
	return "transport"
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// makeItems makes need prepared requests with newItem on workers goroutines,
// stopping at the first error.
func makeItems[T any](ctx context.Context, need, workers int, newItem func(context.Context) (T, error)) ([]T, error) {
	made := make([]T, need)
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < need && ctx.Err() == nil; i += workers {
				it, err := newItem(ctx)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				made[i] = it
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return nil, *p
	}
	return made, nil
}
