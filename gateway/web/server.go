// Package web is the gateway's HTTP layer: the merchant API, the hosted
// checkout and the embed script, and the one list of routes, which mounts
// the back office's pages (gateway/web/backofficehttp). Handlers bind,
// validate, call a domain store or service, and render; errors go to the one
// apierr handler. Nothing here can read a card: the page encrypts in the
// browser and the gateway forwards ciphertext.
package web

import (
	"context"
	"html/template"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/clientip"
	"github.com/blindgate/blindgate/gateway/forwarding"
	"github.com/blindgate/blindgate/gateway/idempotency"
	"github.com/blindgate/blindgate/gateway/ingest"
	"github.com/blindgate/blindgate/gateway/merchants"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/gateway/web/backofficehttp"
	"github.com/blindgate/blindgate/gateway/web/clientaddr"
	"github.com/blindgate/blindgate/gateway/websession"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/httpapi"
	"github.com/blindgate/blindgate/internal/httpmetrics"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/readiness"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// MaxBody caps request bodies: a card and a CVC ciphertext fit in a few KiB.
const MaxBody = 64 << 10

// Submitter is the checkout's domain (ingest): it opens a merchant's
// checkout session and turns a submission into a token, auditing it.
type Submitter interface {
	Open(ctx context.Context, m merchants.Merchant, req ingest.OpenRequest) (sessions.Session, error)
	Submit(ctx context.Context, sub ingest.Submission) (tokens.Token, error)
}

// KeySource gives the public KEK set (JWKS) for the checkout page.
type KeySource interface {
	JWKS(ctx context.Context) ([]byte, error)
}

// KeyService is the part of the signed key-service client the back office
// uses (backoffice.KeyService): reveal challenges and reveals, whose answer
// is ciphertext to the operator's browser key, passkey registration, and
// the audit trail.
type KeyService = backoffice.KeyService

// Forwarder is the merchant API's forward policy (gateway/forwarding).
type Forwarder interface {
	Forward(ctx context.Context, c forwarding.Call) (wire.ForwardResponse, error)
}

// Auditor appends to the gateway's own audit log.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Config holds what the pages and headers need to know about deployment.
type Config struct {
	PublicURL string // the gateway's external base URL, e.g. https://pay.example.com
	TLS       bool   // served over HTTPS (directly or behind a TLS proxy): send HSTS, Secure cookies
	// ClientIP picks the client address from the peer and the trusted
	// proxies' header; nil means the socket's peer address is the client.
	ClientIP *clientip.Resolver
	Now      func() time.Time
}

// Deps are the gateway's collaborators.
type Deps struct {
	Merchants   merchants.Store
	Sessions    sessions.Store
	Tokens      tokens.Store
	Ingest      Submitter
	Keys        KeySource
	KeyService  KeyService
	Forwarding  Forwarder // optional: POST /v1/tokens/{id}/forward answers not_found without it
	Operators   *operators.Service
	WebSessions websession.Store
	Limiter     ratelimit.Limiter
	Audit       Auditor
	// Idempotency keeps the merchant API's Idempotency-Key answers; without
	// it a request that carries the header is refused (503).
	Idempotency idempotency.Store
	// Webhooks manages the merchant's webhook endpoints and log; without
	// it those routes answer 404.
	Webhooks Webhooks
	// Readiness is /readyz's list of checks (gateway/app builds it); nil
	// means none: always ready.
	Readiness *readiness.Checker
	Assets    *checkout.Assets
	Pages     *template.Template
	Log       *slog.Logger
	Metrics   *httpmetrics.Metrics // optional; New makes one
	Config    Config
}

// Server is the gateway's HTTP front.
type Server struct {
	deps   Deps
	office *backofficehttp.Handler // the back office's pages
	app    *fiber.App
}

// New builds the Fiber app with every route.
func New(d Deps) *Server {
	if d.Config.Now == nil {
		d.Config.Now = time.Now
	}
	if d.Metrics == nil {
		d.Metrics = httpmetrics.New("blindgate_gateway")
	}
	if d.Readiness == nil {
		d.Readiness = readiness.New(readiness.Options{Log: d.Log})
	}
	d.Metrics.Registry().MustRegister(d.Readiness.Collector("blindgate_gateway_ready"))
	s := &Server{deps: d}
	s.office = backofficehttp.New(backofficehttp.Deps{
		Office: backoffice.New(backoffice.Deps{
			Operators: d.Operators, Sessions: d.WebSessions, Tokens: d.Tokens, Merchants: merchantNames(d.Merchants), Index: d.Tokens,
			KeyService: d.KeyService, Audit: d.Audit, Log: d.Log, Now: d.Config.Now,
		}),
		Operators: d.Operators, Sessions: d.WebSessions, Limiter: d.Limiter, Audit: d.Audit,
		Pages: d.Pages, Log: d.Log, TLS: d.Config.TLS, ClientIP: d.Config.ClientIP, Now: d.Config.Now,
	})
	s.app = fiber.New(fiber.Config{
		AppName:               "blindgate-gateway",
		BodyLimit:             MaxBody,
		ErrorHandler:          httpapi.ErrorHandler(d.Log),
		DisableStartupMessage: true,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          15 * time.Second,
		IdleTimeout:           120 * time.Second,
	})
	s.routes()
	return s
}

// merchantNames is the back office's view of the merchant store: nil
// (merchants shown by id) when there is none.
func merchantNames(m merchants.Store) backoffice.Merchants {
	if m == nil {
		return nil
	}
	return m
}

// Metrics exposes the registry; the gateway serves it on a separate,
// internal listener, not on the public port.
func (s *Server) Metrics() *httpmetrics.Metrics { return s.deps.Metrics }

// App exposes the Fiber app for listeners and app.Test.
func (s *Server) App() *fiber.App { return s.app }

// routes is the one list of endpoints. Security headers come first so that
// every answer, errors included, carries them.
func (s *Server) routes() {
	a := s.app
	a.Use(s.deps.Metrics.Middleware)
	a.Use(s.baseHeaders)

	a.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	a.Get("/readyz", s.readyz)

	// Public before the merchant group: a Fiber group's middleware runs for
	// every later route under its prefix.
	a.Get("/v1/keys", s.keys)

	// Merchant API (Bearer secret key).
	m := a.Group("/v1", s.merchantAuth)
	m.Post("/checkout/sessions", s.idempotent(s.createSession))
	m.Get("/tokens", s.listTokens)
	m.Get("/tokens/:id", s.getToken)
	m.Delete("/tokens/:id", s.deleteToken)
	m.Post("/tokens/:id/forward", s.forwardToken)
	// The answer holds the endpoint's signing secret: stored sealed.
	m.Post("/webhooks/endpoints", s.idempotent(s.createWebhookEndpoint, sealed()))
	m.Get("/webhooks/endpoints", s.listWebhookEndpoints)
	m.Delete("/webhooks/endpoints/:id", s.deleteWebhookEndpoint)
	m.Get("/webhooks/deliveries", s.listWebhookDeliveries)

	// Hosted checkout and its assets (public).
	a.Get("/embed.js", s.embedJS)
	a.Get("/assets/*", s.asset)
	a.Get("/checkout/:session", s.checkoutPage)
	a.Get("/checkout/:session/theme.css", s.themeCSS)
	a.Post("/checkout/:session/submit", s.submit)

	// Back office (operator login, cookies, CSRF): its routes are listed in
	// backofficehttp.Handler.Routes.
	s.office.Routes(a.Group(backofficehttp.Prefix))
}

// clientIP is the one answer to "who is asking" for limits and audit
// origins (gateway/web/clientaddr, shared with the back office).
func (s *Server) clientIP(c *fiber.Ctx) string { return clientaddr.Of(c, s.deps.Config.ClientIP) }

// baseHeaders applies to every answer; pages add their CSP on top.
func (s *Server) baseHeaders(c *fiber.Ctx) error {
	for _, hv := range baseHeaderValues(s.deps.Config.TLS) {
		c.Set(hv[0], hv[1])
	}
	return c.Next()
}

// readyz says whether this gateway can take checkouts now (readiness; the
// checks are gateway/app's). /healthz is liveness only.
func (s *Server) readyz(c *fiber.Ctx) error {
	r := s.deps.Readiness.Report(c.UserContext())
	c.Set(fiber.HeaderCacheControl, "no-store")
	status := fiber.StatusOK
	if !r.Ready {
		status = fiber.StatusServiceUnavailable
	}
	return c.Status(status).JSON(r)
}
