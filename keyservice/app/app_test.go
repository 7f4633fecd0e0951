package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/logtest"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/keyservice/app"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/sigauth"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// TestConfigValidate: each bad field is refused with an error that names it.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name, field string
		edit        func(c *app.Config)
	}{
		{"addr/empty", "addr", func(c *app.Config) { c.Addr = "" }},
		{"tls/missing", "tls-cert", func(c *app.Config) { c.DevHTTP = false }},
		{"client-ca/without-tls", "client-ca", func(c *app.Config) { c.ClientCA = "ca.pem" }},
		{"keyring/empty", "keyring", func(c *app.Config) { c.KeyringPath = "" }},
		{"shares/zero", "unseal-shares", func(c *app.Config) { c.Shares = 0 }},
		{"shares/too-many", "unseal-shares", func(c *app.Config) { c.Shares = 17 }},
		{"clients/empty", "clients", func(c *app.Config) { c.ClientsPath = "" }},
		{"skew/too-long", "skew", func(c *app.Config) { c.Skew = 2 * time.Minute }},
		{"skew/negative", "skew", func(c *app.Config) { c.Skew = -time.Second }},
		{"audit-log/empty", "audit-log", func(c *app.Config) { c.AuditPath = "" }},
		{"audit-checkpoints/is-the-log", "audit-checkpoints", func(c *app.Config) { c.CheckpointsPath = c.AuditPath }},
		{"audit-checkpoint-every/too-high", "audit-checkpoint-every", func(c *app.Config) { c.CheckpointEvery = 100001 }},
		{"audit-checkpoint-interval/too-short", "audit-checkpoint-interval", func(c *app.Config) { c.CheckpointInterval = time.Millisecond }},
		{"freshness/too-short", "freshness", func(c *app.Config) { c.Freshness = time.Second }},
		{"reveal-per-minute/over-daily", "reveal-per-minute", func(c *app.Config) { c.RevealPerDay = c.RevealPerMinute - 1 }},
		{"reveal-client-per-minute/zero", "reveal-client-per-minute", func(c *app.Config) { c.RevealClientPerMinute = 0 }},
		{"inspect-per-second/zero", "inspect-per-second", func(c *app.Config) { c.InspectPerSecond = 0 }},
		{"inspect-client-per-day/negative", "inspect-client-per-day", func(c *app.Config) { c.InspectClientPerDay = -1 }},
		{"enumeration-window/too-long", "enumeration-window", func(c *app.Config) { c.EnumerationWindow = 31 * 24 * time.Hour }},
		{"enumeration-max/one", "enumeration-max", func(c *app.Config) { c.EnumerationMax = 1 }},
		{"unseal-ip-per-minute/over-global", "unseal-ip-per-minute", func(c *app.Config) { c.UnsealIPPerMinute, c.UnsealPerMinute = 10, 5 }},
		{"public-url/not-a-url", "public-url", func(c *app.Config) { c.PublicURL = "ftp://x y" }},
		{"master-key/inline", "master-key", func(c *app.Config) { c.MasterKey = "c2VjcmV0" }},
		{"redis/bad-address", "redis", func(c *app.Config) { c.Redis.Addrs = "" }},
		{"forward-merchant-per-day/under-per-second", "forward-merchant-per-day", func(c *app.Config) { c.ForwardMerchantPerSecond, c.ForwardMerchantPerDay = 20, 19 }},
		{"forward-destination-per-day/too-high", "forward-destination-per-day", func(c *app.Config) { c.ForwardDestinationPerDay = 100_000_001 }},
		{"egress-proxy/https", "egress-proxy", func(c *app.Config) { c.EgressProxy = "https://egress:3128" }},
		{"egress-proxy/credentials", "egress-proxy", func(c *app.Config) { c.EgressProxy = "http://u:p@egress:3128" }},
		{"egress-proxy/no-port", "egress-proxy", func(c *app.Config) { c.EgressProxy = "http://egress" }},
		{"kek-max-age/under-a-day", "kek-max-age", func(c *app.Config) { c.KEKMaxAge = time.Hour }},
		{"kek-max-age/negative", "kek-max-age", func(c *app.Config) { c.KEKMaxAge = -time.Hour }},
		{"reveal-approval/unknown", "reveal-approval", func(c *app.Config) { c.RevealApproval = "totp" }},
		{"webauthn-origins/missing-with-passkey", "webauthn-origins", func(c *app.Config) { c.WebAuthnOrigins = "" }},
		{"webauthn-origins/http-not-loopback", "webauthn-origins", func(c *app.Config) { c.WebAuthnOrigins = "http://backoffice.example.com" }},
		{"webauthn-origins/ip-address", "webauthn-origins", func(c *app.Config) { c.WebAuthnOrigins = "http://127.0.0.1:8080" }},
		{"webauthn-origins/off-rp-id", "webauthn-origins", func(c *app.Config) {
			c.WebAuthnOrigins, c.WebAuthnRPID = "https://bo.example.com", "example.org"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := app.DevConfig(t.TempDir())
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.field) {
				t.Fatalf("Validate = %v, want an error naming %q", err, tt.field)
			}
		})
	}
	t.Run("ok/egress-proxy", func(t *testing.T) {
		c := app.DevConfig(t.TempDir())
		c.EgressProxy = "http://egress:3128"
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate = %v", err)
		}
	})
	t.Run("ok/approval-none-without-origins", func(t *testing.T) {
		c := app.DevConfig(t.TempDir())
		c.RevealApproval, c.WebAuthnOrigins = "none", ""
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate = %v", err)
		}
	})
	t.Run("ok/rp-id-from-first-origin", func(t *testing.T) {
		c := app.DevConfig(t.TempDir())
		c.WebAuthnOrigins = "https://bo.example.com, https://bo.example.com:8443/"
		rp, err := c.RP()
		if err != nil || rp.ID != "bo.example.com" || len(rp.Origins) != 2 || rp.Origins[1] != "https://bo.example.com:8443" {
			t.Fatalf("RP = %+v, %v", rp, err)
		}
		c.WebAuthnOrigins, c.WebAuthnRPID = "https://bo.example.com, https://bo2.example.com", "example.com"
		if rp, err := c.RP(); err != nil || rp.ID != "example.com" {
			t.Fatalf("RP with -webauthn-rp-id = %+v, %v", rp, err)
		}
	})
	t.Run("ok/dev", func(t *testing.T) {
		c := app.DevConfig(t.TempDir())
		if err := c.Validate(); err != nil {
			t.Fatalf("DevConfig does not validate: %v", err)
		}
		if c.PasskeysPath != filepath.Join(filepath.Dir(c.ClientsPath), "passkeys.json") || c.RevealApproval != "passkey" {
			t.Fatalf("passkey defaults: %+v", c)
		}
		if c.CheckpointsPath != c.AuditPath+".checkpoints" || c.EnumerationMax == 0 || c.UnsealPerMinute == 0 || c.ForwardMerchantPerDay != 50_000 || c.ForwardDestinationPerDay != 500_000 || c.ForwardVolumeAlarmOnly {
			t.Fatalf("Validate did not fill the defaults: %+v", c)
		}
	})
}

