package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/secret"
	"github.com/blindgate/blindgate/keyservice/admit"
	"github.com/blindgate/blindgate/keyservice/api"
	"github.com/blindgate/blindgate/keyservice/card"
	"github.com/blindgate/blindgate/keyservice/destinations"
	"github.com/blindgate/blindgate/keyservice/forward"
	"github.com/blindgate/blindgate/keyservice/guard"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/nonce"
	"github.com/blindgate/blindgate/keyservice/passkeys"
	"github.com/blindgate/blindgate/keyservice/replay"
	"github.com/blindgate/blindgate/keyservice/rotation"
	"github.com/blindgate/blindgate/keyservice/seal"
	"github.com/blindgate/blindgate/keyservice/sigauth"
	"github.com/blindgate/blindgate/keyservice/unwrap"
)

// App is a configured key service, ready to Run.
type App struct {
	cfg      Config
	verifier *sigauth.Verifier
	log      *slog.Logger
	rdb      redis.UniversalClient
	audit    *audit.Log
	holder   *seal.Holder
	clients  *sigauth.AllowList
	dests    *destinations.List
	server   *api.Server
	watch    *watcher
	rotator  *rotation.Rotator   // nil without -kek-max-age
	ckpt     *audit.Checkpointer // while serving
	hsm      *hsmUnsealer        // with -hsm-module
}

