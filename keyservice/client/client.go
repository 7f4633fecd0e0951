// Package client is the key service's HTTP client and Contract 2 request
// signer, used by the gateway and the admin tools. The contract it speaks
// (request and response types, their validation, claims, paths) is
// keyservice/wire; this package adds only what a caller needs: signing,
// client keys, the HTTP calls and Error, its reading of an error answer.
//
// Like wire, it must stay free of card code: the gateway imports it (a
// test in gateway/ checks). No type here holds a card in clear: a reveal
// answers a JWE only the operator's browser can open.
package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/blindgate/blindgate/internal/jsonscan"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// ErrBadResponse: the key service answered 2xx with a body we cannot read.
// The JSON error is not wrapped: its text could quote response bytes.
var ErrBadResponse = errors.New("keyservice client: unreadable response")

// maxResponse caps a response body; the largest legitimate one is an audit page.
const maxResponse = 4 << 20

// Client calls the key service with Contract 2 signed requests. It is safe
// for concurrent use.
type Client struct {
	reps   *replicas
	signer *Signer
	hc     *http.Client
	via    sender // hc, or fasthttp (WithFastHTTP)
	clock  *Clock // optional: compares clocks from every answer's Date
}

// New returns a client for the key service at baseURL (e.g.
// "https://keyservice:8443"), or at several replicas of it: base URLs,
// comma-separated (ParseURLs; see replicas for how a call picks one and
// when it moves to the next). hc nil means HTTPClient(false). s may be nil
// for a client that only fetches the JWKS.
func New(baseURL string, s *Signer, hc *http.Client) *Client {
	if hc == nil {
		hc = HTTPClient(false)
	}
	return &Client{reps: newReplicas(baseURL), signer: s, hc: hc, via: netSender{hc}}
}

