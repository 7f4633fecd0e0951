package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/blindgate/blindgate/gateway/forwarding"

	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/safedial"
)

// Config tunes delivery. Zero values take the defaults.
type Config struct {
	// AllowLoopback lets endpoints on loopback addresses through
	// (development and tests only: -webhook-allow-loopback).
	AllowLoopback bool
	// MaxAttempts bounds the attempts of one delivery (default 8).
	MaxAttempts int
	// Backoff is the wait after the first failed attempt, doubled after
	// each further one up to MaxBackoff (defaults 30 s, 1 h); each wait is
	// drawn in [d/2, d] so retries of many deliveries spread out.
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one attempt, connection to answer (default 10 s).
	Timeout time.Duration
	// Poll is how often the worker looks for due deliveries (default 1 s).
	Poll time.Duration
	// Batch is how many deliveries the worker sends at once (default 8).
	Batch int
	// EndpointCache is how long an event may be queued for the endpoints
	// this Service last read for its merchant, rather than those of the
	// store (default DefaultEndpointCache, 1 s; negative: read them for
	// every event). Endpoints added or deleted through this Service count
	// for its next event at once; through another gateway sharing the
	// store, within EndpointCache.
	EndpointCache time.Duration
	Now           func() time.Time
	// Resolver and Dialer default to the system's; tests inject them.
	Resolver safedial.Resolver
	Dialer   safedial.Dialer
	Log      *slog.Logger
}

func (c *Config) defaults() {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 8
	}
	if c.Backoff <= 0 {
		c.Backoff = 30 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Hour
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 8
	}
	if c.EndpointCache == 0 {
		c.EndpointCache = DefaultEndpointCache
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Dialer == nil {
		c.Dialer = &net.Dialer{Timeout: c.Timeout}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Service manages endpoints, emits events and delivers them.
type Service struct {
	store Store
	cfg   Config
	hc    *http.Client
	// endpoints spares an event (one per minted token) a store read.
	endpoints *endpointCache
}

// New returns a Service on store.
func New(store Store, cfg Config) *Service {
	cfg.defaults()
	s := &Service{store: store, cfg: cfg, endpoints: newEndpointCache(cfg.EndpointCache, cfg.Now)}
	tr := &http.Transport{
		Proxy: nil, // never an environment proxy: it would dial for us, unchecked
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return safedial.Dial(ctx, cfg.Resolver, cfg.Dialer, host, port, func(ip netip.Addr) bool { return addressAllowed(ip, cfg.AllowLoopback) })
		},
		TLSHandshakeTimeout:    cfg.Timeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
		ForceAttemptHTTP2:      true,
	}
	s.hc = &http.Client{
		Transport: tr,
		// A redirect could point anywhere: a 3xx is a failed attempt.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       cfg.Timeout,
	}
	return s
}

// CreateEndpoint registers url for merchant and returns the endpoint with
// its secret, which is shown only this once.
func (s *Service) CreateEndpoint(ctx context.Context, merchant, rawURL string) (Endpoint, error) {
	u, err := ValidateURL(rawURL, s.cfg.AllowLoopback)
	if err != nil {
		return Endpoint{}, err
	}
	id, err := newID("we_")
	if err != nil {
		return Endpoint{}, err
	}
	secret, err := NewSecret()
	if err != nil {
		return Endpoint{}, err
	}
	e := Endpoint{ID: id, MerchantID: merchant, URL: u, Secret: secret, CreatedAt: s.cfg.Now().UTC()}
	err = s.store.AddEndpoint(ctx, e, MaxEndpoints)
	// Even after an error: the store may have taken it all the same.
	s.endpoints.forget(merchant)
	if err != nil {
		return Endpoint{}, err
	}
	return e, nil
}

// Endpoints lists merchant's endpoints.
func (s *Service) Endpoints(ctx context.Context, merchant string) ([]Endpoint, error) {
	return s.store.Endpoints(ctx, merchant)
}

// DeleteEndpoint removes one of merchant's endpoints; its pending
// deliveries then fail at their next attempt.
func (s *Service) DeleteEndpoint(ctx context.Context, merchant, id string) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	err := s.store.DeleteEndpoint(ctx, merchant, id)
	s.endpoints.forget(merchant)
	return err
}

