package app

import (
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/internal/logtest"
	"github.com/blindgate/blindgate/keyservice/client"
)

// testConfig is a valid bolt configuration in a temp dir, with a checkout
// signing key; args override the flags.
func testConfig(t *testing.T, args ...string) Config {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "checkout.key")
	if _, _, err := client.GenerateKeyFile(key, "gateway-checkout"); err != nil {
		t.Fatal(err)
	}
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.Flags(fs)
	base := []string{
		"-store", "bolt", "-bolt", filepath.Join(dir, "gw.db"), "-audit-log", filepath.Join(dir, "audit.log"),
		"-keyservice-url", "https://127.0.0.1:1", "-keyservice-audience", "ks_test", "-checkout-key", key,
		"-public-url", "https://pay.example",
	}
	if err := fs.Parse(append(base, args...)); err != nil {
		t.Fatal(err)
	}
	return c
}

// testLog keeps what the service logs, at every level, and fails t on a card
// number in it.
func testLog(t *testing.T) *slog.Logger {
	log, _ := logtest.JSON(t)
	return log
}

// TestNewRefusesBadConfig: New validates before it opens anything, and
// names the bad field.
func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name, want string
		args       []string
	}{
		{"err/public-url-with-path", "public-url", []string{"-public-url", "https://pay.example/x"}},
		{"err/no-audience", "keyservice-audience", []string{"-keyservice-audience", ""}},
		{"err/no-checkout-key", "checkout-key", []string{"-checkout-key", ""}},
		{"err/cvc-ttl", "cvc-ttl", []string{"-cvc-ttl", "2h"}},
		{"err/tls-cert-alone", "tls-cert", []string{"-tls-cert", "x.pem"}},
		{"err/metrics-on-public-port", "metrics-addr", []string{"-addr", "127.0.0.1:8080", "-metrics-addr", "127.0.0.1:8080"}},
		{"err/store", "store", []string{"-store", "sqlite"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, tt.args...)
			a, err := New(cfg, testLog(t))
			if err == nil {
				_ = a.stores.Close()
				t.Fatal("New accepted a bad config")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error naming %s", err, tt.want)
			}
			if _, err := os.Stat(cfg.BoltPath); !os.IsNotExist(err) {
				t.Fatalf("New opened the store before validating: %v", err)
			}
		})
	}
}

// TestNewServesThroughRealApp: the app New wires answers with the security
// headers on every answer (a page, an API error, a 404), and the public
// port has no /metrics.
func TestNewServesThroughRealApp(t *testing.T) {
	a, err := New(testConfig(t), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.audit.Close()
		_ = a.stores.Close()
	})
	for _, tt := range []struct {
		name, method, path string
		status             int
	}{
		{"200/health", http.MethodGet, "/healthz", 200},
		{"401/merchant-api", http.MethodPost, "/v1/checkout/sessions", 401},
		{"404/unknown", http.MethodGet, "/nope", 404},
		{"404/no-metrics-on-public-port", http.MethodGet, "/metrics", 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := a.Server().App().Test(httptest.NewRequest(tt.method, tt.path, nil))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if tt.status != 0 && resp.StatusCode != tt.status {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			for h, want := range map[string]string{
				"X-Content-Type-Options":    "nosniff",
				"Referrer-Policy":           "no-referrer",
				"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
			} {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
		})
	}
}
