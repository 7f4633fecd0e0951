// Package app wires the gateway together from its configuration: stores
// (Redis in production, one bbolt file for first runs), the signed
// key-service clients, the checkout ingest and the HTTP server.
package app

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/blindgate/blindgate/gateway/clientip"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/envflag"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/secret"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"

	"github.com/blindgate/blindgate/internal/redisx"
)

// Config is the gateway's configuration. Every field has a flag and an
// environment variable (BLINDGATE_GW_<NAME>).
type Config struct {
	Addr        string
	MetricsAddr string // internal listener for /metrics; empty disables it
	PublicURL   string
	TLSCert     string
	TLSKey      string
	BehindTLS   bool   // a TLS-terminating proxy is in front: HSTS and Secure cookies
	ProxyHeader string // header carrying the client IP when behind a proxy
	// TrustedProxies lists (comma-separated CIDRs) the proxies whose
	// ProxyHeader hops are believed; required with ProxyHeader.
	TrustedProxies string
	// LoginNameKey (env:/file: reference) keys the hash that stands for an
	// unknown login name in the audit log and the lockout store; empty: a
	// random key per start (lockouts of unknown names are then per process).
	LoginNameKey string

	Store    string // "redis" or "bolt"
	BoltPath string
	Redis    redisx.Config

	KeyServiceURL      string
	KeyServiceCA       string // CA to verify the key service's certificate
	KeyServiceInsecure bool   // dev only: skip certificate verification
	KeyServiceCert     string // client certificate (mTLS), optional
	KeyServiceKey      string
	Audience           string
	// KeyServiceSkew is the clock difference with the key service beyond
	// which /readyz fails keyservice_clock: the key service's -skew.
	KeyServiceSkew     time.Duration
	CheckoutClientID   string
	CheckoutKeyFile    string // private JWK for inspect/rewrap
	BackofficeClientID string
	BackofficeKeyFile  string // private JWK for reveal/audit (optional: no back-office reveal without it)
	ForwardClientID    string
	ForwardKeyFile     string // private JWK for forward (optional: no POST /v1/tokens/{id}/forward without it)

	JWKSRefresh time.Duration // how often the public KEK set is re-fetched (rotation reaches pages this fast)
	AuditPath   string
	AuditLog    audit.LogFlags // segments and recovery schedule
	CVCTTL      time.Duration
	SubmitPerIP int // per minute
	LogLevel    string

	// OperatorMFA is the back-office login's second factor: totp, passkey
	// or any (the default: whichever the operator has).
	OperatorMFA string
	// BackofficeURL is the origin operators open the back office at, the
	// origin of their passkeys; empty: PublicURL.
	BackofficeURL string
	// WebAuthnRPID is the passkeys' relying party id; empty: the host of
	// BackofficeURL. The key service's -webauthn-rp-id must be the same.
	WebAuthnRPID string

	// WebhookAllowLoopback lets merchants register webhook endpoints on
	// loopback addresses, over plain http (development only).
	WebhookAllowLoopback bool
	WebhookMaxAttempts   int // attempts per webhook delivery before it is failed

	// Now is this host's clock for signing key-service requests and
	// comparing clocks with the key service; nil is time.Now. No flag:
	// tests set it.
	Now func() time.Time
	// RewrapInterval: the background rewrap runs a pass whenever the key
	// service publishes another KEK version, resumes a pass cut short, and
	// runs one at least this often (fresh counts of tokens by version);
	// 0 turns it off.
	RewrapInterval time.Duration
	// RewrapRate caps rewraps per second sent to the key service, by the
	// background job and by `blindgate rewrap`; 0: no cap.
	RewrapRate int
}

