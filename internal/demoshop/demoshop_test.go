package demoshop_test

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/internal/demoshop"
)

func newTestShop(t *testing.T, gatewayAPI, key string) *httptest.Server {
	t.Helper()
	s, err := demoshop.New(demoshop.Config{
		Origin: "http://localhost:8081", GatewayURL: "http://127.0.0.1:8080", GatewayAPIURL: gatewayAPI, SecretKey: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func TestShop(t *testing.T) {
	var got struct {
		auth, path string
		body       map[string]any
	}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/tokens/tok_mine":
			_, _ = io.WriteString(w, `{"id":"tok_mine","session_id":"cs_1","brand":"visa","bin":"424242","last4":"4242","fingerprint":"fpm_x"}`)
			return
		case "/v1/tokens/tok_other":
			_, _ = io.WriteString(w, `{"id":"tok_other","session_id":"cs_someone_else","brand":"visa","bin":"555555","last4":"4444","fingerprint":"fpm_y"}`)
			return
		}
		got.auth, got.path = r.Header.Get("Authorization"), r.URL.Path
		_ = json.NewDecoder(r.Body).Decode(&got.body)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"cs_1"}`)
	}))
	defer gw.Close()

	t.Run("200/page-pins-embed-sri-and-frames-only-the-gateway", func(t *testing.T) {
		srv := newTestShop(t, gw.URL, "sk_test_123")
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assets, err := checkout.NewAssets()
		if err != nil {
			t.Fatal(err)
		}
		page := html.UnescapeString(string(b))
		if !strings.Contains(page, `src="http://127.0.0.1:8080/embed.js" integrity="`+assets.SRI(checkout.ScriptEmbed)+`"`) || !strings.Contains(page, `id="pay"`) {
			t.Errorf("page does not load the gateway's embed.js with this build's SRI:\n%s", page)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-src http://127.0.0.1:8080;") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("CSP %q", csp)
		}
	})

	t.Run("201/session-for-the-shop-origin-with-the-secret-key", func(t *testing.T) {
		srv := newTestShop(t, gw.URL, "sk_test_123")
		resp, err := http.Post(srv.URL+"/api/session", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		origins, _ := got.body["allowed_origins"].([]any)
		if resp.StatusCode != http.StatusCreated || got.auth != "Bearer sk_test_123" || got.path != "/v1/checkout/sessions" ||
			len(origins) != 1 || origins[0] != "http://localhost:8081" || got.body["amount"] != float64(2500) || got.body["currency"] != "EUR" {
			t.Errorf("status %d, gateway saw %+v", resp.StatusCode, got)
		}
	})

	t.Run("503/no-merchant-key-yet", func(t *testing.T) {
		srv := newTestShop(t, gw.URL, "")
		resp, err := http.Post(srv.URL+"/api/session", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", resp.StatusCode)
		}
		resp, err = http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `id="setup"`) || strings.Contains(string(b), `id="pay"`) {
			t.Errorf("page without a key should explain the setup:\n%s", b)
		}
		// The README's Compose steps: the origin follows the shop's port, the
		// key is kept in .env so a later `docker compose up -d` keeps it.
		page := html.UnescapeString(string(b))
		for _, want := range []string{"-origin env:BLINDGATE_SHOP_ORIGIN", "echo BLINDGATE_SHOP_MERCHANT_KEY=sk_... >> .env", "docker compose up -d --no-deps shop"} {
			if !strings.Contains(page, want) {
				t.Errorf("setup text lacks %q:\n%s", want, page)
			}
		}
	})

	t.Run("404/no-open-token-lookup", func(t *testing.T) {
		srv := newTestShop(t, gw.URL, "sk_test_123")
		for _, path := range []string{"/api/token/tok_mine", "/api/token/tok_a%2F..%2Fx"} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s: status %d, want no such route", path, resp.StatusCode)
			}
		}
	})

	t.Run("paid/reports-its-own-checkout-once-brand-and-last4-only", func(t *testing.T) {
		srv := newTestShop(t, gw.URL, "sk_test_123")
		paid := func(c *http.Client, token string) (int, map[string]any) {
			t.Helper()
			resp, err := c.Post(srv.URL+"/api/paid", "application/json", strings.NewReader(`{"token":"`+token+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			return resp.StatusCode, m
		}
		browser := func() *http.Client {
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar}
			resp, err := c.Post(srv.URL+"/api/session", "application/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return c
		}
		// No cookie: nothing to report.
		if st, _ := paid(http.DefaultClient, "tok_mine"); st != http.StatusBadRequest {
			t.Errorf("without a checkout: %d", st)
		}
		// Another session's token: refused, and the checkout is spent.
		b := browser()
		if st, _ := paid(b, "tok_other"); st != http.StatusNotFound {
			t.Errorf("another session's token: %d", st)
		}
		a := browser()
		st, m := paid(a, "tok_mine")
		if st != http.StatusOK || m["brand"] != "visa" || m["last4"] != "4242" || m["token"] != "tok_mine" || len(m) != 3 {
			t.Fatalf("own checkout: %d %v", st, m)
		}
		if st, _ := paid(a, "tok_mine"); st == http.StatusOK {
			t.Error("the card was reported twice")
		}
	})

	t.Run("error/bad-config", func(t *testing.T) {
		for _, c := range []demoshop.Config{
			{Origin: "localhost:8081", GatewayURL: "http://g"},
			{Origin: "http://s", GatewayURL: "http://g/path"},
			{Origin: "http://s", GatewayURL: "http://g", GatewayAPIURL: "http://g?x"},
		} {
			if _, err := demoshop.New(c); err == nil {
				t.Errorf("%+v accepted", c)
			}
		}
	})
}
