package forward

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/blindgate/blindgate/internal/safedial"
	"github.com/blindgate/blindgate/keyservice/destinations"
)

// Sender errors.
var (
	// ErrAddressRefused: the destination's host resolved to an address the
	// destination may not reach (private, loopback, link-local, multicast,
	// unspecified, and not named in its allow_private). Nothing was sent.
	ErrAddressRefused = errors.New("forward: destination address refused")
	// ErrUnreachable: resolving, connecting or the TLS handshake failed;
	// nothing was sent.
	ErrUnreachable = errors.New("forward: destination unreachable")
	// ErrOutcomeUnknown: the request was (at least partly) sent and no full
	// answer came back (timeout, reset, answer too large). The processor may
	// have acted on it: never retried automatically.
	ErrOutcomeUnknown = errors.New("forward: destination outcome unknown")
)

// Resolver resolves a host name; net.DefaultResolver fits. Injectable so
// tests can serve any answer without DNS.
type Resolver = safedial.Resolver

// Dialer opens a TCP connection to an address already checked; tests
// inject one that refuses anything but loopback.
type Dialer = safedial.Dialer

// Request is a filled request for a destination.
type Request struct {
	URL         string
	Method      string
	ContentType string
	Headers     map[string]string
	Body        []byte
}

// Answer is what the destination said, before redaction.
type Answer struct {
	Status  int
	Headers map[string]string // allowed ones only
	Body    []byte
	Latency time.Duration
}

// Sender sends a filled request to exactly one configured destination.
//
// Against SSRF, in this order: the URL comes from the destination, the
// merchant only adds path segments (destinations.Compiled.URLFor); the
// host is resolved once per connection by Resolver and every address is
// checked before any dial (one refused address refuses the name: a mix of
// public and private answers is an attack or a misconfiguration); the
// connection goes to the checked IP itself, with SNI and Host still the
// configured name, so a second, rebinding resolution never happens; TLS is
// verified against the destination's CA bundle, pins or system roots;
// redirects are never followed (a 3xx is the answer); no proxy from the
// environment is used.
//
// With EgressProxy set, the connection is a CONNECT tunnel through that
// proxy (cmd/egress) instead: the key zone has no route and no DNS of its
// own, so the proxy resolves the name, applies the same address rule
// (internal/safedial) against its own allow-list, and dials the checked IP. The
// key service still builds the URL from the destination, checks an IP
// literal itself, and verifies TLS end to end: the proxy sees a host, a
// port and ciphertext.
type Sender struct {
	// EgressProxy is the CONNECT proxy's URL (http://host:port); nil dials
	// destinations directly.
	EgressProxy *url.URL
	Resolver    Resolver
	Dialer      Dialer
}

// NewSender returns a Sender on the system resolver and a plain dialer.
func NewSender() *Sender {
	return &Sender{Resolver: net.DefaultResolver, Dialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}}
}

// Send sends r to d and reads the answer (at most d.MaxAnswer bytes).
func (s *Sender) Send(ctx context.Context, d *destinations.Compiled, r Request) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	// One client per send: connections are never shared between
	// destinations (each has its own trust and address rules), and a
	// forward is rare enough that a handshake per request is cheap.
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            s.dialer(d),
		TLSClientConfig:        tlsConfig(d),
		TLSHandshakeTimeout:    d.Timeout,
		ResponseHeaderTimeout:  d.Timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{
		Transport: tr,
		// A redirect could point anywhere; the 3xx itself is the answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       d.Timeout,
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return Answer{}, fmt.Errorf("%w: build request: %w", ErrUnreachable, err)
	}
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", r.ContentType)
	req.Header.Set("User-Agent", "blindgate-keyservice")
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteHeaders: func() { wrote.Store(true) },
	}))
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		var ar *safedial.AddressError
		switch {
		case errors.As(err, &ar), errors.Is(err, errProxyRefused):
			return Answer{}, ErrAddressRefused
		case !wrote.Load():
			return Answer{}, fmt.Errorf("%w: %w", ErrUnreachable, scrub(err))
		default:
			return Answer{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, scrub(err))
		}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, d.MaxAnswer+1))
	if err != nil {
		clear(body)
		return Answer{}, fmt.Errorf("%w: reading the answer: %w", ErrOutcomeUnknown, scrub(err))
	}
	if int64(len(body)) > d.MaxAnswer {
		clear(body)
		return Answer{}, fmt.Errorf("%w: answer larger than %d bytes", ErrOutcomeUnknown, d.MaxAnswer)
	}
	a := Answer{Status: resp.StatusCode, Headers: map[string]string{}, Body: body, Latency: time.Since(start)}
	for k, vs := range resp.Header {
		if d.AllowsAnswerHeader(k) && len(vs) > 0 {
			a.Headers[k] = vs[0]
		}
	}
	return a, nil
}