// Flags registers the configuration's flags, with defaults from the environment.
func (c *Config) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", env.String("ADDR", "127.0.0.1:8080"), "listen address")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", env.String("METRICS_ADDR", "127.0.0.1:9091"), "internal listen address for Prometheus /metrics (not the public port); empty disables")
	fs.StringVar(&c.PublicURL, "public-url", env.String("PUBLIC_URL", "http://localhost:8080"), "external base URL of the gateway (checkout links)")
	fs.StringVar(&c.TLSCert, "tls-cert", env.String("TLS_CERT", ""), "TLS certificate file (PEM)")
	fs.StringVar(&c.TLSKey, "tls-key", env.String("TLS_KEY", ""), "TLS private key file (PEM)")
	fs.BoolVar(&c.BehindTLS, "behind-tls", env.Bool("BEHIND_TLS", false), "a TLS proxy terminates HTTPS in front of the gateway")
	fs.StringVar(&c.ProxyHeader, "proxy-header", env.String("PROXY_HEADER", ""), "header with the client IP set by a trusted proxy (e.g. X-Forwarded-For)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", env.String("TRUSTED_PROXIES", ""), "comma-separated CIDRs of the proxies allowed to set -proxy-header (required with it)")
	fs.StringVar(&c.LoginNameKey, "login-name-key", env.String("LOGIN_NAME_KEY", ""), "key (env:NAME or file:PATH, >= 32 bytes) of the hash that replaces unknown login names in the audit log and lockout store; same on every replica; empty: random per start")
	c.StoreFlags(fs)
	fs.StringVar(&c.KeyServiceURL, "keyservice-url", env.String("KEYSERVICE_URL", "https://127.0.0.1:8443"), "key service base URL, or the URLs of its replicas, comma-separated (calls start at each in turn and move to the next when one cannot be reached or answers 503)")
	fs.StringVar(&c.KeyServiceCA, "keyservice-ca", env.String("KEYSERVICE_CA", ""), "CA file for the key service's TLS certificate")
	fs.BoolVar(&c.KeyServiceInsecure, "keyservice-insecure", env.Bool("KEYSERVICE_INSECURE", false), "development only: do not verify the key service's certificate")
	fs.StringVar(&c.KeyServiceCert, "keyservice-client-cert", env.String("KEYSERVICE_CLIENT_CERT", ""), "client certificate for the key service (mTLS)")
	fs.StringVar(&c.KeyServiceKey, "keyservice-client-key", env.String("KEYSERVICE_CLIENT_KEY", ""), "client certificate key for the key service (mTLS)")
	fs.StringVar(&c.Audience, "keyservice-audience", env.String("KEYSERVICE_AUDIENCE", ""), "the key service's id, the aud of signed requests: its deployment id (keyservice keys list) unless it sets -audience")
	fs.DurationVar(&c.KeyServiceSkew, "keyservice-skew", env.Duration("KEYSERVICE_SKEW", wire.DefaultSkew), "clock difference with the key service tolerated before /readyz fails keyservice_clock: set it to the key service's -skew (0-60s)")
	fs.StringVar(&c.CheckoutClientID, "checkout-client-id", env.String("CHECKOUT_CLIENT_ID", "gateway"), "client id for inspect/rewrap")
	fs.StringVar(&c.CheckoutKeyFile, "checkout-key", env.String("CHECKOUT_KEY", "gateway.jwk"), "private signing key (JWK) for inspect/rewrap")
	fs.StringVar(&c.BackofficeClientID, "backoffice-client-id", env.String("BACKOFFICE_CLIENT_ID", "backoffice"), "client id for reveal/audit")
	fs.StringVar(&c.BackofficeKeyFile, "backoffice-key", env.String("BACKOFFICE_KEY", ""), "private signing key (JWK) for reveal/audit; empty disables reveal")
	fs.StringVar(&c.ForwardClientID, "forward-client-id", env.String("FORWARD_CLIENT_ID", "forward"), "client id for forward (the merchant API's forward identity)")
	fs.StringVar(&c.ForwardKeyFile, "forward-key", env.String("FORWARD_KEY", ""), "private signing key (JWK) for forward; empty disables POST /v1/tokens/{id}/forward")
	fs.DurationVar(&c.JWKSRefresh, "jwks-refresh", env.Duration("JWKS_REFRESH", 30*time.Second), "how often to re-fetch the public KEK set from the key service (1s-10m)")
	fs.StringVar(&c.AuditPath, "audit-log", env.String("AUDIT_LOG", "gateway-audit.log"), "gateway audit log (logins, token changes)")
	c.AuditLog.Register(fs, env)
	fs.DurationVar(&c.CVCTTL, "cvc-ttl", env.Duration("CVC_TTL", 10*time.Minute), "how long a CVC ciphertext is kept (destroyed at first use)")
	fs.IntVar(&c.SubmitPerIP, "submit-per-ip", env.Int("SUBMIT_PER_IP", 20), "checkout submissions per client IP per minute")
	fs.BoolVar(&c.WebhookAllowLoopback, "webhook-allow-loopback", env.Bool("WEBHOOK_ALLOW_LOOPBACK", false), "development only: allow webhook endpoints on loopback addresses (http://localhost, 127.0.0.0/8, [::1])")
	fs.IntVar(&c.WebhookMaxAttempts, "webhook-max-attempts", env.Int("WEBHOOK_MAX_ATTEMPTS", 8), "attempts per webhook delivery (1-20) before it is marked failed")
	fs.DurationVar(&c.RewrapInterval, "rewrap-interval", env.Duration("REWRAP_INTERVAL", 24*time.Hour), "background rewrap: a pass on every KEK rotation, and at least this often (1h-720h); 0: off")
	fs.IntVar(&c.RewrapRate, "rewrap-rate", env.Int("REWRAP_RATE", 50), "rewraps per second sent to the key service by the background job and blindgate rewrap (0: no cap)")
	fs.StringVar(&c.LogLevel, "log-level", env.String("LOG_LEVEL", "info"), "debug, info, warn or error")
	fs.StringVar(&c.OperatorMFA, "operator-mfa", env.String("OPERATOR_MFA", string(operators.MFAAny)), "back-office login second factor: totp, passkey or any (whichever the operator has)")
	fs.StringVar(&c.BackofficeURL, "backoffice-url", env.String("BACKOFFICE_URL", ""), "origin operators open the back office at (their passkeys' origin); empty: -public-url")
	fs.StringVar(&c.WebAuthnRPID, "webauthn-rp-id", env.String("WEBAUTHN_RP_ID", ""), "passkeys' relying party id (a host name, the key service's -webauthn-rp-id); empty: the host of -backoffice-url")
}