// HTTPClient is the HTTP client for key-service calls: bounded timeouts,
// TLS 1.2+, and no redirects (a redirected signed request would fail its
// htu check anyway, and following one would send the body elsewhere).
// insecure skips TLS verification, for a development self-signed
// certificate only.
//
// A connection must be made within DialTimeout: the key service is in the
// next zone, and a replica that does not accept in that time is passed
// for the next one while the call still has time left.
func HTTPClient(insecure bool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // opt-in, dev only
	tr.ResponseHeaderTimeout = 10 * time.Second
	return &http.Client{
		Transport: tr,
		Timeout:   15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// DialTimeout bounds making a connection to one key service replica.
const DialTimeout = 3 * time.Second

// ForwardTimeout bounds a forward call: the longest destination timeout the
// key service allows (two minutes) and room for the key service's own work.
const ForwardTimeout = 135 * time.Second

// WithHTTPTimeout returns a client like c whose calls may wait d for an
// answer (a forward waits on its destination). c is not changed; the copy
// has its own transport, and sends with fasthttp when c does.
func (c *Client) WithHTTPTimeout(d time.Duration) *Client {
	hc := *c.hc
	if tr, ok := hc.Transport.(*http.Transport); ok {
		tr = tr.Clone()
		tr.ResponseHeaderTimeout = d
		hc.Transport = tr
	}
	hc.Timeout = d
	cc := &Client{reps: c.reps, signer: c.signer, hc: &hc, via: netSender{&hc}, clock: c.clock}
	if _, fast := c.via.(*fastSender); fast {
		cc = cc.WithFastHTTP()
	}
	return cc
}

// WithClock returns a client like c that reports every answer's Date to
// clk (one Clock for all clients of a key service). c is not changed.
func (c *Client) WithClock(clk *Clock) *Client {
	cc := *c
	cc.clock = clk
	return &cc
}

// post makes one signed call and decodes its answer as Resp.
func post[Resp any](ctx context.Context, c *Client, path string, req interface{ Validate() error }) (Resp, error) {
	var out Resp
	err := c.call(ctx, path, req, &out)
	return out, err
}

// Inspect returns the masked card of a ciphertext (POST /v1/inspect).
func (c *Client) Inspect(ctx context.Context, req wire.InspectRequest) (wire.InspectResponse, error) {
	return post[wire.InspectResponse](ctx, c, wire.PathInspect, req)
}

// RevealChallenge asks for a reveal nonce for an operator and token (POST
// /v1/reveal/challenge), with the RP id and the operator's approved
// credentials for the page's navigator.credentials.get.
func (c *Client) RevealChallenge(ctx context.Context, req wire.RevealChallengeRequest) (wire.RevealChallengeResponse, error) {
	return post[wire.RevealChallengeResponse](ctx, c, wire.PathRevealChallenge, req)
}

// Reveal asks for a card encrypted to the operator's browser key (POST
// /v1/reveal), approved by the operator's passkey assertion; the key
// service verifies the approval and audits before it decrypts. The answer
// is the sealed card and the approving credential: nothing a caller of
// this package can read the card from.
func (c *Client) Reveal(ctx context.Context, req wire.RevealRequest) (wire.RevealResponse, error) {
	return post[wire.RevealResponse](ctx, c, wire.PathReveal, req)
}

// PasskeyChallenge asks for a passkey-registration nonce for an operator
// (POST /v1/passkeys/challenge).
func (c *Client) PasskeyChallenge(ctx context.Context, req wire.PasskeyChallengeRequest) (wire.PasskeyChallengeResponse, error) {
	return post[wire.PasskeyChallengeResponse](ctx, c, wire.PathPasskeyChallenge, req)
}

// RegisterPasskey forwards an operator's passkey registration (POST
// /v1/passkeys). The key service records it as pending: it approves no
// reveal until a key-zone admin runs `keyservice passkeys approve`.
func (c *Client) RegisterPasskey(ctx context.Context, req wire.PasskeyRegisterRequest) (wire.PasskeyRegisterResponse, error) {
	return post[wire.PasskeyRegisterResponse](ctx, c, wire.PathPasskeys, req)
}

// ListPasskeys lists an operator's passkeys and their status (POST
// /v1/passkeys/list).
func (c *Client) ListPasskeys(ctx context.Context, req wire.PasskeyListRequest) (wire.PasskeyListResponse, error) {
	return post[wire.PasskeyListResponse](ctx, c, wire.PathPasskeyList, req)
}

// Rewrap re-encrypts a ciphertext under the newest KEK (POST /v1/rewrap).
func (c *Client) Rewrap(ctx context.Context, req wire.RewrapRequest) (wire.RewrapResponse, error) {
	return post[wire.RewrapResponse](ctx, c, wire.PathRewrap, req)
}

// AuditQuery reads the key service's audit trail (POST /v1/audit/query).
func (c *Client) AuditQuery(ctx context.Context, req wire.AuditQueryRequest) (wire.AuditQueryResponse, error) {
	return post[wire.AuditQueryResponse](ctx, c, wire.PathAuditQuery, req)
}

// Forward fills a template with a stored card inside the key zone and sends
// it to an operator-configured destination, or re-encrypts it to the
// destination's processor key (POST /v1/forward). The answer holds no card
// number. A forward waits on the destination: call it on a client made by
// WithHTTPTimeout(ForwardTimeout).
func (c *Client) Forward(ctx context.Context, req wire.ForwardRequest) (wire.ForwardResponse, error) {
	return post[wire.ForwardResponse](ctx, c, wire.PathForward, req)
}

// JWKS fetches the published key-encryption keys (unsigned GET). The bytes
// are returned as served; parse them with the jose package.
func (c *Client) JWKS(ctx context.Context) ([]byte, error) {
	return c.get(ctx, wire.PathJWKS, nil)
}

// SealStatus reads whether the key service is sealed (unsigned GET): the
// gateway's readiness asks it, and its Date header keeps the Clock current
// while no checkout runs.
func (c *Client) SealStatus(ctx context.Context) (wire.SealStatus, error) {
	var out wire.SealStatus
	// With replicas, one that is unsealed is the answer: the calls that
	// need the keyring move past a sealed one (503 sealed).
	_, err := c.get(ctx, wire.PathSealStatus, func(data []byte) (bool, error) {
		out = wire.SealStatus{}
		if err := json.Unmarshal(data, &out); err != nil {
			return false, fmt.Errorf("%w from %s", ErrBadResponse, wire.PathSealStatus)
		}
		return out.Sealed, nil
	})
	return out, err
}

// get sends an unsigned GET of path to each replica in turn (replicas.order)
// until one answers. accept, when set, reads a 2xx answer and may ask for
// the next replica (more true) all the same; the last answer then stands.
func (c *Client) get(ctx context.Context, path string, accept func([]byte) (more bool, err error)) ([]byte, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	var data []byte
	var err error
	for _, i := range c.reps.order() {
		data, err = c.do(ctx, http.MethodGet, c.reps.bases[i]+path, path, nil, "")
		if err == nil {
			c.reps.ok(i)
			more := false
			if accept != nil {
				if more, err = accept(data); err != nil {
					return nil, err
				}
			}
			if !more {
				return data, nil
			}
			continue
		}
		next, pass := failover(ctx, err, true)
		if pass {
			c.reps.passOver(i)
		}
		if !next {
			break
		}
	}
	return data, err
}

// bound gives a call, every replica it tries included, the HTTP client's
// timeout as its deadline: trying another replica never makes a caller
// wait longer than one key service could have.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.hc.Timeout <= 0 {
		return ctx, func() {}
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= c.hc.Timeout {
		return ctx, func() {}
	}
	if ctx.Done() == nil {
		bounded, cancel := context.WithTimeout(ctx, c.hc.Timeout)
		return deadlineOnly{bounded}, cancel
	}
	return context.WithTimeout(ctx, c.hc.Timeout)
}

// deadlineOnly is bound's context over a caller's that cannot be canceled
// (the checkout's): while the call runs, only its deadline ends it, and
// the fast sender need not watch it (fastSender).
type deadlineOnly struct{ context.Context }

func (c *Client) call(ctx context.Context, path string, in interface{ Validate() error }, out any) error {
	// Refuse locally what the service would refuse, without spending a jti.
	if err := in.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("keyservice client: %s: encode: %w", path, err)
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	for _, i := range c.reps.order() {
		var data []byte
		data, err = c.send(ctx, c.reps.bases[i]+path, path, body)
		if err == nil {
			c.reps.ok(i)
			// An answer of plain fields (inspect's) is read in one pass;
			// jsonscan.Decode takes only what json.Unmarshal would read the same.
			if jsonscan.Decode(data, out) {
				return nil
			}
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("%w from %s", ErrBadResponse, path)
			}
			return nil
		}
		next, pass := failover(ctx, err, repeatable(path))
		if pass {
			c.reps.passOver(i)
		}
		if !next {
			break
		}
	}
	return err
}