// scrub keeps an error's kind but not its text, which for url.Error
// quotes the URL (the merchant's path suffix) and may quote the server.
func scrub(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("timeout")
	}
	return errors.New("transport error")
}

// dialer checks that the dial is to the destination, then resolves its
// host once, checks every address against the destination's rules, and
// dials the checked addresses in order (internal/safedial). addr (from the
// URL) is ignored but for its port, which must be the destination's.
func (s *Sender) dialer(d *destinations.Compiled) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host != d.Host || port != d.Port {
			return nil, fmt.Errorf("forward: dial to %q is not the destination", addr)
		}
		if s.EgressProxy != nil {
			return s.tunnel(ctx, d)
		}
		c, err := safedial.Dial(ctx, s.Resolver, s.Dialer, d.Host, d.Port, func(ip netip.Addr) bool { return AddressAllowed(ip, d.Private) })
		if errors.Is(err, safedial.ErrResolve) || errors.Is(err, safedial.ErrNoAddress) {
			return nil, fmt.Errorf("forward: %w", err)
		}
		return c, err
	}
}

// errProxyRefused is the egress proxy's 403: the destination's host:port is
// not on its allow-list, or resolves to an address it may not reach.
var errProxyRefused = errors.New("forward: the egress proxy refused the destination")

// tunnel opens a CONNECT tunnel to the destination through the egress
// proxy. The proxy's answer is read header by header with nothing buffered
// past it: the TLS handshake that follows is the destination's.
func (s *Sender) tunnel(ctx context.Context, d *destinations.Compiled) (net.Conn, error) {
	if ip, err := netip.ParseAddr(d.Host); err == nil && !AddressAllowed(ip, d.Private) {
		return nil, &safedial.AddressError{Addr: ip.Unmap()}
	}
	proxy := s.EgressProxy.Host
	if s.EgressProxy.Port() == "" {
		proxy = net.JoinHostPort(s.EgressProxy.Hostname(), "80")
	}
	c, err := s.Dialer.DialContext(ctx, "tcp", proxy)
	if err != nil {
		return nil, fmt.Errorf("forward: egress proxy: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	target := net.JoinHostPort(d.Host, d.Port)
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: blindgate-keyservice\r\n\r\n", target, target); err != nil {
		c.Close()
		return nil, fmt.Errorf("forward: egress proxy: %w", err)
	}
	br := bufio.NewReaderSize(c, 1024)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("forward: egress proxy: %w", err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusForbidden:
		c.Close()
		return nil, errProxyRefused
	case resp.StatusCode != http.StatusOK:
		c.Close()
		return nil, fmt.Errorf("forward: egress proxy answered %d", resp.StatusCode)
	case br.Buffered() > 0:
		// The destination cannot speak before our ClientHello.
		c.Close()
		return nil, errors.New("forward: egress proxy sent data after its answer")
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// AddressAllowed reports whether ip may be dialed: a global unicast
// address outside the private and shared ranges, or one inside a prefix
// the destination names (the rule is internal/safedial's).
func AddressAllowed(ip netip.Addr, allow []netip.Prefix) bool {
	return safedial.AddressAllowed(ip, allow)
}

// tlsConfig verifies the server as the destination says: CA bundle or
// system roots (chain and name), and, with pins, the leaf's public key too.
// With pins only, the pin replaces the chain check: the operator vouched
// for that key, and the name is still checked against the leaf.
func tlsConfig(d *destinations.Compiled) *tls.Config {
	cfg := &tls.Config{ServerName: d.Host, MinVersion: tls.VersionTLS12, RootCAs: d.Roots}
	if d.ClientCert != nil {
		cert := *d.ClientCert
		cfg.Certificates = []tls.Certificate{cert}
	}
	if len(d.Pins) == 0 {
		return cfg
	}
	chainChecked := d.Roots != nil || d.SystemRoots
	cfg.InsecureSkipVerify = !chainChecked // replaced by VerifyConnection below
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("forward: no server certificate")
		}
		leaf := cs.PeerCertificates[0]
		if !chainChecked {
			if err := leaf.VerifyHostname(d.Host); err != nil {
				return err
			}
			now := time.Now()
			if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
				return x509.CertificateInvalidError{Cert: leaf, Reason: x509.Expired}
			}
		}
		sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
		for _, p := range d.Pins {
			if subtle.ConstantTimeCompare(sum[:], p[:]) == 1 {
				return nil
			}
		}
		return errors.New("forward: server key matches no pin")
	}
	return cfg
}
