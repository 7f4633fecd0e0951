package app

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/gateway/forwarding"
	"github.com/blindgate/blindgate/gateway/idempotency"
	"github.com/blindgate/blindgate/gateway/ingest"
	"github.com/blindgate/blindgate/gateway/kek"
	"github.com/blindgate/blindgate/gateway/merchants"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/rewrap"
	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/gateway/web"
	"github.com/blindgate/blindgate/gateway/webhooks"
	"github.com/blindgate/blindgate/gateway/websession"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/readiness"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/secret"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/templates"
)

// Stores are the gateway's persistent state, on Redis or one bbolt file.
type Stores struct {
	Merchants   merchants.Store
	Sessions    sessions.Store
	Tokens      tokens.Store
	Operators   *operators.Service
	WebSessions websession.Store
	Limiter     ratelimit.Limiter
	Idempotency idempotency.Store
	Webhooks    webhooks.Store
	// RewrapState keeps rewrap passes' positions; RewrapLeaser elects the
	// replica that runs one (nil with bolt: one instance).
	RewrapState  rewrap.State
	RewrapLeaser rewrap.Leaser
	Redis        redis.UniversalClient // nil with bolt
	closers      []func() error
	sweepers     []func(ctx context.Context)
}

// Close releases the stores.
func (s *Stores) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// OpenStores opens the configured backend. With bolt, rate limits live in
// process memory: one gateway instance only.
func OpenStores(cfg Config, log *slog.Logger) (*Stores, error) {
	if err := cfg.ValidateStore(); err != nil {
		return nil, err
	}
	nameKey, err := secret.Resolve(cfg.LoginNameKey)
	if err != nil {
		return nil, fmt.Errorf("login-name-key: %w", err)
	}
	if nameKey != nil && len(nameKey) < 32 {
		return nil, errors.New("login-name-key: must be at least 32 bytes")
	}
	if nameKey == nil && cfg.Store == "redis" {
		log.Warn("no -login-name-key: lockouts of unknown login names are per process; give every replica the same key")
	}
	// The admin commands open the stores with the store flags alone: no
	// MFA mode (the default applies) and no relying party (they verify no
	// passkey).
	mode, rp, err := cfg.OperatorAuth()
	if err != nil && cfg.PublicURL != "" {
		return nil, err
	}
	var verifier *passkey.Verifier
	if rp != nil {
		if verifier, err = passkey.New(*rp); err != nil {
			return nil, err
		}
	}
	if mode == "" {
		mode = operators.MFAAny
	}
	ocfg := func(rev operators.SessionRevoker) operators.Config {
		return operators.Config{Revoker: rev, Logger: log, NameKey: nameKey, MFA: mode, Passkeys: verifier}
	}
	st := &Stores{}
	wcfg := websession.Config{}
	switch cfg.Store {
	case "redis":
		rdb, err := redisx.New(cfg.Redis)
		if err != nil {
			return nil, err
		}
		st.Redis = rdb
		st.closers = append(st.closers, rdb.Close)
		st.Merchants = merchants.NewRedis(rdb, "bg")
		st.Sessions = sessions.NewRedis(rdb, "bg")
		st.Tokens = tokens.NewRedis(rdb, "bg")
		st.Limiter = ratelimit.NewRedis(rdb, "bg:gw:rl:")
		st.Idempotency = idempotency.NewRedis(rdb, "bg")
		st.Webhooks = webhooks.NewRedis(rdb, "bg")
		st.RewrapState, st.RewrapLeaser = rewrap.NewRedisState(rdb, "bg:gw:rewrap"), rewrap.RedisLeaser{RDB: rdb}
		ws, err := websession.NewRedis(rdb, "bg", wcfg)
		if err != nil {
			return nil, err
		}
		st.WebSessions = ws
		if st.Operators, err = operators.NewService(operators.NewRedis(rdb, "bg"), ocfg(ws)); err != nil {
			return nil, err
		}
	case "bolt":
		db, err := bolt.Open(cfg.BoltPath, 0o600, &bolt.Options{Timeout: 2 * time.Second})
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", cfg.BoltPath, err)
		}
		st.closers = append(st.closers, db.Close)
		if st.Merchants, err = merchants.NewBolt(db); err != nil {
			return nil, err
		}
		ss, err := sessions.NewBolt(db)
		if err != nil {
			return nil, err
		}
		ts, err := tokens.NewBolt(db)
		if err != nil {
			return nil, err
		}
		st.Sessions, st.Tokens = ss, ts
		is, err := idempotency.NewBolt(db)
		if err != nil {
			return nil, err
		}
		st.Idempotency = is
		wh, err := webhooks.NewBolt(db, nil)
		if err != nil {
			return nil, err
		}
		st.Webhooks = wh
		if st.RewrapState, err = rewrap.NewBoltState(db); err != nil {
			return nil, err
		}
		st.sweepers = append(st.sweepers, func(ctx context.Context) { is.RunSweeper(ctx, time.Minute) }, func(ctx context.Context) { wh.RunSweeper(ctx, time.Hour) })
		// bbolt does not expire keys; sweepers drop expired CVCs and sessions.
		st.sweepers = append(st.sweepers, func(ctx context.Context) { ss.RunSweeper(ctx, time.Minute) }, func(ctx context.Context) { ts.RunSweeper(ctx, time.Minute) })
		ws, err := websession.NewBolt(db, wcfg)
		if err != nil {
			return nil, err
		}
		st.WebSessions = ws
		ob, err := operators.NewBolt(db)
		if err != nil {
			return nil, err
		}
		if st.Operators, err = operators.NewService(ob, ocfg(ws)); err != nil {
			return nil, err
		}
		st.Limiter = ratelimit.NewMemory()
	}
	return st, nil
}

