package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/secret"
	"github.com/blindgate/blindgate/keyservice/api"
	"github.com/blindgate/blindgate/keyservice/card"
	"github.com/blindgate/blindgate/keyservice/guard"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/replay"
	"github.com/blindgate/blindgate/keyservice/seal"
	"github.com/blindgate/blindgate/keyservice/sigauth"
	"github.com/blindgate/blindgate/keyservice/unwrap"
)

// App is a configured key service, ready to Run.
type App struct {
	cfg     Config
	log     *slog.Logger
	rdb     redis.UniversalClient
	audit   *audit.Log
	holder  *seal.Holder
	clients *sigauth.AllowList
	server  *api.Server
	watch   *watcher
}

// New builds the key service. It opens the audit log and the allow-list and,
// when configured to, unseals the keyring; it does not listen yet.
func New(cfg Config, log *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log}
	var (
		replays sigauth.ReplayCache
		limiter ratelimit.Limiter
		pinger  api.Pinger
		counter guard.Counter
	)
	if cfg.Redis.Addrs == RedisMemory {
		log.Warn("Redis is \"memory\": replay cache, rate limits and the enumeration guard live in this process only; run one instance, and use Redis in production")
		replays, limiter, counter = replay.NewMemory(), ratelimit.NewMemory(), guard.NewMemory(nil, 0)
	} else {
		rdb, err := redisx.New(cfg.Redis)
		if err != nil {
			return nil, err
		}
		a.rdb = rdb
		replays, limiter, pinger = replay.NewRedis(rdb, "bg:ks:jti:"), ratelimit.NewRedis(rdb, "bg:ks:rl:"), redisx.Pinger{C: rdb}
		counter = guard.NewRedis(rdb, "bg:ks:eg:")
	}
	clients, err := sigauth.LoadAllowList(cfg.ClientsPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// Nobody can call yet; `keyservice clients add` creates the file and
		// the watcher picks it up.
		log.Warn("no client allow-list yet: every signed request is refused until `keyservice clients add`", "clients", cfg.ClientsPath)
		clients = &sigauth.AllowList{}
	case err != nil:
		return nil, fmt.Errorf("load clients: %w", err)
	}
	a.clients = clients
	a.audit, err = audit.Open(cfg.AuditPath, audit.Options{})
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	a.holder = seal.New(cfg.KeyringPath, cfg.Shares)
	if err := a.unsealAtStart(); err != nil {
		_ = a.audit.Close()
		return nil, err
	}
	verifier := &sigauth.Verifier{Audience: cfg.Audience, Skew: cfg.Skew, Clients: clients, Replay: replays}
	limits := unwrap.DefaultLimits()
	limits.RevealActorShort.Rate, limits.RevealActorShort.Burst = cfg.RevealPerMinute, cfg.RevealPerMinute
	limits.RevealActorDaily.Rate, limits.RevealActorDaily.Burst = cfg.RevealPerDay, cfg.RevealPerDay
	limits.RevealClientShort.Rate, limits.RevealClientShort.Burst = cfg.RevealClientPerMinute, cfg.RevealClientPerMinute
	limits.RevealClientDaily.Rate, limits.RevealClientDaily.Burst = cfg.RevealClientPerDay, cfg.RevealClientPerDay
	limits.InspectPerClient.Rate, limits.InspectPerClient.Burst = cfg.InspectPerSecond, 2*cfg.InspectPerSecond
	limits.InspectClientDaily.Rate, limits.InspectClientDaily.Burst = cfg.InspectClientPerDay, cfg.InspectClientPerDay
	limits.InspectMerchantDaily.Rate, limits.InspectMerchantDaily.Burst = cfg.InspectMerchantPerDay, cfg.InspectMerchantPerDay
	limits.RefuseInspectVolume = cfg.InspectVolumeRefuse
	if cfg.MaskBIN8 {
		log.Warn("-mask-bin8: tokens show the first 8 digits of PANs of 16+ digits; document the business need (PCI DSS 3.4.1)")
	}
	svc := unwrap.New(a.holder, a.audit, limiter, log, unwrap.Config{
		Freshness: cfg.Freshness, Limits: limits, Masking: card.Masking{BIN8: cfg.MaskBIN8},
		Guard: unwrap.Guard{Counter: counter, Window: cfg.EnumerationWindow, Max: cfg.EnumerationMax},
	})
	a.server = api.New(api.Deps{
		Unwrap: svc, Verifier: verifier, Seal: a.holder, Audit: a.audit,
		Trail: audit.FileTrail(cfg.AuditPath), Redis: pinger, Log: log,
	})
	a.watch = &watcher{holder: a.holder, clients: clients, clientsPath: cfg.ClientsPath, audit: a.audit, log: log}
	return a, nil
}

