// Package app wires the key service together from its configuration: the
// sealed keyring, the client allow-list, the audit log, Redis (or the
// in-process stand-ins for a first run) and the HTTP server.
package app

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/envflag"
	"github.com/blindgate/blindgate/internal/passkey"

	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/secret"
	"github.com/blindgate/blindgate/keyservice/hsm"
	"github.com/blindgate/blindgate/keyservice/sigauth"
)

// Config is the key service's configuration. Every field has a flag and an
// environment variable (BLINDGATE_KS_<NAME>); defaults are the safe choice.
type Config struct {
	Addr        string
	TLSCert     string
	TLSKey      string
	ClientCA    string // optional: require client certificates signed by this CA
	DevHTTP     bool   // plain HTTP: reveal answers carry card numbers, so dev only
	KeyringPath string
	Shares      int
	MasterKey   string // env:/file: reference; unseals at start (no ceremony)
	DevUnseal   bool   // create/open a dev keyring with a dev master key file
	// HSM unseals with the master key a PKCS#11 token unwraps (the keyring
	// header names the key); needs a binary built with -tags hsm.
	HSM         hsm.Config
	ClientsPath string
	// Audience is the aud signed requests must carry; "" means the
	// keyring's deployment id, so each deployment has its own.
	Audience string
	// PublicURL lists (comma-separated) the URLs clients reach this service
	// at; a signed request's htu must name one. "" derives it from Addr.
	PublicURL string
	Skew      time.Duration
	AuditPath string
	// Signed checkpoints of the audit chain's head: every CheckpointEvery
	// records and every CheckpointInterval, copied to CheckpointsPath (an
	// append-only file the host operator should place or ship elsewhere).
	CheckpointsPath    string
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// AuditLog: the audit log's segments and recovery schedule.
	AuditLog        audit.LogFlags
	Freshness       time.Duration
	Redis           redisx.Config
	RevealPerMinute int
	RevealPerDay    int
	// Per-client limits: a whole client (the back office, a checkout
	// gateway) is capped too, so a stolen client key cannot reveal in bulk.
	RevealClientPerMinute int
	RevealClientPerDay    int
	InspectPerSecond      int
	// Unseal attempts per minute from one address and from all together
	// (in-process limits: a sealed service may have no Redis yet).
	UnsealIPPerMinute int
	UnsealPerMinute   int
	// Inspect volume per client and per merchant per day: alarms at 80% and
	// at exhaustion; a refusal only with InspectVolumeRefuse.
	InspectClientPerDay   int
	InspectMerchantPerDay int
	InspectVolumeRefuse   bool
	// The enumeration guard: more than EnumerationMax distinct cards with one
	// (merchant, first 6, last 4) within EnumerationWindow are refused.
	EnumerationWindow time.Duration
	EnumerationMax    int
	// DestinationsPath is the operator's forward destinations (keyservice
	// destinations add); a missing file means none: every forward is refused.
	DestinationsPath string
	// Forwards per second per merchant and per destination (burst: twice
	// the rate); a limiter that cannot answer refuses.
	ForwardMerchantPerSecond    int
	ForwardDestinationPerSecond int
	// Forwards per merchant and per destination per day: alarms at 80% and
	// at exhaustion, and a refusal past them unless ForwardVolumeAlarmOnly
	// (the zero value refuses: a forward sends the card out of the zone).
	ForwardMerchantPerDay    int
	ForwardDestinationPerDay int
	ForwardVolumeAlarmOnly   bool
	// EgressProxy is the CONNECT proxy (cmd/egress) forwards leave the key
	// zone through; empty dials destinations directly.
	EgressProxy string
	// MaskBIN8 shows the first 8 digits of PANs of 16+ digits (default 6).
	MaskBIN8 bool
	// BindLegacy makes a rewrap without a merchant binding issue one for
	// the merchant it names: for `blindgate rewrap -all` right after
	// upgrading, then off. While on, the rewrap key can bind any stored
	// card to any merchant (docs/SECURITY.md R11).
	BindLegacy bool
	// KEKMaxAge is the active KEK version's cryptoperiod: once it is this
	// old the service rotates by itself (keyservice/rotation). 0: rotation
	// by hand only.
	KEKMaxAge time.Duration
	// RevealApproval is how a reveal is approved: "passkey" (the default:
	// an assertion of the operator's passkey, approved in the key zone,
	// over the reveal's challenge) or "none" (a nonce only; the key service
	// takes the back office's word for the operator).
	RevealApproval string
	// WebAuthnRPID is the passkeys' relying party id: the back office's
	// host name (never an IP address); empty means the host of the first
	// of WebAuthnOrigins.
	WebAuthnRPID string
	// WebAuthnOrigins lists (comma-separated) the back office's origins, as
	// the operator's browser reports them in a passkey's client data:
	// https, or http on a loopback host. Required with passkey approval.
	WebAuthnOrigins string
	// PasskeysPath is the registry of operators' passkeys (`keyservice
	// passkeys`); empty means passkeys.json beside the client allow-list.
	PasskeysPath string
	LogLevel     string
}