// New builds the key service. It opens the audit log and the allow-list and,
// when configured to, unseals the keyring; it does not listen yet.
func New(cfg Config, log *slog.Logger) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log}
	// What New has opened is closed when it fails after: the audit log and
	// the Redis client, with its script flushers.
	defer func() {
		if err == nil {
			return
		}
		if a.audit != nil {
			_ = a.audit.Close()
		}
		if a.rdb != nil {
			_ = a.rdb.Close()
		}
	}()
	var (
		replays sigauth.ReplayCache
		limiter ratelimit.Limiter
		pinger  api.Pinger
		counter guard.Counter
		idem    forward.Store
		nonces  nonce.Store
	)
	if cfg.Redis.Addrs == RedisMemory {
		log.Warn("Redis is \"memory\": replay cache, rate limits and the enumeration guard live in this process only; run one instance, and use Redis in production")
		replays, limiter, counter = replay.NewMemory(), ratelimit.NewMemory(), guard.NewMemory(nil, 0)
		idem, nonces = forward.NewMemory(0, nil), nonce.NewMemory(nil, 0)
	} else {
		rdb, err := redisx.New(cfg.Redis)
		if err != nil {
			return nil, err
		}
		a.rdb = rdb
		replays, limiter, pinger = replay.NewRedis(rdb, "bg:ks:jti:"), ratelimit.NewRedis(rdb, "bg:ks:rl:"), redisx.Pinger{C: rdb, Key: "bg:ks:ready"}
		counter = guard.NewRedis(rdb, "bg:ks:eg:")
		idem = forward.NewRedis(rdb, "bg:ks:fwd:idem:", 0)
		nonces = nonce.NewRedis(rdb, "bg:ks:nonce:")
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
	if a.dests, err = loadDestinations(cfg.DestinationsPath, log); err != nil {
		return nil, err
	}
	a.audit, err = audit.Open(cfg.AuditPath, cfg.AuditLog.Apply(audit.Options{Logger: log}))
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	a.holder = seal.New(cfg.KeyringPath, cfg.Shares)
	if cfg.HSM.Enabled() {
		a.hsm = &hsmUnsealer{cfg: cfg.HSM, path: cfg.KeyringPath, holder: a.holder, audit: a.audit, log: log}
	}
	if err := a.unsealAtStart(); err != nil {
		return nil, err
	}
	audience, err := a.audience()
	if err != nil {
		return nil, err
	}
	// With a port of 0 the origins are known only once listening (Serve).
	origins, _ := cfg.Origins("")
	verifier := &sigauth.Verifier{Audience: audience, Origins: origins, Skew: cfg.Skew, Clients: clients, Replay: replays}
	a.verifier = verifier
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
	if cfg.BindLegacy {
		const why = "-bind-legacy: a rewrap without a merchant binding gets one for the merchant it names; any holder of the rewrap key can bind any stored card to any merchant. Run `blindgate rewrap -all` and restart without it"
		log.Warn("MIGRATION MODE: " + why)
		if _, err := a.audit.Append(context.Background(), audit.Event{Event: audit.EventAlarm, Actor: "keyservice", Outcome: audit.OutcomeFailure, Reason: why, Code: "bind_legacy"}); err != nil {
			return nil, fmt.Errorf("audit -bind-legacy: %w", err)
		}
	}
	// An inspect's jti claim and its limits, a reveal's jti claim and its
	// nonce's take: one Redis round trip each.
	adm := admit.New(replays, limiter)
	approval, err := a.approval(nonces, limiter, adm)
	if err != nil {
		return nil, err
	}
	svc := unwrap.New(a.holder, a.audit, limiter, log, unwrap.Config{
		BindLegacy: cfg.BindLegacy, Approver: approval,
		Freshness: cfg.Freshness, Limits: limits, Masking: card.Masking{BIN8: cfg.MaskBIN8},
		Guard: unwrap.Guard{Counter: counter, Window: cfg.EnumerationWindow, Max: cfg.EnumerationMax},
		Admit: adm,
	})
	sender := forward.NewSender()
	if cfg.EgressProxy != "" {
		// Validate checked the URL; the key zone has no other way out.
		sender.EgressProxy, _ = url.Parse(cfg.EgressProxy)
		log.Info("forwards leave through the egress proxy", "proxy", sender.EgressProxy.Host)
	}
	fwd, err := forward.New(forward.Config{
		Destinations: a.dests, Opener: svc, Sender: sender, Audit: a.audit, Limiter: limiter,
		Limits: forwardLimits(cfg), Idempotency: idem, Log: log,
	})
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	ul := seal.DefaultCeremonyLimits()
	ul.PerIP.Rate, ul.PerIP.Burst = cfg.UnsealIPPerMinute, cfg.UnsealIPPerMinute
	ul.Global.Rate, ul.Global.Burst = cfg.UnsealPerMinute, cfg.UnsealPerMinute
	ceremony := seal.NewCeremony(a.holder, a.audit, ratelimit.NewMemory(), ul, log)
	a.server = api.New(api.Deps{
		Unwrap: svc, Forward: fwd, Passkeys: approval, Verifier: verifier, Audience: audience, Seal: a.holder, Unseal: ceremony, Audit: a.audit,
		Trail: audit.FileTrail(cfg.AuditPath), Redis: pinger, Log: log,
	})
	if cfg.KEKMaxAge > 0 {
		rc := rotation.Config{MaxAge: cfg.KEKMaxAge, Audit: a.audit, Log: log}
		if a.rdb != nil {
			rc.Locker = rotation.RedisLocker{RDB: a.rdb}
		}
		if a.rotator, err = rotation.New(a.holder, rc); err != nil {
			return nil, err
		}
		log.Info("scheduled KEK rotation on: the active version is replaced once it is -kek-max-age old; every replica must share this keyring file", "kek_max_age", cfg.KEKMaxAge, "keyring", cfg.KeyringPath)
	}
	a.watch = &watcher{hsm: a.hsm, holder: a.holder, clients: clients, clientsPath: cfg.ClientsPath, dests: a.dests, destsPath: cfg.DestinationsPath,
		passkeys: approval.Registry(), audit: a.audit, log: log}
	return a, nil
}

