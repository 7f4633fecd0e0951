// Package client is the key service's HTTP client and Contract 2 request
// signer, used by the gateway and the admin tools. The contract it speaks
// (request and response types, their validation, claims, paths) is
// keyservice/wire; this package adds only what a caller needs: signing,
// client keys, the HTTP calls and Error, its reading of an error answer.
//
// Like wire, it must stay free of card code: the gateway imports it (a
// test in gateway/ checks).
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/blindgate/blindgate/internal/jsonscan"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// ErrBadResponse: the key service answered 2xx with a body we cannot read.
// The JSON error is not wrapped: its text could quote response bytes, and a
// reveal response holds a card number.
var ErrBadResponse = errors.New("keyservice client: unreadable response")

// maxResponse caps a response body; the largest legitimate one is an audit page.
const maxResponse = 4 << 20

// Client calls the key service with Contract 2 signed requests. It is safe
// for concurrent use.
type Client struct {
	base   string
	signer *Signer
	hc     *http.Client
	clock  *Clock // optional: compares clocks from every answer's Date
}

// New returns a client for the key service at baseURL (e.g.
// "https://keyservice:8443"). hc nil means HTTPClient(false). s may be nil
// for a client that only fetches the JWKS.
func New(baseURL string, s *Signer, hc *http.Client) *Client {
	if hc == nil {
		hc = HTTPClient(false)
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), signer: s, hc: hc}
}

// HTTPClient is the HTTP client for key-service calls: bounded timeouts,
// TLS 1.2+, and no redirects (a redirected signed request would fail its
// htu check anyway, and following one would send the body elsewhere).
// insecure skips TLS verification, for a development self-signed
// certificate only.
func HTTPClient(insecure bool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
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

// ForwardTimeout bounds a forward call: the longest destination timeout the
// key service allows (two minutes) and room for the key service's own work.
const ForwardTimeout = 135 * time.Second

// WithHTTPTimeout returns a client like c whose calls may wait d for an
// answer (a forward waits on its destination). c is not changed; the copy
// has its own transport.
func (c *Client) WithHTTPTimeout(d time.Duration) *Client {
	hc := *c.hc
	if tr, ok := hc.Transport.(*http.Transport); ok {
		tr = tr.Clone()
		tr.ResponseHeaderTimeout = d
		hc.Transport = tr
	}
	hc.Timeout = d
	return &Client{base: c.base, signer: c.signer, hc: &hc, clock: c.clock}
}

// WithClock returns a client like c that reports every answer's Date to
// clk (one Clock for all clients of a key service). c is not changed.
func (c *Client) WithClock(clk *Clock) *Client {
	cc := *c
	cc.clock = clk
	return &cc
}

// Inspect returns the masked card of a ciphertext (POST /v1/inspect).
func (c *Client) Inspect(ctx context.Context, req wire.InspectRequest) (wire.InspectResponse, error) {
	var out wire.InspectResponse
	err := c.call(ctx, wire.PathInspect, req, &out)
	return out, err
}

// Reveal returns the full card (POST /v1/reveal); the caller must hold the
// reveal operation and the service audits before it decrypts.
func (c *Client) Reveal(ctx context.Context, req wire.RevealRequest) (wire.RevealResponse, error) {
	var out wire.RevealResponse
	err := c.call(ctx, wire.PathReveal, req, &out)
	return out, err
}

// Rewrap re-encrypts a ciphertext under the newest KEK (POST /v1/rewrap).
func (c *Client) Rewrap(ctx context.Context, req wire.RewrapRequest) (wire.RewrapResponse, error) {
	var out wire.RewrapResponse
	err := c.call(ctx, wire.PathRewrap, req, &out)
	return out, err
}

// AuditQuery reads the key service's audit trail (POST /v1/audit/query).
func (c *Client) AuditQuery(ctx context.Context, req wire.AuditQueryRequest) (wire.AuditQueryResponse, error) {
	var out wire.AuditQueryResponse
	err := c.call(ctx, wire.PathAuditQuery, req, &out)
	return out, err
}

// Forward fills a template with a stored card inside the key zone and sends
// it to an operator-configured destination, or re-encrypts it to the
// destination's processor key (POST /v1/forward). The answer holds no card
// number. A forward waits on the destination: call it on a client made by
// WithHTTPTimeout(ForwardTimeout).
func (c *Client) Forward(ctx context.Context, req wire.ForwardRequest) (wire.ForwardResponse, error) {
	var out wire.ForwardResponse
	err := c.call(ctx, wire.PathForward, req, &out)
	return out, err
}

// JWKS fetches the published key-encryption keys (unsigned GET). The bytes
// are returned as served; parse them with the jose package.
func (c *Client) JWKS(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+wire.PathJWKS, nil)
	if err != nil {
		return nil, fmt.Errorf("keyservice client: jwks: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	return c.do(req, wire.PathJWKS, false)
}

// SealStatus reads whether the key service is sealed (unsigned GET): the
// gateway's readiness asks it, and its Date header keeps the Clock current
// while no checkout runs.
func (c *Client) SealStatus(ctx context.Context) (wire.SealStatus, error) {
	var out wire.SealStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+wire.PathSealStatus, nil)
	if err != nil {
		return out, fmt.Errorf("keyservice client: seal status: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	data, err := c.do(req, wire.PathSealStatus, false)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, fmt.Errorf("%w from %s", ErrBadResponse, wire.PathSealStatus)
	}
	return out, nil
}

func (c *Client) call(ctx context.Context, path string, in interface{ Validate() error }, out any) error {
	// Refuse locally what the service would refuse, without spending a jti.
	if err := in.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("keyservice client: %s: encode: %w", path, err)
	}
	u := c.base + path
	// Signed per attempt: each header carries a fresh jti.
	auth, err := c.signer.Authorization(http.MethodPost, u, body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("keyservice client: %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", auth)
	data, err := c.do(req, path, true)
	if err != nil {
		return err
	}
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

// do sends req and returns the body of a 2xx answer, or *Error. signed
// says whether req carries a signature (for the Clock).
func (c *Client) do(req *http.Request, path string, signed bool) ([]byte, error) {
	now := time.Now
	if c.clock != nil {
		now = c.clock.now
	}
	sent := now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("keyservice client: %s: %w", path, err)
	}
	received := now()
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	code := ""
	var rerr *Error
	if err == nil && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		rerr = responseError(resp, data)
		code = rerr.Code
	}
	c.clock.observe(resp.Header.Get("Date"), sent, received, signed, resp.StatusCode, code)
	switch {
	case err != nil:
		return nil, fmt.Errorf("keyservice client: %s: read: %w", path, err)
	case len(data) > maxResponse:
		return nil, fmt.Errorf("%w from %s: too large", ErrBadResponse, path)
	case rerr != nil:
		return nil, rerr
	}
	return data, nil
}

// responseError decodes the error document; a body that is not one (a
// proxy's HTML page, say) still yields an *Error with a synthetic code.
func responseError(resp *http.Response, data []byte) *Error {
	e := &Error{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var body wire.ErrorBody
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	} else {
		e.Code, e.Message = "http_"+strconv.Itoa(resp.StatusCode), http.StatusText(resp.StatusCode)
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