// RedisMemory as the Redis address selects the in-process replay cache and
// limiter: one instance only, for first runs and the demo.
const RedisMemory = "memory"

// Flags registers the configuration's flags, with defaults from the environment.
func (c *Config) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", env.String("ADDR", "127.0.0.1:8443"), "listen address")
	fs.StringVar(&c.TLSCert, "tls-cert", env.String("TLS_CERT", ""), "TLS certificate file (PEM)")
	fs.StringVar(&c.TLSKey, "tls-key", env.String("TLS_KEY", ""), "TLS private key file (PEM)")
	fs.StringVar(&c.ClientCA, "client-ca", env.String("CLIENT_CA", ""), "CA file: require and verify client certificates (second factor beside signatures)")
	fs.BoolVar(&c.DevHTTP, "dev-insecure-http", env.Bool("DEV_INSECURE_HTTP", false), "serve plain HTTP (development only: reveal answers carry card numbers)")
	fs.StringVar(&c.KeyringPath, "keyring", env.String("KEYRING", "keyring.sealed"), "sealed keyring file")
	fs.IntVar(&c.Shares, "unseal-shares", env.Int("UNSEAL_SHARES", 1), "n-of-n shares needed to unseal a keyring whose header records no share set (made before threshold unseal); a share set's own threshold wins")
	fs.StringVar(&c.MasterKey, "master-key", env.String("MASTER_KEY", ""), "unseal at start with this master key reference (env:NAME or file:PATH)")
	fs.StringVar(&c.HSM.Module, "hsm-module", env.String("HSM_MODULE", ""), "HSM seal: PKCS#11 module path; the key service unseals at start with the master key the token unwraps (binary built with -tags hsm)")
	fs.StringVar(&c.HSM.TokenLabel, "hsm-token-label", env.String("HSM_TOKEN_LABEL", ""), "HSM seal: the token's label")
	fs.StringVar(&c.HSM.PIN, "hsm-pin", env.String("HSM_PIN", ""), "HSM seal: user PIN reference (env:NAME or file:PATH)")
	fs.BoolVar(&c.DevUnseal, "dev-auto-unseal", env.Bool("DEV_AUTO_UNSEAL", false), "development only: create or open the keyring with a master key kept beside it, unsealed at start")
	fs.StringVar(&c.ClientsPath, "clients", env.String("CLIENTS", "clients.json"), "allow-list of client keys and operations")
	fs.StringVar(&c.Audience, "audience", env.String("AUDIENCE", ""), "this key service's id (the aud of signed requests); empty: the keyring's deployment id (keyservice keys list)")
	fs.StringVar(&c.PublicURL, "public-url", env.String("PUBLIC_URL", ""), "URL(s) clients call this service at, comma-separated (the htu of signed requests); empty: derived from -addr")
	fs.DurationVar(&c.Skew, "skew", env.Duration("SKEW", 5*time.Second), "tolerated clock skew for signed requests")
	fs.StringVar(&c.AuditPath, "audit-log", env.String("AUDIT_LOG", "audit.log"), "hash-chained audit log file")
	fs.StringVar(&c.CheckpointsPath, "audit-checkpoints", env.String("AUDIT_CHECKPOINTS", ""), "append-only file receiving a copy of every signed audit checkpoint (default <audit-log>.checkpoints; put it on another disk or ship it off the host)")
	c.AuditLog.Register(fs, env)
	fs.IntVar(&c.CheckpointEvery, "audit-checkpoint-every", env.Int("AUDIT_CHECKPOINT_EVERY", 100), "sign the audit chain's head after this many records")
	fs.DurationVar(&c.CheckpointInterval, "audit-checkpoint-interval", env.Duration("AUDIT_CHECKPOINT_INTERVAL", time.Minute), "and at least this often while records arrive")
	fs.DurationVar(&c.Freshness, "freshness", env.Duration("FRESHNESS", 15*time.Minute), "max age of a card ciphertext at first use")
	fs.StringVar(&c.Redis.Addrs, "redis", env.String("REDIS", "127.0.0.1:6379"), "Redis address(es), comma-separated; \"memory\" for in-process (single instance, dev)")
	fs.StringVar(&c.Redis.MasterName, "redis-master", env.String("REDIS_MASTER", ""), "Redis Sentinel master name")
	fs.StringVar(&c.Redis.PasswordRef, "redis-password", env.String("REDIS_PASSWORD", ""), "Redis password reference (env:NAME or file:PATH)")
	fs.IntVar(&c.Redis.DB, "redis-db", env.Int("REDIS_DB", 0), "Redis database")
	fs.BoolVar(&c.Redis.TLS, "redis-tls", env.Bool("REDIS_TLS", false), "use TLS to Redis")
	fs.DurationVar(&c.Redis.Timeout, "redis-timeout", env.Duration("REDIS_TIMEOUT", redisx.DefaultTimeout), "bound on every Redis call, retries included (10ms-30s); past it the request is refused 503 unavailable")
	c.Redis.Unbatched = !env.Bool("REDIS_BATCH", true)
	fs.Var(redisx.BatchFlag(&c.Redis.Unbatched), "redis-batch", "share Redis round trips between concurrent requests' scripts (single node and Sentinel; a lone script is sent at once)")
	fs.IntVar(&c.RevealPerMinute, "reveal-per-minute", env.Int("REVEAL_PER_MINUTE", 5), "reveals per actor per minute")
	fs.IntVar(&c.RevealPerDay, "reveal-per-day", env.Int("REVEAL_PER_DAY", 50), "reveals per actor per day")
	fs.IntVar(&c.RevealClientPerMinute, "reveal-client-per-minute", env.Int("REVEAL_CLIENT_PER_MINUTE", 60), "reveals per client per minute (all its actors)")
	fs.IntVar(&c.RevealClientPerDay, "reveal-client-per-day", env.Int("REVEAL_CLIENT_PER_DAY", 1000), "reveals per client per day (all its actors)")
	fs.IntVar(&c.InspectPerSecond, "inspect-per-second", env.Int("INSPECT_PER_SECOND", 2000), "inspects per client per second")
	fs.IntVar(&c.InspectClientPerDay, "inspect-client-per-day", env.Int("INSPECT_CLIENT_PER_DAY", 1_000_000), "inspects per client per day before an alarm (80% and 100%)")
	fs.IntVar(&c.InspectMerchantPerDay, "inspect-merchant-per-day", env.Int("INSPECT_MERCHANT_PER_DAY", 50_000), "inspects per merchant per day before an alarm (80% and 100%)")
	fs.BoolVar(&c.InspectVolumeRefuse, "inspect-volume-refuse", env.Bool("INSPECT_VOLUME_REFUSE", false), "refuse inspects past the daily client and merchant volumes (default: alarm only)")
	fs.DurationVar(&c.EnumerationWindow, "enumeration-window", env.Duration("ENUMERATION_WINDOW", 24*time.Hour), "enumeration guard window (docs/enumeration-guard.md)")
	fs.IntVar(&c.EnumerationMax, "enumeration-max", env.Int("ENUMERATION_MAX", 8), "distinct cards per merchant, first 6 and last 4 within the window before refusing")
	fs.StringVar(&c.DestinationsPath, "destinations", env.String("DESTINATIONS", "destinations.json"), "forward destinations file (keyservice destinations add); missing: no destinations, every forward refused")
	fs.IntVar(&c.ForwardMerchantPerSecond, "forward-merchant-per-second", env.Int("FORWARD_MERCHANT_PER_SECOND", 20), "forwards per merchant per second (burst twice that)")
	fs.IntVar(&c.ForwardMerchantPerDay, "forward-merchant-per-day", env.Int("FORWARD_MERCHANT_PER_DAY", 50_000), "forwards per merchant per day: an alarm at 80% and 100%, refused past it")
	fs.IntVar(&c.ForwardDestinationPerDay, "forward-destination-per-day", env.Int("FORWARD_DESTINATION_PER_DAY", 500_000), "forwards per destination per day, all merchants: an alarm at 80% and 100%, refused past it")
	fs.BoolVar(&c.ForwardVolumeAlarmOnly, "forward-volume-alarm-only", env.Bool("FORWARD_VOLUME_ALARM_ONLY", false), "let forwards past the daily merchant and destination volumes through, alarmed (default: refuse)")
	fs.StringVar(&c.EgressProxy, "egress-proxy", env.String("EGRESS_PROXY", ""), "forward through this HTTP CONNECT proxy (http://host:port, cmd/egress); empty: dial destinations directly")
	fs.IntVar(&c.ForwardDestinationPerSecond, "forward-destination-per-second", env.Int("FORWARD_DESTINATION_PER_SECOND", 100), "forwards per destination per second, all merchants (burst twice that)")
	fs.BoolVar(&c.BindLegacy, "bind-legacy", env.Bool("BIND_LEGACY", false), "migration window: a rewrap without a merchant binding gets one for the merchant it names (run `blindgate rewrap -all`, then turn off)")
	fs.BoolVar(&c.MaskBIN8, "mask-bin8", env.Bool("MASK_BIN8", false), "show the first 8 digits of PANs of 16+ digits (PCI DSS 3.4.1 business need; default first 6)")
	fs.IntVar(&c.UnsealIPPerMinute, "unseal-ip-per-minute", env.Int("UNSEAL_IP_PER_MINUTE", 5), "unseal attempts per source address per minute")
	fs.IntVar(&c.UnsealPerMinute, "unseal-per-minute", env.Int("UNSEAL_PER_MINUTE", 30), "unseal attempts per minute from all addresses together")
	fs.DurationVar(&c.KEKMaxAge, "kek-max-age", env.Duration("KEK_MAX_AGE", 0), "cryptoperiod of the active KEK: rotate by itself once it is this old (e.g. 2160h; needs a writable keyring file, shared by all replicas); 0: rotate by hand only")
	fs.StringVar(&c.RevealApproval, "reveal-approval", env.String("REVEAL_APPROVAL", "passkey"), "how a reveal is approved: passkey (the operator's passkey, approved in the key zone with `keyservice passkeys approve`) or none (the back office's word)")
	fs.StringVar(&c.WebAuthnRPID, "webauthn-rp-id", env.String("WEBAUTHN_RP_ID", ""), "passkeys' relying party id: the back office's host name; empty: the host of the first -webauthn-origins")
	fs.StringVar(&c.WebAuthnOrigins, "webauthn-origins", env.String("WEBAUTHN_ORIGINS", ""), "the back office's origins (comma-separated, https or http on loopback); required with -reveal-approval passkey")
	fs.StringVar(&c.PasskeysPath, "passkeys", env.String("PASSKEYS", ""), "registry of operators' passkeys (keyservice passkeys); empty: passkeys.json beside -clients")
	fs.StringVar(&c.LogLevel, "log-level", env.String("LOG_LEVEL", "info"), "debug, info, warn or error")
}