// approval is the reveal approval: the passkey registry, the relying
// party, the nonce store, and the admission that claims a reveal's jti
// with its nonce's take. Running without passkey approval is a trust
// downgrade, so it is logged and audited at every start.
func (a *App) approval(nonces nonce.Store, limiter ratelimit.Limiter, adm admit.Admitter) (*passkeys.Service, error) {
	reg, err := passkeys.Open(a.cfg.PasskeysPath)
	if err != nil {
		return nil, fmt.Errorf("passkeys: %w", err)
	}
	var v *passkey.Verifier
	if a.cfg.WebAuthnOrigins != "" {
		rp, err := a.cfg.RP()
		if err != nil {
			return nil, fmt.Errorf("webauthn: %w", err)
		}
		if v, err = passkey.New(rp); err != nil {
			return nil, fmt.Errorf("webauthn: %w", err)
		}
		a.log.Info("reveals are approved with operators' passkeys", "rp_id", rp.ID, "origins", rp.Origins, "passkeys", a.cfg.PasskeysPath, "approval", a.cfg.RevealApproval)
	}
	if a.cfg.RevealApproval == passkeys.ModeNone {
		const why = "-reveal-approval none: reveals need no operator passkey; the key service takes the back office's word for who asks (cards still leave only encrypted to the operator's browser key)"
		a.log.Warn(why)
		if _, err := a.audit.Append(context.Background(), audit.Event{Event: audit.EventAlarm, Actor: "keyservice", Outcome: audit.OutcomeFailure, Reason: why, Code: "reveal_approval_none"}); err != nil {
			return nil, fmt.Errorf("audit -reveal-approval none: %w", err)
		}
	}
	// A client's challenges follow its reveal limit: ten nonces per reveal
	// it may make leave room for retries and enrolments, and no more.
	perMinute := 10 * a.cfg.RevealClientPerMinute
	challenge := ratelimit.Limit{Name: passkeys.DefaultChallengeLimit.Name, Rate: perMinute, Period: time.Minute,
		Burst: max(passkeys.DefaultChallengeLimit.Burst, perMinute/3)}
	return passkeys.New(passkeys.Config{Mode: a.cfg.RevealApproval, Registry: reg, Nonces: nonces, Verifier: v, Audit: a.audit, Log: a.log,
		Limiter: limiter, ChallengeLimit: challenge, Admit: adm})
}

// loadDestinations reads the forward destinations. A missing file is no
// destinations (every forward refused) until `keyservice destinations add`
// creates it and the watcher picks it up; a bad file stops the start.
func loadDestinations(path string, log *slog.Logger) (*destinations.List, error) {
	l, err := destinations.Load(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		log.Info("no forward destinations: every forward is refused until `keyservice destinations add`", "destinations", path)
		return destinations.New(filepath.Dir(path)), nil
	case err != nil:
		return nil, fmt.Errorf("load destinations: %w", err)
	}
	return l, nil
}

// forwardLimits are forward.DefaultLimits at the configured rates.
func forwardLimits(cfg Config) forward.Limits {
	l := forward.DefaultLimits()
	l.PerMerchant.Rate, l.PerMerchant.Burst = cfg.ForwardMerchantPerSecond, 2*cfg.ForwardMerchantPerSecond
	l.PerDestination.Rate, l.PerDestination.Burst = cfg.ForwardDestinationPerSecond, 2*cfg.ForwardDestinationPerSecond
	l.MerchantDaily.Rate, l.MerchantDaily.Burst = cfg.ForwardMerchantPerDay, cfg.ForwardMerchantPerDay
	l.DestinationDaily.Rate, l.DestinationDaily.Burst = cfg.ForwardDestinationPerDay, cfg.ForwardDestinationPerDay
	l.DailyAlarmOnly = cfg.ForwardVolumeAlarmOnly
	return l
}

// audience is -audience or else the keyring's deployment id, read from the
// sealed file's header (the service may still be sealed). The header is
// authenticated at unseal: an altered id makes unsealing fail, so a
// service started on a forged id never decrypts.
//
// The gateway is given this value (-keyservice-audience) rather than
// fetching it from an endpoint at start: a configured value needs no
// bootstrap trust in whatever answers at the key service's URL, adds no
// endpoint and no start-up ordering, and a mismatch fails closed (401).
func (a *App) audience() (string, error) {
	if a.cfg.Audience != "" {
		return a.cfg.Audience, nil
	}
	dep, err := keyring.ReadDeployment(a.cfg.KeyringPath)
	if err != nil {
		return "", fmt.Errorf("audience: no -audience and the keyring's deployment id cannot be read (run `keyservice keys init` first): %w", err)
	}
	if dep == "" {
		return "", errors.New("audience: the keyring predates deployment ids; set -audience (it was blindgate-keyservice by default)")
	}
	return dep, nil
}

