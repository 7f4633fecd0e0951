// Package api is the key service's HTTP layer: it authenticates signed
// requests, binds and validates bodies, calls the unwrap domain and renders
// answers. Every route is listed in routes(); nothing here touches a key.
package api

import (
	"context"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/httpapi"
	"github.com/blindgate/blindgate/internal/readiness"
	"github.com/blindgate/blindgate/keyservice/admit"
	"github.com/blindgate/blindgate/keyservice/forward"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/seal"
	"github.com/blindgate/blindgate/keyservice/sigauth"
	"github.com/blindgate/blindgate/keyservice/unwrap"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// MaxBody caps request bodies: a card JWE is well under 4 KiB.
const MaxBody = 64 << 10

// Unwrapper is the domain the handlers call.
type Unwrapper interface {
	Inspect(ctx context.Context, m unwrap.Meta, in unwrap.InspectInput) (unwrap.Masked, error)
	// ClaimOnly claims the jti of an inspect or a reveal refused before
	// Inspect or Reveal.
	ClaimOnly(ctx context.Context, m unwrap.Meta) error
	Reveal(ctx context.Context, m unwrap.Meta, in unwrap.RevealInput) (unwrap.Sealed, error)
	Rewrap(ctx context.Context, m unwrap.Meta, in unwrap.RewrapInput) (unwrap.Rewrapped, error)
}

// Forwarder is the forwarding domain (keyservice/forward).
type Forwarder interface {
	Forward(ctx context.Context, m forward.Meta, req wire.ForwardRequest) (wire.ForwardResponse, error)
}

// Passkeys is the reveal approval's front (keyservice/passkeys): reveal
// nonces, and the registry's pending registrations and lists. A reveal
// challenge claims its request's jti (ClaimRevealChallenge; one that does
// not bind has it claimed alone, by Unwrapper.ClaimOnly), and answers
// admit.ErrReplay or admit.ErrUnavailable when the claim is refused.
type Passkeys interface {
	ClaimRevealChallenge(ctx context.Context, claim admit.Claim, client, origin, actor, token string) (wire.RevealChallengeResponse, error)
	PasskeyChallenge(ctx context.Context, client, actor string) (wire.PasskeyChallengeResponse, error)
	Register(ctx context.Context, client, origin string, req wire.PasskeyRegisterRequest) (wire.PasskeyRegisterResponse, error)
	List(ctx context.Context, actor string) (wire.PasskeyListResponse, error)
}

// Verifier authenticates Contract 2 signatures. Authenticate leaves the
// jti's claim to its caller: Claim makes it alone, and inspect, reveal and
// the reveal challenge make it in the domain (inspect with its limits, a
// reveal with its nonce's take, a challenge with its budget and its
// nonce's write, in one round trip).
type Verifier interface {
	Authenticate(authorization, method, path string, body []byte) (sigauth.Caller, sigauth.Claim, error)
	Claim(ctx context.Context, claim sigauth.Claim) error
}

// Sealer is the keyring holder.
type Sealer interface {
	Keyring() (*keyring.Keyring, error)
	Progress() seal.Progress
}

// Unsealer is the unseal ceremony: limits, rounds bound to a nonce, audit.
type Unsealer interface {
	Submit(ctx context.Context, origin, nonce, key string) (seal.Progress, error)
	Reset(ctx context.Context, origin, nonce string) (seal.Progress, error)
}

// Auditor appends durable audit events.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Event, error)
}

// AuditReader reads the audit trail for the back office.
type AuditReader interface {
	Query(ctx context.Context, f audit.Filter) ([]audit.Event, audit.Report, error)
}

// Pinger reports whether a dependency (Redis) answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are the server's collaborators.
type Deps struct {
	Unwrap  Unwrapper
	Forward Forwarder // optional: without it POST /v1/forward answers not_found
	// Passkeys issues reveal nonces and keeps the passkey registry; without
	// it the reveal challenge and passkey routes answer not_found (and no
	// reveal can get a nonce).
	Passkeys Passkeys
	Verifier Verifier
	Audience string // shown by seal status, for configuring clients
	Seal     Sealer
	Unseal   Unsealer // optional: enables POST /v1/sys/unseal
	Audit    Auditor
	Trail    AuditReader // optional: enables POST /v1/audit/query
	Redis    Pinger
	Log      *slog.Logger
	Metrics  *Metrics
	// Readiness tunes /readyz's probes (timeouts, cache, clock); the zero
	// value is the production default.
	Readiness readiness.Options
}

// Server is the key service's HTTP front.
type Server struct {
	deps  Deps
	app   *fiber.App
	ready *readiness.Checker
}

// New builds the Fiber app with every route.
func New(d Deps) *Server {
	if d.Metrics == nil {
		d.Metrics = NewMetrics()
	}
	if d.Readiness.Log == nil {
		d.Readiness.Log = d.Log
	}
	s := &Server{deps: d}
	s.ready = readiness.New(d.Readiness, s.readinessChecks()...)
	d.Metrics.Registry().MustRegister(s.ready.Collector("blindgate_keyservice_ready"))
	s.app = fiber.New(fiber.Config{
		AppName:               "blindgate-keyservice",
		BodyLimit:             MaxBody,
		ErrorHandler:          httpapi.ErrorHandler(d.Log),
		DisableStartupMessage: true,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           120 * time.Second,
	})
	s.routes()
	return s
}

// App exposes the Fiber app for listeners and app.Test.
func (s *Server) App() *fiber.App { return s.app }

// routes is the one list of endpoints. Metrics middleware goes first so that
// refused and failed requests are counted too.
func (s *Server) routes() {
	a := s.app
	a.Use(s.deps.Metrics.middleware)
	a.Use(securityHeaders)

	a.Get("/healthz", s.healthz)
	a.Get("/readyz", s.readyz)
	a.Get("/metrics", s.deps.Metrics.handler())
	a.Get("/.well-known/jwks.json", s.jwks)

	a.Get(wire.PathSealStatus, s.sealStatus)
	a.Post("/v1/sys/unseal", s.unseal)

	a.Post("/v1/inspect", s.signedUnclaimed(wire.OpInspect), s.inspect)
	a.Post(wire.PathRevealChallenge, s.signedUnclaimed(wire.OpReveal), s.revealChallenge)
	a.Post(wire.PathReveal, s.signedUnclaimed(wire.OpReveal), s.reveal)
	a.Post(wire.PathPasskeyChallenge, s.signed(wire.OpReveal), s.passkeyChallenge)
	a.Post(wire.PathPasskeys, s.signed(wire.OpReveal), s.registerPasskey)
	a.Post(wire.PathPasskeyList, s.signed(wire.OpReveal), s.listPasskeys)
	a.Post("/v1/rewrap", s.signed(wire.OpRewrap), s.rewrap)
	a.Post("/v1/audit/query", s.signed(wire.OpAudit), s.auditQuery)
	a.Post(wire.PathForward, s.signed(wire.OpForward), s.forward)
}

func securityHeaders(c *fiber.Ctx) error {
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Cache-Control", "no-store")
	return c.Next()
}