// Validate names the first bad field and fills the defaults of fields added
// after callers that build a Config by hand were written.
func (c *Config) Validate() error {
	if c.InspectClientPerDay == 0 {
		c.InspectClientPerDay = 1_000_000
	}
	if c.InspectMerchantPerDay == 0 {
		c.InspectMerchantPerDay = 50_000
	}
	if c.EnumerationWindow == 0 {
		c.EnumerationWindow = 24 * time.Hour
	}
	if c.EnumerationMax == 0 {
		c.EnumerationMax = 8
	}
	if c.UnsealIPPerMinute == 0 {
		c.UnsealIPPerMinute = 5
	}
	if c.UnsealPerMinute == 0 {
		c.UnsealPerMinute = 30
	}
	if c.CheckpointsPath == "" && c.AuditPath != "" {
		c.CheckpointsPath = c.AuditPath + ".checkpoints"
	}
	if c.DestinationsPath == "" && c.ClientsPath != "" {
		c.DestinationsPath = filepath.Join(filepath.Dir(c.ClientsPath), "destinations.json")
	}
	if c.ForwardMerchantPerSecond == 0 {
		c.ForwardMerchantPerSecond = 20
	}
	if c.ForwardDestinationPerSecond == 0 {
		c.ForwardDestinationPerSecond = 100
	}
	if c.ForwardMerchantPerDay == 0 {
		c.ForwardMerchantPerDay = 50_000
	}
	if c.ForwardDestinationPerDay == 0 {
		c.ForwardDestinationPerDay = 500_000
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = 100
	}
	if c.RevealApproval == "" {
		c.RevealApproval = "passkey"
	}
	if c.PasskeysPath == "" && c.ClientsPath != "" {
		c.PasskeysPath = filepath.Join(filepath.Dir(c.ClientsPath), "passkeys.json")
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Minute
	}
	switch {
	case c.Addr == "":
		return errors.New("config: addr is empty")
	case !c.DevHTTP && (c.TLSCert == "" || c.TLSKey == ""):
		return errors.New("config: tls-cert and tls-key are required (or -dev-insecure-http for development)")
	case c.DevHTTP && c.ClientCA != "":
		return errors.New("config: client-ca needs TLS")
	case c.KeyringPath == "":
		return errors.New("config: keyring is empty")
	case c.Shares < 1 || c.Shares > 16:
		return errors.New("config: unseal-shares must be 1-16")
	case c.ClientsPath == "":
		return errors.New("config: clients is empty")
	case c.Skew < 0 || c.Skew > time.Minute:
		return errors.New("config: skew must be 0-60s")
	case c.AuditPath == "":
		return errors.New("config: audit-log is empty")
	case c.CheckpointsPath == c.AuditPath:
		return errors.New("config: audit-checkpoints must not be the audit log")
	case c.AuditLog.Validate() != nil:
		return c.AuditLog.Validate()
	case c.CheckpointEvery < 1 || c.CheckpointEvery > 100000:
		return errors.New("config: audit-checkpoint-every must be 1-100000")
	case c.CheckpointInterval < time.Second || c.CheckpointInterval > 24*time.Hour:
		return errors.New("config: audit-checkpoint-interval must be 1s-24h")
	case c.Freshness < time.Minute || c.Freshness > 24*time.Hour:
		return errors.New("config: freshness must be 1m-24h")
	case c.RevealPerMinute < 1 || c.RevealPerDay < c.RevealPerMinute:
		return errors.New("config: reveal-per-minute must be >= 1 and <= reveal-per-day")
	case c.RevealClientPerMinute < 1 || c.RevealClientPerDay < c.RevealClientPerMinute:
		return errors.New("config: reveal-client-per-minute must be >= 1 and <= reveal-client-per-day")
	case c.InspectPerSecond < 1:
		return errors.New("config: inspect-per-second must be >= 1")
	case c.InspectClientPerDay < 1 || c.InspectMerchantPerDay < 1:
		return errors.New("config: inspect-client-per-day and inspect-merchant-per-day must be >= 1")
	case c.EnumerationWindow < time.Minute || c.EnumerationWindow > 30*24*time.Hour:
		return errors.New("config: enumeration-window must be 1m-720h")
	case c.EnumerationMax < 2 || c.EnumerationMax > 1000:
		return errors.New("config: enumeration-max must be 2-1000")
	case c.ForwardMerchantPerSecond < 1 || c.ForwardMerchantPerSecond > 10000:
		return errors.New("config: forward-merchant-per-second must be 1-10000")
	case c.ForwardDestinationPerSecond < 1 || c.ForwardDestinationPerSecond > 10000:
		return errors.New("config: forward-destination-per-second must be 1-10000")
	case c.ForwardMerchantPerDay < c.ForwardMerchantPerSecond || c.ForwardMerchantPerDay > 100_000_000:
		return errors.New("config: forward-merchant-per-day must be >= forward-merchant-per-second and <= 100000000")
	case c.ForwardDestinationPerDay < c.ForwardDestinationPerSecond || c.ForwardDestinationPerDay > 100_000_000:
		return errors.New("config: forward-destination-per-day must be >= forward-destination-per-second and <= 100000000")
	case c.EgressProxy != "" && !validProxyURL(c.EgressProxy):
		return errors.New("config: egress-proxy must be http://host:port with nothing else")
	case c.UnsealIPPerMinute < 1 || c.UnsealPerMinute < c.UnsealIPPerMinute:
		return errors.New("config: unseal-ip-per-minute must be >= 1 and <= unseal-per-minute")
	case c.KEKMaxAge != 0 && (c.KEKMaxAge < 24*time.Hour || c.KEKMaxAge > 10*365*24*time.Hour):
		// Under a day, the rewrap and the retirement after each rotation
		// could not keep up; a cryptoperiod is counted in months.
		return errors.New("config: kek-max-age must be 0 (off) or 24h-87600h")
	}
	if _, err := c.Origins(""); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	switch c.RevealApproval {
	case "passkey":
		if c.WebAuthnOrigins == "" {
			return errors.New("config: webauthn-origins is required with -reveal-approval passkey (the back office's origins, e.g. https://backoffice.example.com)")
		}
	case "none":
	default:
		return errors.New("config: reveal-approval must be passkey or none")
	}
	if c.WebAuthnOrigins != "" {
		if _, err := c.RP(); err != nil {
			return fmt.Errorf("config: webauthn-origins: %w", err)
		}
	}
	if err := secret.Validate(c.MasterKey); err != nil {
		return fmt.Errorf("config: master-key: %w", err)
	}
	if err := c.HSM.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if c.HSM.Enabled() && (c.DevUnseal || c.MasterKey != "") {
		return errors.New("config: hsm-module excludes master-key and dev-auto-unseal: choose one way to unseal")
	}
	if c.Redis.Addrs != RedisMemory {
		if err := c.Redis.Validate(); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}

// Origins are the origins a signed request's htu may name: PublicURL's, or
// without it the listen address's (listenAddr: the bound address, "" for
// Addr), where a loopback address also answers as localhost. A wildcard
// address names no host clients use, so it needs PublicURL.
func (c *Config) Origins(listenAddr string) ([]string, error) {
	if c.PublicURL != "" {
		o, err := sigauth.ParseOrigins(c.PublicURL)
		if err != nil {
			return nil, fmt.Errorf("public-url: %w", err)
		}
		return o, nil
	}
	if listenAddr == "" {
		listenAddr = c.Addr
	}
	host, port, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return nil, fmt.Errorf("addr: %w", err)
	}
	ip := net.ParseIP(host)
	if host == "" || (ip != nil && ip.IsUnspecified()) {
		return nil, fmt.Errorf("public-url is required when addr %s listens on every interface: give the URL clients call, e.g. https://keyservice:8443", listenAddr)
	}
	scheme := "https"
	if c.DevHTTP {
		scheme = "http"
	}
	hosts := []string{host}
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		hosts = []string{"127.0.0.1", "localhost", "::1"}
	}
	var urls []string
	for _, h := range hosts {
		urls = append(urls, scheme+"://"+net.JoinHostPort(h, port))
	}
	return sigauth.ParseOrigins(strings.Join(urls, ","))
}