// Audience is the aud signed requests must carry.
func (a *App) Audience() string { return a.verifier.Audience }

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
	case a.hsm != nil:
		// A token that cannot answer now leaves the service sealed (shares
		// still unseal it); the watcher retries.
		_ = a.hsm.unseal(context.Background())
		return nil
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
		p := a.holder.Progress()
		a.log.Warn("key service is SEALED: submit key shares to POST /v1/sys/unseal (keyservice unseal)", "threshold", p.Need, "total", p.Total, "scheme", p.Scheme)
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

// UnsealWithHSM asks the HSM for the master key now (what the watcher does
// while sealed or after a master rotation); an error without -hsm-module.
func (a *App) UnsealWithHSM(ctx context.Context) error {
	if a.hsm == nil {
		return errors.New("no -hsm-module configured")
	}
	return a.hsm.unseal(ctx)
}

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
		a.log.Warn("DEVELOPMENT MODE: plain HTTP; signed requests and answers (masked cards, reveal answers encrypted to browser keys) travel unencrypted", "addr", ln.Addr().String())
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
	if a.cfg.PublicURL == "" {
		// The bound address: right even when Addr asked for port 0.
		origins, err := a.cfg.Origins(ln.Addr().String())
		if err != nil {
			return err
		}
		a.verifier.Origins = origins // before the first request is served
	}
	ckpt, err := audit.StartCheckpoints(a.audit, auditSigner{a.holder}, audit.CheckpointOptions{
		Every: a.cfg.CheckpointEvery, Interval: a.cfg.CheckpointInterval, Export: a.cfg.CheckpointsPath, Logger: a.log,
	})
	if err != nil {
		_ = ln.Close()
		a.close()
		return err
	}
	a.ckpt = ckpt
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go a.watch.run(wctx, 2*time.Second)
	if a.rotator != nil {
		go a.rotator.Run(wctx, time.Minute)
	}
	errc := make(chan error, 1)
	go func() { errc <- a.server.App().Listener(ln) }()
	a.log.Info("key service listening", "addr", ln.Addr().String(), "tls", !a.cfg.DevHTTP, "audience", a.verifier.Audience, "public_urls", a.verifier.Origins)
	select {
	case err := <-errc:
		a.close()
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down")
	err = a.server.App().ShutdownWithTimeout(15 * time.Second)
	a.close()
	return err
}

func (a *App) close() {
	if a.ckpt != nil {
		// The last checkpoint needs the audit key: before the keyring is sealed.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := a.ckpt.Close(ctx); err != nil {
			a.log.Error("final audit checkpoint", "err", err)
		}
		cancel()
	}
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

// RedisBatching reports how many Lua scripts went to Redis and in how many
// round trips (redisx's batching), and false when they are not batched.
func (a *App) RedisBatching() (redisx.BatchStats, bool) { return redisx.Batching(a.rdb) }

// auditSigner signs audit checkpoints with the unsealed keyring's audit key;
// while sealed it cannot, and checkpoints wait.
type auditSigner struct{ h *seal.Holder }

var _ audit.CheckpointSigner = auditSigner{}

func (s auditSigner) SignCheckpoint(msg []byte) (string, []byte, error) {
	kr, err := s.h.Keyring()
	if err != nil {
		return "", nil, err
	}
	pub := kr.AuditPublicKey()
	if pub == nil {
		return "", nil, keyring.ErrNoAuditKey
	}
	sig, err := kr.SignAudit(msg)
	if err != nil {
		return "", nil, err
	}
	return audit.Ed25519KeyID(pub), sig, nil
}
