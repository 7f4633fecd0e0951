package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindgate/blindgate/internal/jose"
)

// callTimeout is how long a client of the gateways waits for one answer.
// It is above every bound the gateway applies to its own calls (the key
// service client's 15 s for a call and all its replicas, Redis' 1 s per
// command), so a request that reaches it hung past the gateway's timeouts.
const callTimeout = 30 * time.Second

// roundRobin is the merchant's server and the shoppers' browsers as a
// load balancer in front of the gateways makes them: each call goes to the
// next gateway in turn and, when no answer comes back from it (a dead
// gateway), to the next one. A retried submission is the same ciphertext for the
// same session: the gateway answers it with the token it minted, if any
// (ingest's replay rule). Safe for concurrent use.
type roundRobin struct {
	s    *stack
	hc   *http.Client
	next atomic.Uint64

	mu      sync.Mutex
	calls   int
	retries int           // calls sent again to another gateway
	hung    []string      // calls that reached callTimeout
	longest time.Duration // the slowest answer
}

func newRoundRobin(s *stack) *roundRobin {
	// No keep-alive: each call makes its own connection, as calls from
	// many shoppers through a balancer would, so a dead gateway shows as
	// a refused connection and not as a pooled one going stale.
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	return &roundRobin{s: s, hc: &http.Client{Timeout: callTimeout, Transport: tr}}
}

// call is one request: to gateway gw (>= 0), or to each in turn from the
// next (-1). ip, when set, is the shopper's address as a trusted proxy
// reports it (X-Forwarded-For; the gateways run with -proxy-header).
type call struct {
	gw       int
	merchant bool
	ip       string
	method   string
	path     string
	in, out  any
}

// do sends c and decodes a 2xx answer into c.out. It returns the gateway
// that answered; an answer other than 2xx is an *apiError.
func (rr *roundRobin) do(ctx context.Context, c call) (int, error) {
	var body []byte
	if c.in != nil {
		var err error
		if body, err = json.Marshal(c.in); err != nil {
			return -1, err
		}
	}
	n := len(rr.s.gateways)
	order := []int{c.gw}
	if c.gw < 0 {
		start := int(rr.next.Add(1) % uint64(n))
		order = order[:0]
		for k := range n {
			order = append(order, (start+k)%n)
		}
	}
	var last error
	for k, i := range order {
		if k > 0 {
			rr.mu.Lock()
			rr.retries++
			rr.mu.Unlock()
		}
		err := rr.send(ctx, i, c, body)
		// An answer without an error object is not the gateway's: this
		// machine's network answers for a port nobody listens on (a dead
		// gateway's) with a page of its own. It counts as no answer.
		if err == nil || fromGateway(err) || ctx.Err() != nil {
			return i, err
		}
		last = err
	}
	return -1, last
}

func (rr *roundRobin) send(ctx context.Context, i int, c call, body []byte) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, rr.s.gateways[i].URL+c.path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.merchant {
		req.Header.Set("Authorization", "Bearer "+rr.s.SecretKey)
	}
	if c.ip != "" {
		req.Header.Set("X-Forwarded-For", c.ip)
	}
	start := time.Now()
	resp, err := rr.hc.Do(req)
	took := time.Since(start)
	rr.mu.Lock()
	rr.calls++
	rr.longest = max(rr.longest, took)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
		rr.hung = append(rr.hung, fmt.Sprintf("%s %s on gateway %d: no answer in %s", c.method, c.path, i+1, took.Round(time.Millisecond)))
	}
	rr.mu.Unlock()
	if err != nil {
		return err
	}
	return readAnswer(resp, c.out, c.method, c.path)
}

// stats reports the calls so far: how many, how many went to a second
// gateway, the slowest answer and the calls that hung.
func (rr *roundRobin) stats() (calls, retries int, longest time.Duration, hung []string) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.calls, rr.retries, rr.longest, append([]string(nil), rr.hung...)
}

// session opens a checkout session as the merchant (-1: the next gateway).
func (rr *roundRobin) session(ctx context.Context, gw int) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	_, err := rr.do(ctx, call{gw: gw, merchant: true, method: http.MethodPost, path: "/v1/checkout/sessions",
		in: map[string]any{"allowed_origins": []string{rr.s.Page.Origin}, "locale": "en", "max_attempts": 20}, out: &out})
	if err == nil && !strings.HasPrefix(out.ID, "cs_") {
		err = fmt.Errorf("create session: id %q", out.ID)
	}
	return out.ID, err
}

// key is the public KEK the checkout page would encrypt to, from gw's
// /v1/keys (-1: the next gateway).
func (rr *roundRobin) key(ctx context.Context, gw int) (jose.PublicKey, error) {
	var raw json.RawMessage
	if _, err := rr.do(ctx, call{gw: gw, method: http.MethodGet, path: "/v1/keys", out: &raw}); err != nil {
		return jose.PublicKey{}, err
	}
	keys, err := jose.ParseJWKS(raw)
	if err != nil || len(keys) == 0 {
		return jose.PublicKey{}, fmt.Errorf("/v1/keys: %d keys, %v", len(keys), err)
	}
	return keys[0], nil
}