// StoreFlags registers only the store flags (the admin commands need those).
func (c *Config) StoreFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Store, "store", env.String("STORE", "redis"), "where tokens, sessions and operators live: redis or bolt")
	fs.StringVar(&c.BoltPath, "bolt", env.String("BOLT", "blindgate.db"), "bbolt file (with -store bolt)")
	fs.StringVar(&c.Redis.Addrs, "redis", env.String("REDIS", "127.0.0.1:6379"), "Redis address(es), comma-separated (Cluster), or Sentinel addresses with -redis-master")
	fs.StringVar(&c.Redis.MasterName, "redis-master", env.String("REDIS_MASTER", ""), "Redis Sentinel master name")
	fs.StringVar(&c.Redis.PasswordRef, "redis-password", env.String("REDIS_PASSWORD", ""), "Redis password reference (env:NAME or file:PATH)")
	fs.IntVar(&c.Redis.DB, "redis-db", env.Int("REDIS_DB", 0), "Redis database")
	fs.BoolVar(&c.Redis.TLS, "redis-tls", env.Bool("REDIS_TLS", false), "use TLS to Redis")
	fs.DurationVar(&c.Redis.Timeout, "redis-timeout", env.Duration("REDIS_TIMEOUT", redisx.DefaultTimeout), "bound on every Redis call, retries included (10ms-30s); past it the request is refused 503 unavailable")
	c.Redis.Unbatched = !env.Bool("REDIS_BATCH", true)
	fs.Var(redisx.BatchFlag(&c.Redis.Unbatched), "redis-batch", "share Redis round trips between concurrent requests' scripts (single node and Sentinel; a lone script is sent at once)")
}

