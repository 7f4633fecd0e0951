// Package proxy is the egress proxy of the key zone (cmd/egress): an HTTP
// CONNECT proxy that opens a tunnel only to an allow-listed host:port, and
// only to a checked address.
//
// Order of checks, each refusal answered before any byte reaches the
// target: the method is CONNECT (anything else 405: no plain-HTTP relay);
// the authority is on the allow-list exactly (403); the name is resolved
// once and every address passes safedial.AddressAllowed with the rule's private
// prefixes (one refused address refuses the name: 403); the checked IP
// itself is dialed, never the name again, so a rebinding answer has no
// second chance. Every tunnel is logged with host, port, address, bytes
// each way and duration; never content, which is TLS anyway.
package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindgate/blindgate/internal/safedial"
)

// Resolver resolves a host name; net.DefaultResolver fits.
type Resolver = safedial.Resolver

// Dialer connects to a checked address.
type Dialer = safedial.Dialer

// Proxy is the CONNECT handler. Safe for concurrent use; SetAllowList may
// replace the list while tunnels run (open tunnels are not cut).
type Proxy struct {
	resolver Resolver
	dialer   Dialer
	log      *slog.Logger
	// maxTunnel bounds a tunnel's life: a forward is one request.
	maxTunnel time.Duration

	mu    sync.RWMutex
	allow AllowList
}

// Config configures New.
type Config struct {
	Allow     AllowList
	Resolver  Resolver // nil: net.DefaultResolver
	Dialer    Dialer   // nil: a net.Dialer with a 10 s timeout
	Log       *slog.Logger
	MaxTunnel time.Duration // 0: 5 minutes
}

// New returns a Proxy.
func New(c Config) *Proxy {
	p := &Proxy{resolver: c.Resolver, dialer: c.Dialer, log: c.Log, maxTunnel: c.MaxTunnel, allow: c.Allow}
	if p.resolver == nil {
		p.resolver = net.DefaultResolver
	}
	if p.dialer == nil {
		p.dialer = &net.Dialer{Timeout: 10 * time.Second}
	}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if p.maxTunnel == 0 {
		p.maxTunnel = 5 * time.Minute
	}
	return p
}

// SetAllowList replaces the allow-list.
func (p *Proxy) SetAllowList(al AllowList) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.allow = al
}

func (p *Proxy) rule(authority string) (Rule, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.allow.Lookup(authority)
}

// Refusal reasons, logged and counted; the client only sees the status.
var (
	errNotListed = errors.New("not on the allow-list")
)

// ServeHTTP implements the proxy.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		// No relaying of plain HTTP: a card only travels inside TLS the key
		// service verifies.
		p.log.Warn("egress refused", "method", r.Method, "reason", "not CONNECT")
		w.Header().Set("Allow", http.MethodConnect)
		http.Error(w, "only CONNECT", http.StatusMethodNotAllowed)
		return
	}
	host, port, _ := net.SplitHostPort(r.Host)
	rule, ok := p.rule(r.Host)
	if !ok {
		p.refuse(w, host, port, errNotListed, http.StatusForbidden)
		return
	}
	// The key service's rule, resolved once and dialed at the checked
	// address (internal/safedial): one refused address refuses the name, as
	// a mix of public and private answers is an attack or a misconfiguration.
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	up, err := safedial.Dial(ctx, p.resolver, p.dialer, rule.Host, rule.Port, func(ip netip.Addr) bool {
		return safedial.AddressAllowed(ip, rule.Private)
	})
	cancel()
	var ae *safedial.AddressError
	switch {
	case errors.As(err, &ae):
		p.refuse(w, rule.Host, rule.Port, errors.New("address refused"), http.StatusForbidden)
		return
	case errors.Is(err, safedial.ErrResolve), errors.Is(err, safedial.ErrNoAddress):
		p.refuse(w, rule.Host, rule.Port, errors.New("resolve failed"), http.StatusBadGateway)
		return
	case err != nil:
		p.refuse(w, rule.Host, rule.Port, errors.New("dial failed"), http.StatusBadGateway)
		return
	}
	var ip netip.Addr
	if ta, ok := up.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr().Unmap()
	}
	rc := http.NewResponseController(w)
	down, brw, err := rc.Hijack()
	if err != nil {
		up.Close()
		p.refuse(w, rule.Host, rule.Port, errors.New("hijack failed"), http.StatusInternalServerError)
		return
	}
	p.splice(down, brw.Reader, up, rule, ip)
}

func (p *Proxy) refuse(w http.ResponseWriter, host, port string, why error, status int) {
	p.log.Warn("egress refused", "host", host, "port", port, "reason", why.Error(), "status", status)
	http.Error(w, http.StatusText(status), status)
}

// splice answers 200 and copies both ways until either side closes or the
// tunnel's time is up, then logs its size.
func (p *Proxy) splice(down net.Conn, buffered io.Reader, up net.Conn, rule Rule, ip netip.Addr) {
	start := time.Now()
	defer down.Close()
	defer up.Close()
	deadline := start.Add(p.maxTunnel)
	_ = down.SetDeadline(deadline)
	_ = up.SetDeadline(deadline)
	if _, err := io.WriteString(down, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	var sent, received atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, _ := io.Copy(up, io.MultiReader(buffered, down))
		sent.Store(n)
		closeWrite(up)
	}()
	n, _ := io.Copy(down, up)
	received.Store(n)
	closeWrite(down)
	<-done
	p.log.Info("egress tunnel", "host", rule.Host, "port", rule.Port, "ip", ip.String(),
		"bytes_sent", sent.Load(), "bytes_received", received.Load(), "duration_ms", time.Since(start).Milliseconds())
}

// closeWrite half-closes a TCP connection so the other side sees the end
// of this direction and the copy the other way can finish.
func closeWrite(c net.Conn) {
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		return
	}
	_ = c.Close()
}