// submit encrypts card (any PAN: a test may send one that fails inspect)
// to key for session sid, as the checkout page does, and submits it to gw
// (-1: the next gateway) from shopper address ip. It returns the gateway
// that answered.
func (rr *roundRobin) submit(ctx context.Context, gw int, sid, ip, pan string, key jose.PublicKey) (string, int, error) {
	pt, _ := json.Marshal(map[string]any{
		"pan": pan, "exp_month": 12, "exp_year": expYear(), "name": "E2E Shopper", "iat": time.Now().Unix(),
	})
	jwe, err := jose.Encrypt(pt, key.Key, key.Kid, map[string]string{jose.HeaderSessionID: sid})
	if err != nil {
		return "", -1, err
	}
	var out struct {
		Token string `json:"token"`
	}
	at, err := rr.do(ctx, call{gw: gw, ip: ip, method: http.MethodPost, path: "/checkout/" + sid + "/submit",
		in: map[string]string{"card_jwe": string(jwe)}, out: &out})
	if err == nil && !strings.HasPrefix(out.Token, "tok_") {
		err = fmt.Errorf("submit answered token %q", out.Token)
	}
	return out.Token, at, err
}

// pay is a whole checkout by API, each of its three calls to the next
// gateway: the session is opened on one, the page's key fetched from the
// next and the card submitted to the one after, as a shopper behind a
// balancer may see them.
func (rr *roundRobin) pay(ctx context.Context, c testCard, ip string) (payment, error) {
	p := payment{Card: c}
	sid, err := rr.session(ctx, -1)
	if err != nil {
		return p, err
	}
	p.Session = sid
	key, err := rr.key(ctx, -1)
	if err != nil {
		return p, err
	}
	p.Kid = key.Kid
	p.Token, _, err = rr.submit(ctx, -1, sid, ip, c.PAN, key)
	return p, err
}

// shopperIP is a documentation address (RFC 5737) for one shopper, so
// payments of the traffic never share a per-IP limit.
func shopperIP() string {
	return fmt.Sprintf("198.51.100.%d", 1+rand.IntN(254))
}

// load pays from workers goroutines through the round robin until stopped,
// recording every outcome with its start and end.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu       sync.Mutex
	outcomes []outcome
}

// outcome is one payment of a load.
type outcome struct {
	Start, End time.Time
	P          payment
	Err        error
}

func (rr *roundRobin) startLoad(workers int, pause time.Duration) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	for w := range workers {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				start := time.Now()
				rctx, rcancel := context.WithTimeout(ctx, 2*callTimeout)
				p, err := rr.pay(rctx, brandCards[w%len(brandCards)], shopperIP())
				rcancel()
				if ctx.Err() != nil {
					return // stopped mid-payment: the outcome is not known
				}
				l.mu.Lock()
				l.outcomes = append(l.outcomes, outcome{Start: start, End: time.Now(), P: p, Err: err})
				l.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		})
	}
	return l
}

func (l *load) stop() {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
	})
}

func (l *load) results() []outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]outcome(nil), l.outcomes...)
}

// okSince counts the payments acknowledged that started after since.
func (l *load) okSince(since time.Time) (int, string) {
	n, failed, last := 0, 0, ""
	for _, o := range l.results() {
		switch {
		case o.Err != nil:
			failed++
			last = o.Err.Error()
		case o.Start.After(since):
			n++
		}
	}
	return n, fmt.Sprintf("%d ok since, %d failed in all (last: %s)", n, failed, last)
}

// window describes the payments refused in [from, to): how many, and
// from the start of the first to the end of the last.
type window struct {
	Refused     int
	First, Last time.Time
	// Resumed is when the first payment that started after from and went
	// through ended.
	Resumed time.Time
}

func (l *load) window(from, to time.Time) window {
	var w window
	for _, o := range l.results() {
		if o.End.Before(from) || !o.Start.Before(to) {
			continue
		}
		if o.Err != nil {
			w.Refused++
			if w.First.IsZero() || o.Start.Before(w.First) {
				w.First = o.Start
			}
			if o.End.After(w.Last) {
				w.Last = o.End
			}
			continue
		}
		if o.Start.After(from) && (w.Resumed.IsZero() || o.End.Before(w.Resumed)) {
			w.Resumed = o.End
		}
	}
	return w
}

// since describes the window from the event at from: when the refusals
// began and ended and when a payment next went through, each after from.
func (w window) since(from time.Time) string {
	after := func(t time.Time) string { return t.Sub(from).Round(100 * time.Millisecond).String() }
	out := fmt.Sprintf("%d payments refused", w.Refused)
	if w.Refused > 0 {
		out += fmt.Sprintf(" (started %s to ended %s after it)", after(w.First), after(w.Last))
	}
	if w.Resumed.IsZero() {
		return out + "; none went through after it"
	}
	return out + "; the first payment started after it went through " + after(w.Resumed) + " after it"
}