// send makes one signed attempt at u. Signed per attempt: each header
// carries a fresh jti and the htu of the replica it goes to.
func (c *Client) send(ctx context.Context, u, path string, body []byte) ([]byte, error) {
	auth, err := c.signer.Authorization(http.MethodPost, u, body)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, http.MethodPost, u, path, body, auth)
}

// do sends one request to u through c's sender (signed when auth is set, a
// JSON body when body is not nil) and returns the body of a 2xx answer, or
// *Error. path names the call in errors.
func (c *Client) do(ctx context.Context, method, u, path string, body []byte, auth string) ([]byte, error) {
	now := time.Now
	if c.clock != nil {
		now = c.clock.now
	}
	sent := now()
	ex, err := c.via.send(ctx, method, u, body, auth)
	if err != nil {
		return nil, fmt.Errorf("keyservice client: %s: %w", path, err)
	}
	received := now()
	code := ""
	var rerr *Error
	if ex.readErr == nil && (ex.status < 200 || ex.status > 299) {
		rerr = responseError(ex, time.Now())
		code = rerr.Code
	}
	c.clock.observe(ex.date, sent, received, auth != "", ex.status, code)
	switch {
	case ex.readErr != nil:
		return nil, fmt.Errorf("keyservice client: %s: read: %w", path, ex.readErr)
	case ex.tooLarge:
		return nil, fmt.Errorf("%w from %s: too large", ErrBadResponse, path)
	case rerr != nil:
		return nil, rerr
	}
	return ex.body, nil
}

// responseError decodes the error document; a body that is not one (a
// proxy's HTML page, say) still yields an *Error with a synthetic code.
func responseError(ex exchange, now time.Time) *Error {
	e := &Error{Status: ex.status, RetryAfter: retryAfter(ex.retryAfter, now)}
	var body wire.ErrorBody
	if json.Unmarshal(ex.body, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	} else {
		e.Code, e.Message = "http_"+strconv.Itoa(ex.status), http.StatusText(ex.status)
	}
	return e
}

// retryAfter reads Retry-After as delay-seconds or an HTTP-date (RFC 9110).
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