// ValidateStore checks the store settings alone.
func (c *Config) ValidateStore() error {
	switch c.Store {
	case "redis":
		return c.Redis.Validate()
	case "bolt":
		if c.BoltPath == "" {
			return errors.New("config: bolt path is empty")
		}
		return nil
	default:
		return fmt.Errorf("config: store must be redis or bolt, not %q", c.Store)
	}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	u, err := url.Parse(c.PublicURL)
	_, ksErr := client.ParseURLs(c.KeyServiceURL)
	switch {
	case c.Addr == "":
		return errors.New("config: addr is empty")
	case c.MetricsAddr != "" && c.MetricsAddr == c.Addr:
		// Metrics describe the gateway's load to whoever can read them;
		// they are served to scrapers on the internal address only.
		return errors.New("config: metrics-addr must differ from addr (the public port)")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.TrimSuffix(u.Path, "/") != "":
		return errors.New("config: public-url must be an origin like https://pay.example.com")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("config: tls-cert and tls-key go together")
	case c.KeyServiceURL == "":
		return errors.New("config: keyservice-url is empty")
	case ksErr != nil:
		return errors.New("config: keyservice-url must be one or more absolute http(s) URLs, comma-separated (replicas sharing one keyring)")
	case c.Audience == "":
		// No shared default: a default would let a request signed for one
		// deployment pass at another that shares the client keys.
		return errors.New("config: keyservice-audience is empty: set it (-keyservice-audience or BLINDGATE_GW_KEYSERVICE_AUDIENCE) to the key service's deployment id (printed by `keyservice keys init` and `keys list`)")
	case c.CheckoutKeyFile == "":
		return errors.New("config: checkout-key is empty")
	case c.KeyServiceSkew < 0 || c.KeyServiceSkew > time.Minute:
		return errors.New("config: keyservice-skew must be 0-60s")
	case c.CVCTTL <= 0 || c.CVCTTL > time.Hour:
		return errors.New("config: cvc-ttl must be within (0, 1h]")
	case c.SubmitPerIP < 1:
		return errors.New("config: submit-per-ip must be >= 1")
	case c.JWKSRefresh != 0 && (c.JWKSRefresh < time.Second || c.JWKSRefresh > 10*time.Minute):
		return errors.New("config: jwks-refresh must be 1s-10m")
	case c.AuditPath == "":
		return errors.New("config: audit-log is empty")
	case c.AuditLog.Validate() != nil:
		return c.AuditLog.Validate()
	case c.WebhookMaxAttempts != 0 && (c.WebhookMaxAttempts < 1 || c.WebhookMaxAttempts > 20):
		return errors.New("config: webhook-max-attempts must be 1-20")
	case c.RewrapInterval != 0 && (c.RewrapInterval < time.Hour || c.RewrapInterval > 720*time.Hour):
		return errors.New("config: rewrap-interval must be 0 (off) or 1h-720h")
	case c.RewrapRate < 0 || c.RewrapRate > 10000:
		return errors.New("config: rewrap-rate must be 0-10000")
	case secret.Validate(c.LoginNameKey) != nil:
		return errors.New("config: login-name-key must be env:NAME or file:PATH")
	}
	if _, _, err := c.OperatorAuth(); err != nil {
		return err
	}
	if _, err := c.ClientIP(); err != nil {
		return err
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	return c.ValidateStore()
}

// ClientIP builds the client-address resolver: the proxy header is read
// only from the trusted proxies, and a header without any is refused, since
// every client could then pick the address its limits are counted under.
func (c *Config) ClientIP() (*clientip.Resolver, error) {
	trusted, err := clientip.ParseTrusted(c.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("config: trusted-proxies: %w", err)
	}
	if c.ProxyHeader == "" && len(trusted) > 0 {
		return nil, errors.New("config: trusted-proxies needs proxy-header")
	}
	r, err := clientip.New(c.ProxyHeader, trusted)
	if err != nil {
		return nil, errors.New("config: proxy-header needs trusted-proxies (the CIDRs of the proxies that set it)")
	}
	return r, nil
}

// TLS reports whether browsers reach the gateway over HTTPS.
func (c *Config) TLS() bool {
	return c.TLSCert != "" || c.BehindTLS || strings.HasPrefix(c.PublicURL, "https://")
}

// env reads BLINDGATE_GW_<NAME> defaults.
const env = envflag.Env("BLINDGATE_GW_")

// OperatorAuth reads the back office's second-factor settings: the MFA
// mode and the passkeys' relying party (ok false when passkeys cannot work
// here: the back office's host is an IP address, which WebAuthn refuses as
// an RP id). A mode that needs passkeys without a relying party is an error.
func (c *Config) OperatorAuth() (operators.MFAMode, *passkey.RP, error) {
	mode := operators.MFAAny
	if c.OperatorMFA != "" {
		m, err := operators.ParseMFAMode(c.OperatorMFA)
		if err != nil {
			return "", nil, errors.New("config: operator-mfa must be totp, passkey or any")
		}
		mode = m
	}
	origin := cmp.Or(c.BackofficeURL, c.PublicURL)
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.TrimSuffix(u.Path, "/") != "" {
		return "", nil, errors.New("config: backoffice-url must be an origin like https://backoffice.example.com")
	}
	rpID := cmp.Or(c.WebAuthnRPID, u.Hostname())
	if net.ParseIP(rpID) != nil {
		if mode == operators.MFAPasskey || c.WebAuthnRPID != "" {
			return "", nil, fmt.Errorf("config: passkeys need a host name, not the IP address %s: set -backoffice-url (or -webauthn-rp-id)", rpID)
		}
		return mode, nil, nil
	}
	rp := passkey.RP{ID: strings.ToLower(rpID), Origins: []string{u.Scheme + "://" + u.Host}}
	if err := rp.Validate(); err != nil {
		return "", nil, fmt.Errorf("config: passkeys: %w", err)
	}
	return mode, &rp, nil
}