// App is a configured gateway, ready to Run.
type App struct {
	cfg    Config
	log    *slog.Logger
	stores *Stores
	audit  *audit.Log
	server *web.Server
	hooks  *webhooks.Service
	clock  *client.Clock      // the key service's clock against ours
	rewrap *rewrap.Background // nil with -rewrap-interval 0
}

// New builds the gateway.
func New(cfg Config, log *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	stores, err := OpenStores(cfg, log)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, stores: stores}
	if err := a.build(); err != nil {
		_ = stores.Close()
		if a.audit != nil {
			_ = a.audit.Close()
		}
		return nil, err
	}
	return a, nil
}

func (a *App) build() error {
	cfg := a.cfg
	// One clock for the three identities: they talk to one key service.
	a.clock = client.NewClock(cfg.KeyServiceSkew, cfg.Now, a.log)
	if a.stores.Operators.Passkeys() == nil {
		a.log.Warn("passkeys are off: the back office's host is an IP address (set -backoffice-url to a host name); " +
			"operators cannot enrol passkeys, and a key service that requires passkey approval refuses every reveal")
	}
	checkoutClient, err := KeyServiceClient(cfg, cfg.CheckoutClientID, cfg.CheckoutKeyFile)
	if err != nil {
		return fmt.Errorf("checkout identity: %w", err)
	}
	checkoutClient = checkoutClient.WithClock(a.clock)
	var backoffice web.KeyService
	if cfg.BackofficeKeyFile != "" {
		bc, err := KeyServiceClient(cfg, cfg.BackofficeClientID, cfg.BackofficeKeyFile)
		if err != nil {
			return fmt.Errorf("back-office identity: %w", err)
		}
		backoffice = bc.WithClock(a.clock)
	} else {
		a.log.Warn("no back-office signing key: reveal and the audit view are disabled")
	}
	// Forward has its own identity: the checkout's key may inspect but not
	// send cards out, and a forward identity that leaks cannot inspect.
	var fwdClient forwarding.KeyService
	if cfg.ForwardKeyFile != "" {
		fc, err := KeyServiceClient(cfg, cfg.ForwardClientID, cfg.ForwardKeyFile)
		if err != nil {
			return fmt.Errorf("forward identity: %w", err)
		}
		fwdClient = fc.WithClock(a.clock).WithHTTPTimeout(client.ForwardTimeout)
	} else {
		a.log.Info("no forward signing key: POST /v1/tokens/{id}/forward is disabled")
	}
	if a.audit, err = audit.Open(cfg.AuditPath, cfg.AuditLog.Apply(audit.Options{Logger: a.log})); err != nil {
		return fmt.Errorf("gateway audit log: %w", err)
	}
	assets, err := checkout.NewAssets()
	if err != nil {
		return err
	}
	pages, err := templates.Parse()
	if err != nil {
		return err
	}
	ips, err := cfg.ClientIP()
	if err != nil {
		return err
	}
	if cfg.WebhookAllowLoopback {
		a.log.Warn("webhook endpoints on loopback are allowed (-webhook-allow-loopback): development only")
	}
	a.hooks = webhooks.New(a.stores.Webhooks, webhooks.Config{AllowLoopback: cfg.WebhookAllowLoopback, MaxAttempts: cfg.WebhookMaxAttempts, Log: a.log})
	keys := kek.New(checkoutClient, cmp.Or(cfg.JWKSRefresh, 30*time.Second), time.Hour)
	limits := ingest.DefaultLimits()
	limits.PerIP.Rate, limits.PerIP.Burst = cfg.SubmitPerIP, max(1, cfg.SubmitPerIP/2)
	a.server = web.New(web.Deps{
		Merchants: a.stores.Merchants, Sessions: a.stores.Sessions, Tokens: a.stores.Tokens,
		Ingest:      ingest.New(a.stores.Sessions, a.stores.Tokens, checkoutClient, a.stores.Limiter, limits, cfg.CVCTTL, ingest.WithAudit(a.audit, a.log), ingest.WithEvents(a.hooks)),
		Keys:        keys,
		KeyService:  backoffice,
		Forwarding:  forwarding.New(a.stores.Tokens, fwdClient, a.hooks),
		Operators:   a.stores.Operators,
		WebSessions: a.stores.WebSessions,
		Limiter:     a.stores.Limiter,
		Audit:       a.audit,
		Idempotency: a.stores.Idempotency,
		Webhooks:    a.hooks,
		Readiness:   a.readiness(checkoutClient, keys),
		Assets:      assets,
		Pages:       pages,
		Log:         a.log,
		Config:      web.Config{PublicURL: cfg.PublicURL, TLS: cfg.TLS(), ClientIP: ips},
	})
	a.server.Metrics().Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "blindgate_gateway_keyservice_clock_skew_seconds",
		Help: "The key service's clock minus this gateway's, from the Date of its answers (0 until one arrives).",
	}, func() float64 {
		off, _ := a.clock.Offset()
		return off.Seconds()
	}))
	if cfg.RewrapInterval > 0 {
		a.rewrap = &rewrap.Background{
			Job:  &rewrap.Job{Store: a.stores.Tokens, KS: checkoutClient, State: a.stores.RewrapState, Rate: float64(cfg.RewrapRate), Log: a.log},
			Kids: keys.Kids, Leaser: a.stores.RewrapLeaser, Interval: cfg.RewrapInterval,
			Metrics: rewrap.NewMetrics(a.server.Metrics().Registry()), Log: a.log,
		}
	}
	return nil
}