func (a *App) unsealAtStart() error {
	switch {
	case a.cfg.DevUnseal:
		master, err := DevKeyring(a.cfg.KeyringPath)
		if err != nil {
			return err
		}
		defer clear(master)
		a.log.Warn("DEVELOPMENT MODE: keyring auto-unsealed with a master key stored beside it; never use -dev-auto-unseal with real cards", "keyring", a.cfg.KeyringPath)
		return a.holder.UnsealWithKey(master)
	case a.cfg.MasterKey != "":
		raw, err := secret.Resolve(a.cfg.MasterKey)
		if err != nil {
			return fmt.Errorf("master key: %w", err)
		}
		master, err := keyring.ParseMasterKey(string(raw))
		clear(raw)
		if err != nil {
			return fmt.Errorf("master key: %w", err)
		}
		defer clear(master)
		return a.holder.UnsealWithKey(master)
	default:
		a.log.Warn("key service is SEALED: submit key shares to POST /v1/sys/unseal (keyservice unseal)", "shares", a.cfg.Shares)
		return nil
	}
}

// DevKeyring opens or creates a development keyring whose master key sits in
// a file beside it. It exists so `blindgate demo` and compose can start with
// no ceremony; the warning above is the point.
func DevKeyring(path string) ([]byte, error) {
	keyPath := path + ".devkey"
	if b, err := os.ReadFile(keyPath); err == nil {
		return keyring.ParseMasterKey(string(b))
	}
	master, err := keyring.GenerateMasterKey()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("dev keyring %s exists without %s", path, keyPath)
	}
	kr, err := keyring.New(keyring.DefaultAlg)
	if err != nil {
		return nil, err
	}
	if err := keyring.Save(path, kr, master); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyPath, []byte(keyring.EncodeMasterKey(master)), 0o600); err != nil {
		return nil, err
	}
	return master, nil
}

// Handler exposes the HTTP server for tests and embedding.
func (a *App) Server() *api.Server { return a.server }

// Holder exposes the seal holder (tests, demo).
func (a *App) Holder() *seal.Holder { return a.holder }

// Run serves until ctx is cancelled, then drains in-flight requests.
func (a *App) Run(ctx context.Context) error {
	ln, err := a.Listen()
	if err != nil {
		return err
	}
	return a.Serve(ctx, ln)
}

// Listen opens the configured listener, with TLS unless dev HTTP is on.
func (a *App) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", a.cfg.Addr, err)
	}
	if a.cfg.DevHTTP {
		a.log.Warn("DEVELOPMENT MODE: plain HTTP; reveal answers carry card numbers in clear on the wire", "addr", ln.Addr().String())
		return ln, nil
	}
	tc, err := a.tlsConfig()
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return tls.NewListener(ln, tc), nil
}

func (a *App) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(a.cfg.TLSCert, a.cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if a.cfg.ClientCA != "" {
		pem, err := os.ReadFile(a.cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("client ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("client ca: no certificate found")
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Serve serves on ln until ctx is cancelled.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go a.watch.run(wctx, 2*time.Second)
	errc := make(chan error, 1)
	go func() { errc <- a.server.App().Listener(ln) }()
	a.log.Info("key service listening", "addr", ln.Addr().String(), "tls", !a.cfg.DevHTTP)
	select {
	case err := <-errc:
		a.close()
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down")
	err := a.server.App().ShutdownWithTimeout(15 * time.Second)
	a.close()
	return err
}

func (a *App) close() {
	if err := a.audit.Close(); err != nil {
		a.log.Error("close audit log", "err", err)
	}
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	a.holder.Seal()
}

// AuditStats reports the audit log's group-commit counters (appends, batches,
// fsyncs), for the benchmark harness and monitoring.
func (a *App) AuditStats() audit.Stats { return a.audit.Stats() }