// testLog keeps what the service logs, at every level, and fails t on a card
// number in it.
func testLog(t *testing.T) *slog.Logger {
	log, _ := logtest.JSON(t)
	return log
}

// serve builds the key service from a dev config in a temp dir, with one
// enrolled client (inspect only), and serves it on a loopback port until the
// test ends. It returns the base URL and the client's signer.
func serve(t *testing.T) (string, *client.Signer) {
	t.Helper()
	base, s, _, _ := serveWith(t, nil)
	return base, s
}

// serveWith is serve with edit applied to the config first; it also
// returns the app and its config.
func serveWith(t *testing.T, edit func(*app.Config)) (string, *client.Signer, *app.App, app.Config) {
	t.Helper()
	cfg := app.DevConfig(t.TempDir())
	if edit != nil {
		edit(&cfg)
	}
	key, err := client.GenerateKey(client.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	clients := &sigauth.AllowList{}
	if err := clients.AddClient("gateway", []string{wire.OpInspect}, "gateway-1", key.Public()); err != nil {
		t.Fatal(err)
	}
	if err := clients.Save(cfg.ClientsPath); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), &client.Signer{ClientID: "gateway", Kid: "gateway-1", Audience: a.Audience(), Key: key}, a, cfg
}

// TestNewRefusesBadInput: New validates its config and refuses an
// allow-list it cannot read, before anything listens.
func TestNewRefusesBadInput(t *testing.T) {
	tests := []struct {
		name, want string
		edit       func(t *testing.T, c *app.Config)
	}{
		{"config/unseal-shares", "unseal-shares", func(_ *testing.T, c *app.Config) { c.Shares = 0 }},
		{"clients/garbage", "load clients", func(t *testing.T, c *app.Config) {
			if err := os.WriteFile(c.ClientsPath, []byte("not json"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := app.DevConfig(t.TempDir())
			tt.edit(t, &c)
			if a, err := app.New(c, testLog(t)); err == nil || a != nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, %v; want an error naming %q", a, err, tt.want)
			}
		})
	}
}

func TestNewServesHealthz(t *testing.T) {
	base, _ := serve(t)
	res, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("/healthz = %d %s, want 200", res.StatusCode, b)
	}
}