// Readiness check names of the gateway (docs/contracts.md, Contract 4).
const (
	CheckRedis           = "redis"
	CheckAudit           = "audit"
	CheckKeyService      = "keyservice"
	CheckKeyServiceClock = "keyservice_clock"
)

// readiness lists what a checkout needs: the store (Redis; bbolt is a
// local file and has no check), the gateway's audit log taking appends, the
// key service answering and unsealed, and the two clocks close enough for
// signed requests to pass. A sealed key service also empties the public key
// cache, so the page stops offering a checkout at once rather than at the
// cache's next refresh.
func (a *App) readiness(ks *client.Client, keys *kek.Cache) *readiness.Checker {
	var checks []readiness.Check
	if a.stores.Redis != nil {
		checks = append(checks, readiness.Check{Name: CheckRedis, Probe: redisx.Pinger{C: a.stores.Redis, Key: "bg:gw:ready"}.Ping})
	}
	checks = append(checks,
		readiness.Check{Name: CheckAudit, Local: true, Probe: func(context.Context) error { return a.audit.Healthy() }},
		readiness.Check{Name: CheckKeyService, Probe: func(ctx context.Context) error {
			st, err := ks.SealStatus(ctx)
			switch {
			case err != nil:
				return readiness.Fail("unreachable", err)
			case st.Sealed:
				keys.Invalidate()
				return readiness.Fail("sealed", nil)
			}
			return nil
		}},
		readiness.Check{Name: CheckKeyServiceClock, Local: true, Probe: func(context.Context) error {
			if err := a.clock.Skewed(); err != nil {
				return readiness.Fail("skewed", err)
			}
			return nil
		}},
	)
	return readiness.New(readiness.Options{Log: a.log}, checks...)
}

