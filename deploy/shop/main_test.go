package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The shop's pages and API are tested in internal/demoshop; this covers what
// the command adds: the secret key reference and the idle start without it.
func TestNewShop(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Setenv("E2E_SHOP_KEY", "sk_test_123")
	base := config{origin: "http://localhost:8081", gatewayURL: "http://127.0.0.1:8080"}

	t.Run("configured/key-from-env", func(t *testing.T) {
		c := base
		c.secretKeyRef = "env:E2E_SHOP_KEY"
		if _, configured, err := newShop(c, log); err != nil || !configured {
			t.Errorf("configured %t, err %v", configured, err)
		}
	})

	t.Run("idle/no-merchant-key-yet", func(t *testing.T) {
		c := base
		c.secretKeyRef = "env:E2E_SHOP_KEY_UNSET"
		s, configured, err := newShop(c, log)
		if err != nil || configured {
			t.Fatalf("configured %t, err %v", configured, err)
		}
		srv := httptest.NewServer(s.Handler())
		defer srv.Close()
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `id="setup"`) {
			t.Errorf("page without a key should explain the setup:\n%s", b)
		}
	})

	t.Run("error/bad-config", func(t *testing.T) {
		for _, c := range []config{
			{origin: "localhost:8081", gatewayURL: "http://g", gatewayAPIURL: "http://g"},
			{origin: "http://s", gatewayURL: "http://g/path", gatewayAPIURL: "http://g"},
			{origin: "http://s", gatewayURL: "http://g", gatewayAPIURL: "http://g", secretKeyRef: "sk_inline"},
		} {
			if _, _, err := newShop(c, log); err == nil {
				t.Errorf("%+v accepted", c)
			}
		}
	})
}