// Deliveries is merchant's delivery log, newest first.
func (s *Service) Deliveries(ctx context.Context, merchant string, limit int) ([]Delivery, error) {
	if limit <= 0 || limit > MaxLogLimit {
		limit = MaxLogLimit
	}
	return s.store.Deliveries(ctx, merchant, limit)
}

// Event is the JSON body of every webhook.
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	Data      any       `json:"data"`
}

// TokenData is token.created's data: the token's id and masked fields
// only, never its ciphertext.
type TokenData struct {
	Token     string `json:"token"`
	SessionID string `json:"session_id,omitempty"`
	Brand     string `json:"brand"`
	Last4     string `json:"last4"`
	ExpMonth  int    `json:"exp_month"`
	ExpYear   int    `json:"exp_year"`
	// The merchant's own reference and metadata from the checkout session.
	Reference string            `json:"reference,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// ForwardData is forward.succeeded's and forward.failed's data: which
// token went to which destination and how it went, never the request or
// answer bodies.
type ForwardData struct {
	Token       string `json:"token"`
	Destination string `json:"destination"`
	// Status is the destination's HTTP status (0 when none came back).
	Status int `json:"status,omitempty"`
	// Code is the error code of a failed forward.
	Code string `json:"code,omitempty"`
}

// TokenCreated emits token.created for a minted token (ingest's hook).
func (s *Service) TokenCreated(ctx context.Context, t tokens.Token) {
	s.emit(ctx, t.MerchantID, EventTokenCreated, TokenData{
		Token: t.ID, SessionID: t.SessionID, Brand: t.Brand, Last4: t.Last4, ExpMonth: t.ExpMonth, ExpYear: t.ExpYear,
		Reference: t.Reference, Metadata: t.Metadata,
	})
}

var _ forwarding.Events = (*Service)(nil)

// ForwardSucceeded emits forward.succeeded for the forward's merchant
// (forwarding's hook).
func (s *Service) ForwardSucceeded(ctx context.Context, e forwarding.Event) {
	s.emit(ctx, e.MerchantID, EventForwardSucceeded, forwardData(e))
}

// ForwardFailed emits forward.failed for the forward's merchant.
func (s *Service) ForwardFailed(ctx context.Context, e forwarding.Event) {
	s.emit(ctx, e.MerchantID, EventForwardFailed, forwardData(e))
}

// forwardData keeps what a merchant may see: never the hashed
// Idempotency-Key the key service saw, which is the key zone's business.
func forwardData(e forwarding.Event) ForwardData {
	return ForwardData{Token: e.TokenID, Destination: e.Destination, Status: e.Status, Code: e.Code}
}

// emit queues the event for each of merchant's endpoints. Best effort, as
// every gateway event: the action it reports is already committed, so a
// store failure is logged, not returned.
func (s *Service) emit(ctx context.Context, merchant, typ string, data any) {
	if err := s.Emit(ctx, merchant, typ, data); err != nil {
		s.cfg.Log.ErrorContext(ctx, "webhook not queued", "event", typ, "merchant", merchant, "err", err)
	}
}

// Emit queues an event of typ with data for each of merchant's endpoints.
func (s *Service) Emit(ctx context.Context, merchant, typ string, data any) error {
	// The event is committed: queue it even if the caller has gone away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	eps, err := s.endpointIDs(ctx, merchant)
	if err != nil || len(eps) == 0 {
		return err
	}
	evID, err := newID("evt_")
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	body, err := json.Marshal(Event{ID: evID, Type: typ, CreatedAt: now, Data: data})
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range eps {
		id, err := newID("whd_")
		if err != nil {
			return err
		}
		d := Delivery{ID: id, MerchantID: merchant, EndpointID: ep, EventID: evID, EventType: typ, Body: body,
			Status: StatusPending, NextAt: now, CreatedAt: now, UpdatedAt: now}
		errs = append(errs, s.store.Enqueue(ctx, d))
	}
	return errors.Join(errs...)
}

// endpointIDs are the ids of merchant's endpoints, from the cache when it
// has them fresh (see Config.EndpointCache). A store error is not cached.
func (s *Service) endpointIDs(ctx context.Context, merchant string) ([]string, error) {
	ids, ok, ticket := s.endpoints.get(merchant)
	if ok {
		return ids, nil
	}
	eps, err := s.store.Endpoints(ctx, merchant)
	if err != nil {
		return nil, err
	}
	ids = make([]string, len(eps))
	for i, e := range eps {
		ids[i] = e.ID
	}
	s.endpoints.put(merchant, ids, ticket)
	return ids, nil
}

// Run delivers due deliveries until ctx ends, then returns once the
// attempts in flight have finished.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		s.RunOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce claims the due deliveries and attempts each, in parallel.
func (s *Service) RunOnce(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	// The lease outlasts an attempt, so another replica does not take a
	// delivery that is still being sent.
	due, err := s.store.ClaimDue(ctx, s.cfg.Now(), 3*s.cfg.Timeout, s.cfg.Batch)
	if err != nil {
		s.cfg.Log.Error("webhook queue", "err", err)
	}
	var wg sync.WaitGroup
	for _, d := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.attempt(ctx, d)
		}()
	}
	wg.Wait()
}

// attempt sends d once and records the outcome.
func (s *Service) attempt(ctx context.Context, d Delivery) {
	ep, err := s.store.Endpoint(ctx, d.MerchantID, d.EndpointID)
	var code int
	var why string
	var latency time.Duration
	switch {
	case errors.Is(err, ErrNotFound):
		why = "endpoint_deleted"
		d.Attempts = s.cfg.MaxAttempts - 1 // nothing to retry
	case err != nil:
		s.cfg.Log.Error("webhook endpoint lookup", "err", err)
		return // the lease ends and the delivery is tried again
	default:
		start := time.Now()
		code, why = s.send(ctx, ep, d)
		latency = time.Since(start)
		if ctx.Err() != nil {
			return // shutting down: not counted; the lease ends and it is retried
		}
	}
	now := s.cfg.Now().UTC()
	d.Attempts++
	d.LastStatusCode, d.LastError, d.LatencyMS, d.UpdatedAt = code, why, latency.Milliseconds(), now
	switch {
	case why == "":
		d.Status, d.NextAt = StatusSucceeded, time.Time{}
	case d.Attempts >= s.cfg.MaxAttempts:
		d.Status, d.NextAt = StatusFailed, time.Time{}
	default:
		d.NextAt = now.Add(s.backoff(d.Attempts))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.Save(sctx, d); err != nil {
		s.cfg.Log.Error("webhook delivery not recorded", "delivery", d.ID, "err", err)
	}
}

// backoff is the wait after attempt n (1-based): Backoff * 2^(n-1) capped
// at MaxBackoff, drawn in [d/2, d].
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.Backoff
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// send posts d's body to ep. It returns the answer's status, and a short
// reason when the attempt failed (the log's last_error: a category, never
// an address or an answer's text).
func (s *Service) send(ctx context.Context, ep Endpoint, d Delivery) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, "invalid_url"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "blindgate-webhooks")
	req.Header.Set("Blindgate-Event-Id", d.EventID)
	req.Header.Set("Blindgate-Event-Type", d.EventType)
	req.Header.Set(HeaderSignature, Sign(ep.Secret, s.cfg.Now(), d.Body))
	resp, err := s.hc.Do(req)
	if err != nil {
		var ae *safedial.AddressError
		var ne net.Error
		switch {
		case errors.As(err, &ae):
			return 0, "address_refused"
		case errors.As(err, &ne) && ne.Timeout():
			return 0, "timeout"
		default:
			return 0, "connection_failed"
		}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Sprintf("http_%d", resp.StatusCode)
	}
	return resp.StatusCode, ""
}