// TestSignedForAnotherHostRefused: a request signed for another origin
// (htu) is refused at authentication, while the same request signed for
// the address the service listens on gets past it.
func TestSignedForAnotherHostRefused(t *testing.T) {
	base, signer := serve(t)
	body, err := json.Marshal(wire.InspectRequest{JWE: "not-a-jwe", Session: "cs_1", Merchant: "m_1"})
	if err != nil {
		t.Fatal(err)
	}
	send := func(t *testing.T, signedFor string) (int, string) {
		t.Helper()
		auth, err := signer.Authorization(http.MethodPost, signedFor+"/v1/inspect", body)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPost, base+"/v1/inspect", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var e wire.ErrorBody
		_ = json.NewDecoder(res.Body).Decode(&e)
		return res.StatusCode, e.Error.Code
	}
	other := strings.Replace(base, "127.0.0.1", "keyservice.example", 1)
	if status, code := send(t, other); status != http.StatusUnauthorized || code != apierr.Unauthenticated.Code {
		t.Fatalf("signed for another host: %d %q, want 401 %q", status, code, apierr.Unauthenticated.Code)
	}
	if status, code := send(t, base); status == http.StatusUnauthorized || code == apierr.Unauthenticated.Code {
		t.Fatalf("signed for this host: %d %q, want past authentication", status, code)
	}
}

// -bind-legacy is a migration window: starting with it warns and leaves an
// alarm in the audit trail, so it cannot stay on unnoticed.
func TestBindLegacyWarnsAndAudits(t *testing.T) {
	cfg := app.DevConfig(t.TempDir())
	cfg.BindLegacy = true
	log, logs := logtest.Text(t)
	a, err := app.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "bind-legacy") {
		t.Fatalf("no warning: %s", logs.String())
	}
	// Serve until the end, which closes the audit log.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	f, err := os.Open(cfg.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := audit.Read(f, audit.Filter{Event: audit.EventAlarm})
	if err != nil || len(evs) != 1 || evs[0].Code != "bind_legacy" {
		t.Fatalf("audit: %+v %v", evs, err)
	}
}

// TestRevealApprovalNoneWarnsAndAudits: running without passkey approval
// (the key service takes the back office's word for the operator) is a
// downgrade, logged and recorded as an alarm at every start.
func TestRevealApprovalNoneWarnsAndAudits(t *testing.T) {
	cfg := app.DevConfig(t.TempDir())
	cfg.RevealApproval, cfg.WebAuthnOrigins = "none", ""
	var logs bytes.Buffer
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "reveal-approval none") {
		t.Fatalf("no warning: %s", logs.String())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	f, err := os.Open(cfg.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := audit.Read(f, audit.Filter{Event: audit.EventAlarm})
	if err != nil || len(evs) != 1 || evs[0].Code != "reveal_approval_none" {
		t.Fatalf("audit: %+v %v", evs, err)
	}
}

// TestNewFailingLeavesNothingRunning: a New that fails after it opened the
// Redis client closes it, with its script flushers (and the audit log),
// instead of leaving them to the process's exit.
func TestNewFailingLeavesNothingRunning(t *testing.T) {
	c := app.DevConfig(t.TempDir())
	c.Redis = redisx.Config{Addrs: "127.0.0.1:1"} // never dialed: New fails first
	if err := os.WriteFile(c.ClientsPath, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	const n = 20
	for range n {
		if a, err := app.New(c, testLog(t)); err == nil || a != nil {
			t.Fatalf("New = %v, %v; want the allow-list refused", a, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := runtime.NumGoroutine()
		if g < before+n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after %d failed News, %d before: what they opened is still running", g, n, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNewFailingClosesTheAuditLog: a New that fails after it opened the
// audit log closes it, so its lock is free for the next start (a second
// open in this process is refused while the first holds the lock).
func TestNewFailingClosesTheAuditLog(t *testing.T) {
	c := app.DevConfig(t.TempDir())
	c.PasskeysPath = filepath.Join(filepath.Dir(c.ClientsPath), "passkeys.json")
	if err := os.WriteFile(c.PasskeysPath, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if a, err := app.New(c, testLog(t)); err == nil || a != nil {
		t.Fatalf("New = %v, %v; want the passkey registry refused", a, err)
	}
	l, err := audit.Open(c.AuditPath, audit.Options{})
	if err != nil {
		t.Fatalf("audit log still held after a failed New: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