// RP is the passkeys' relying party: WebAuthnOrigins, and WebAuthnRPID or
// else the host of the first origin.
func (c *Config) RP() (passkey.RP, error) {
	var rp passkey.RP
	for _, o := range strings.Split(c.WebAuthnOrigins, ",") {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			rp.Origins = append(rp.Origins, o)
		}
	}
	rp.ID = c.WebAuthnRPID
	if rp.ID == "" && len(rp.Origins) > 0 {
		u, err := url.Parse(rp.Origins[0])
		if err != nil {
			return rp, fmt.Errorf("origin %q: %w", rp.Origins[0], err)
		}
		rp.ID = u.Hostname()
	}
	return rp, rp.Validate()
}

// env reads BLINDGATE_KS_<NAME> defaults.
const env = envflag.Env("BLINDGATE_KS_")

// DevConfig is a development key service kept in dir: plain HTTP on a free
// loopback port, a dev-unsealed keyring, the in-process stand-ins for Redis,
// the default limits and passkey approval for a back office at
// http://localhost:8080. It passes Validate; tests and local tools start
// from it and change what they need.
func DevConfig(dir string) Config {
	p := func(name string) string { return filepath.Join(dir, name) }
	return Config{
		Addr: "127.0.0.1:0", DevHTTP: true, KeyringPath: p("keyring.sealed"), Shares: 1,
		DevUnseal: true, ClientsPath: p("clients.json"), Audience: "blindgate-keyservice",
		Skew: 5 * time.Second, AuditPath: p("audit.log"), Freshness: 15 * time.Minute,
		RevealPerMinute: 5, RevealPerDay: 50, RevealClientPerMinute: 60, RevealClientPerDay: 1000, InspectPerSecond: 2000,
		LogLevel: "error", Redis: redisx.Config{Addrs: RedisMemory},
		RevealApproval: "passkey", WebAuthnOrigins: "http://localhost:8080",
	}
}

// validProxyURL accepts http://host:port only: no credentials (they would
// sit in the process list) and no path, which CONNECT has no use for.
func validProxyURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "http" && u.Hostname() != "" && u.Port() != "" && u.User == nil &&
		(u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == ""
}