// AuditStats reports the gateway audit log's group-commit counters
// (appends, batches, fsyncs): appends per fsync is its batch size.
func (a *App) AuditStats() audit.Stats { return a.audit.Stats() }

// RedisBatching reports how many Lua scripts went to Redis and in how many
// round trips (redisx's batching), and false when they are not batched.
func (a *App) RedisBatching() (redisx.BatchStats, bool) { return redisx.Batching(a.stores.Redis) }

// Clock is the gateway's comparison of its clock with the key service's.
func (a *App) Clock() *client.Clock { return a.clock }

// KeyServiceClient returns a signed client of the key service for one of the
// gateway's identities (checkout: inspect/rewrap; back office: reveal/audit).
func KeyServiceClient(cfg Config, clientID, keyFile string) (*client.Client, error) {
	hc, err := keyServiceHTTP(cfg)
	if err != nil {
		return nil, err
	}
	kid, key, err := client.LoadKeyFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	// fasthttp: a checkout calls the key service on every submit, and
	// net/http costs about a third more CPU and twice the allocations per
	// call (client.WithFastHTTP; it keeps net/http when a proxy applies to
	// any replica).
	return client.New(cfg.KeyServiceURL, &client.Signer{ClientID: clientID, Kid: kid, Audience: cfg.Audience, Key: key, Now: cfg.Now}, hc).WithFastHTTP(), nil
}

// keyServiceHTTP builds the HTTP client to the key service: TLS verified
// against the configured CA, an optional client certificate, and a pool big
// enough that keep-alive connections are reused under load.
func keyServiceHTTP(cfg Config) (*http.Client, error) {
	hc := client.HTTPClient(cfg.KeyServiceInsecure)
	tr := hc.Transport.(*http.Transport)
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 256
	if cfg.KeyServiceCA != "" {
		pem, err := os.ReadFile(cfg.KeyServiceCA)
		if err != nil {
			return nil, fmt.Errorf("keyservice ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("keyservice ca: no certificate")
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if cfg.KeyServiceCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.KeyServiceCert, cfg.KeyServiceKey)
		if err != nil {
			return nil, fmt.Errorf("keyservice client certificate: %w", err)
		}
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	}
	return hc, nil
}

// Stores exposes the stores (demo setup, tests).
func (a *App) Stores() *Stores { return a.stores }

// Webhooks exposes the webhook service: the forward path emits its
// forward.succeeded and forward.failed through it.
func (a *App) Webhooks() *webhooks.Service { return a.hooks }

// Server exposes the HTTP server for tests.
func (a *App) Server() *web.Server { return a.server }

// Run listens on the configured address and serves until ctx is done.
func (a *App) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.cfg.Addr, err)
	}
	if a.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(a.cfg.TLSCert, a.cfg.TLSKey)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	return a.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then drains.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	for _, sw := range a.stores.sweepers {
		go sw(sctx)
	}
	hooksDone := make(chan struct{})
	go func() { a.hooks.Run(sctx); close(hooksDone) }()
	rewrapDone := make(chan struct{})
	go func() {
		defer close(rewrapDone)
		if a.rewrap != nil {
			a.rewrap.Run(sctx, time.Minute)
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- a.server.App().Listener(ln) }()
	if a.cfg.MetricsAddr != "" {
		go a.serveMetrics(sctx)
	}
	a.log.Info("gateway listening", "addr", ln.Addr().String(), "public_url", a.cfg.PublicURL, "store", a.cfg.Store)
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		a.log.Info("shutting down")
		err = a.server.App().ShutdownWithTimeout(15 * time.Second)
	}
	// The webhook worker finishes its attempts in flight before the stores
	// close; an attempt cut short is not counted and is retried after restart.
	stop()
	<-hooksDone
	<-rewrapDone // a pass saves its position before the stores close
	if cerr := a.audit.Close(); cerr != nil {
		a.log.Error("close audit log", "err", cerr)
	}
	if cerr := a.stores.Close(); cerr != nil {
		a.log.Error("close stores", "err", cerr)
	}
	return err
}

// serveMetrics serves Prometheus metrics on the internal address only: the
// public port answers shoppers and merchants, not scrapers.
func (a *App) serveMetrics(ctx context.Context) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.server.Metrics().Registry(), promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: a.cfg.MetricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("metrics listener", "addr", a.cfg.MetricsAddr, "err", err)
	}
}
