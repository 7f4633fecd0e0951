package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// exchange is one answer as the client reads it.
type exchange struct {
	status     int
	date       string // the Date header, for the Clock
	retryAfter string
	body       []byte // at most maxResponse bytes
	tooLarge   bool   // the body was over maxResponse (and is not kept)
	readErr    error  // the body could not be read
}

// sender sends one request to one key service replica. An error means no
// answer came, as a *url.Error, the way net/http's Client.Do reports it:
// failover and the gateway's error mapping read it the same from either.
type sender interface {
	send(ctx context.Context, method, url string, body []byte, auth string) (exchange, error)
}

// netSender sends with net/http.
type netSender struct{ hc *http.Client }

func (n netSender) send(ctx context.Context, method, u string, body []byte, auth string) (exchange, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return exchange{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		return exchange{}, err
	}
	defer resp.Body.Close()
	ex := exchange{status: resp.StatusCode, date: resp.Header.Get("Date"), retryAfter: resp.Header.Get("Retry-After")}
	ex.body, ex.readErr = io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if len(ex.body) > maxResponse {
		ex.body, ex.tooLarge = nil, true
	}
	return ex, nil
}

// fastSender sends with fasthttp (WithFastHTTP): about half the
// allocations of net/http per call and a quarter less CPU, on the same
// kind of kept-alive, pooled connections.
//
// fasthttp takes no context. A call's deadline is the earlier of its
// context's and the timeout, and fasthttp gets it for the whole exchange.
// A context that can be canceled is watched: the exchange runs on its own
// goroutine, and the call returns as soon as the context ends, with the
// context's error as net/http's would. What differs from net/http:
//
//   - net/http closes the connection of a canceled call; here the abandoned
//     exchange runs on to its deadline in the background, on one of the
//     pool's connections (the key service may still do the work, as it
//     may after net/http's close);
//   - a context that nothing but its deadline ends (deadlineOnly: the
//     checkout's) is not watched, which saves a goroutine and about 5 µs
//     of CPU per call; fasthttp ends such a call at its deadline, except
//     while it makes a new connection, which it bounds by the connect
//     timeout (DialTimeout) and the TLS handshake by the write timeout,
//     not by the deadline: such a call may end that much late.
type fastSender struct {
	fc      *fasthttp.Client
	timeout time.Duration // the whole exchange, as http.Client.Timeout
}

// fastResult is an exchange's outcome handed from its goroutine.
type fastResult struct {
	ex  exchange
	err error
}

func (f *fastSender) send(ctx context.Context, method, u string, body []byte, auth string) (exchange, error) {
	if err := ctx.Err(); err != nil {
		return exchange{}, urlError(method, u, err)
	}
	deadline := time.Now().Add(f.timeout)
	ctxDeadline, ctxFirst := ctx.Deadline()
	if ctxFirst = ctxFirst && ctxDeadline.Before(deadline); ctxFirst {
		deadline = ctxDeadline
	}
	fail := func(err error) (exchange, error) {
		if ctxFirst {
			if cerr := pastDeadline(ctx, ctxDeadline); cerr != nil {
				err = cerr
			}
		}
		return exchange{}, urlError(method, u, err)
	}
	done := ctx.Done()
	if _, only := ctx.(deadlineOnly); only || done == nil {
		// Nothing but the deadline ends this call: fasthttp keeps it.
		ex, err := f.roundTrip(method, u, body, auth, deadline)
		if err != nil {
			return fail(err)
		}
		return ex, nil
	}
	res := make(chan fastResult, 1)
	go func() {
		ex, err := f.roundTrip(method, u, body, auth, deadline)
		res <- fastResult{ex, err}
	}()
	select {
	case r := <-res:
		if r.err != nil {
			return fail(r.err)
		}
		return r.ex, nil
	case <-done:
		return exchange{}, urlError(method, u, ctx.Err())
	}
}

// pastDeadline is the context's error when fasthttp failed at or after the
// context's deadline: the context's own timer fires at that instant too,
// and net/http would report the context's error, by which failover knows
// the call is over. nil before the deadline.
func pastDeadline(ctx context.Context, deadline time.Time) error {
	if time.Now().Before(deadline) {
		return nil
	}
	t := time.NewTimer(10 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// roundTrip makes one request with fasthttp and copies the answer out of
// fasthttp's pooled response. fasthttp never sends it twice (see
// WithFastHTTP): which calls may be repeated is failover's to say.
func (f *fastSender) roundTrip(method, u string, body []byte, auth string, deadline time.Time) (exchange, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(u)
	req.Header.SetMethod(method)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	req.Header.Set("Accept", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	err := f.fc.DoDeadline(req, resp, deadline)
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return exchange{status: resp.StatusCode(), date: string(resp.Header.Peek("Date")), tooLarge: true}, nil
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		// Every pooled connection to this replica stayed busy: the request
		// never left.
		return exchange{}, &noConnection{err}
	case err != nil:
		return exchange{}, err
	}
	return exchange{
		status: resp.StatusCode(), date: string(resp.Header.Peek("Date")), retryAfter: string(resp.Header.Peek("Retry-After")),
		// The response is pooled: the body is copied out of it.
		body: append([]byte(nil), resp.Body()...),
	}, nil
}

// noConnection is a sender's failure to get a connection to a replica
// other than a failed dial (which net.OpError reports): the request never
// left (notSent).
type noConnection struct{ err error }

func (e *noConnection) Error() string { return e.err.Error() }
func (e *noConnection) Unwrap() error { return e.err }

// urlError is the error net/http's Client.Do gives when no answer came.
func urlError(method, u string, err error) error {
	return &url.Error{Op: method[:1] + strings.ToLower(method[1:]), URL: u, Err: err}
}

// fastIdle bounds how long a fasthttp connection stays idle in the pool.
// fasthttp does not notice a connection the server (or a balancer in
// between) closed while it was idle until it sends on it, and it sends
// nothing twice here: the bound keeps such connections rare (net/http
// watches its idle connections and drops closed ones at once).
const fastIdle = 10 * time.Second

// WithFastHTTP returns a client like c that sends with fasthttp instead of
// net/http: c's TLS configuration (CA, client certificate: mTLS), dialer
// and connect timeout, timeouts and a pool of at least 512 connections per
// replica, no redirects either. Failures read the same as net/http's for
// failover and callers (*url.Error; a refused or timed-out dial is a
// *net.OpError). It returns c itself when c's transport is not an
// *http.Transport, or when it would go through a proxy for any of c's
// replicas (fasthttp has none).
//
// What differs from net/http: a canceled call returns at once but its
// exchange runs on to its deadline, and a call whose context only its
// deadline ends may overrun it while it makes a new connection
// (fastSender); fasthttp never resends a request on its own, where
// net/http resends a GET whose kept-alive connection turned out closed
// (failover still moves it to another replica); idle connections are kept
// for 10 s at most (fastIdle).
//
// The gateway's key-service clients use it: a checkout calls the key
// service on every submit.
func (c *Client) WithFastHTTP() *Client {
	tr, ok := c.hc.Transport.(*http.Transport)
	if !ok {
		return c
	}
	for _, base := range c.reps.bases {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c
		}
		if tr.Proxy != nil {
			if p, err := tr.Proxy(&http.Request{URL: u, Header: http.Header{}}); err != nil || p != nil {
				return c
			}
		}
	}
	timeout := c.hc.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	read := tr.ResponseHeaderTimeout
	if read <= 0 || read > timeout {
		read = timeout
	}
	var tlsConfig *tls.Config
	if tr.TLSClientConfig != nil {
		tlsConfig = tr.TLSClientConfig.Clone()
	}
	idle := tr.IdleConnTimeout
	if idle <= 0 || idle > fastIdle {
		idle = fastIdle
	}
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	cc := *c
	cc.via = &fastSender{timeout: timeout, fc: &fasthttp.Client{
		Name:      "blindgate-keyservice-client",
		TLSConfig: tlsConfig,
		// The transport's dialer: a refused or timed-out connect is the
		// *net.OpError "dial" that failover reads as "never sent".
		Dial: func(addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			return dial(ctx, "tcp", addr)
		},
		MaxConnsPerHost:     max(tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost, 512),
		MaxConnWaitTimeout:  timeout, // wait for a connection rather than fail at once
		MaxIdleConnDuration: idle,
		ReadTimeout:         read,
		WriteTimeout:        read, // and the TLS handshake's
		MaxResponseBodySize: maxResponse,
		// Send the URL that was signed (htu), byte for byte.
		DisablePathNormalizing: true,
		// Never resend: by default fasthttp resends any request, a reveal
		// included, whose connection closed before an answer, and that
		// may be after the key service did the work.
		MaxIdemponentCallAttempts: 1,
	}}
	return &cc
}
