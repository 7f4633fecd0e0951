package web_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/ingest"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/wire"
)

const visa = "4242424242424242"

func TestMerchantAPI(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	tests := []struct {
		name   string
		method string
		path   string
		key    string
		body   any
		status int
		code   string
	}{
		{"401/no-key", http.MethodPost, "/v1/checkout/sessions", "", map[string]any{}, 401, "unauthenticated"},
		{"401/wrong-key", http.MethodGet, "/v1/tokens", "sk_wrong", nil, 401, "unauthenticated"},
		{"400/origin-not-registered", http.MethodPost, "/v1/checkout/sessions", f.secret, map[string]any{"allowed_origins": []string{"https://evil.example"}}, 400, "origin_not_allowed"},
		{"400/return-url-elsewhere", http.MethodPost, "/v1/checkout/sessions", f.secret, map[string]any{"return_url": "https://evil.example/done"}, 400, "invalid_field"},
		{"400/bad-colour", http.MethodPost, "/v1/checkout/sessions", f.secret, map[string]any{"appearance": map[string]string{"primary": "red;}body{x"}}, 400, "invalid_field"},
		{"400/unknown-field", http.MethodPost, "/v1/checkout/sessions", f.secret, map[string]any{"pan": visa}, 400, "bad_request"},
		{"201/locale-de", http.MethodPost, "/v1/checkout/sessions", f.secret, map[string]any{"locale": "de"}, 201, ""},
		{"201/locale-de-DE", http.MethodPost, "/v1/checkout/sessions", f.secret, map[string]any{"locale": "de-DE"}, 201, ""},
		{"400/locale-unshipped", http.MethodPost, "/v1/checkout/sessions", f.secret, map[string]any{"locale": "es"}, 400, "invalid_field"},
		{"201/defaults-to-merchant-origins", http.MethodPost, "/v1/checkout/sessions", f.secret, map[string]any{"locale": "fr", "appearance": map[string]string{"primary": "#0a7"}}, 201, ""},
		{"404/unknown-token", http.MethodGet, "/v1/tokens/tok_aaaaaaaaaaaaaaaaaaaaaaaaaa", f.secret, nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(t, tt.method, tt.path, tt.key, tt.body)
			if a.status != tt.status || a.code() != tt.code {
				t.Fatalf("%d %q, want %d %q: %s", a.status, a.code(), tt.status, tt.code, a.body)
			}
			if tt.status == 201 {
				url, _ := a.json["url"].(string)
				if !strings.HasPrefix(url, "https://pay.example/checkout/cs_") || a.json["expires_at"] == nil {
					t.Fatalf("session answer %s", a.body)
				}
			}
		})
	}
}

// TestCheckoutPageLanguage: a session in German (or a German region) gets the
// German page; the list of languages is the checkout's string table.
func TestCheckoutPageLanguage(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	for locale, want := range map[string]string{"de": `lang="de"`, "de-DE": `lang="de"`, "fr-FR": `lang="fr"`, "en": `lang="en"`} {
		sid := f.newSession(t, map[string]any{"locale": locale})
		page := f.do(t, http.MethodGet, "/checkout/"+sid, "", nil)
		if page.status != 200 || !strings.Contains(string(page.body), want) {
			t.Errorf("%s: %d, page lacks %s", locale, page.status, want)
		}
	}
}

func TestCheckoutRoundTrip(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	testCheckoutRoundTrip(t, f)
}

// TestCheckoutRoundTripRedis runs the production path: every store on a real Redis.
func TestCheckoutRoundTripRedis(t *testing.T) {
	rdb := testenv.Redis(t)
	s := redisStores(t, rdb)
	f := newTestServer(t, fixtureOpt{stores: &s})
	testCheckoutRoundTrip(t, f)
}

func testCheckoutRoundTrip(t *testing.T, f *gwFixture) {
	sid := f.newSession(t, nil)

	page := f.do(t, http.MethodGet, "/checkout/"+sid, "", nil)
	if page.status != 200 {
		t.Fatalf("page: %d %s", page.status, page.body)
	}
	csp := page.header.Get("Content-Security-Policy")
	for _, want := range []string{"frame-ancestors https://shop-a.example", "script-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Fatalf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || page.header.Get("Cache-Control") != "no-store" || page.header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("page headers %v", page.header)
	}
	if !strings.Contains(string(page.body), `integrity="sha384-`) || strings.Contains(string(page.body), "<script>") {
		t.Fatal("page scripts without SRI, or an inline script")
	}

	keys := f.do(t, http.MethodGet, "/v1/keys", "", nil)
	if ks, _ := keys.json["keys"].([]any); keys.status != 200 || len(ks) != 1 {
		t.Fatalf("keys: %d %s", keys.status, keys.body)
	}

	jwe := f.kz.encrypt(t, visa, sid)
	sub := f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": jwe, "cvc_jwe": f.kz.encryptCVC(t, "123", sid)})
	tok, _ := sub.json["token"].(string)
	if sub.status != 200 || !strings.HasPrefix(tok, "tok_") {
		t.Fatalf("submit: %d %s", sub.status, sub.body)
	}
	// A retry of the same submission (answer lost) gets the same token.
	again := f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": jwe})
	if again.json["token"] != tok {
		t.Fatalf("retry: %d %s", again.status, again.body)
	}
	// Another card on the completed session is refused.
	other := f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, "5555555555554444", sid)})
	if other.status != 409 || other.code() != "session_completed" {
		t.Fatalf("second card: %d %s", other.status, other.body)
	}
	// Opening the completed session again shows a page saying it is over.
	done := f.do(t, http.MethodGet, "/checkout/"+sid, "", nil)
	if done.status != 409 || !strings.Contains(done.header.Get("Content-Type"), "text/html") || !strings.Contains(string(done.body), `data-code="session_completed"`) || strings.Contains(string(done.body), "<script") {
		t.Fatalf("completed session page: %d %s", done.status, done.body)
	}

	got := f.do(t, http.MethodGet, "/v1/tokens/"+tok, f.secret, nil)
	if got.status != 200 || got.json["brand"] != "visa" || got.json["bin"] != "424242" || got.json["last4"] != "4242" || got.json["id"] != tok {
		t.Fatalf("token: %d %s", got.status, got.body)
	}
	for _, forbidden := range []string{"jwe", "pan", "kid", "merchant_id"} {
		if _, has := got.json[forbidden]; has {
			t.Fatalf("merchant API returned %q", forbidden)
		}
	}
	// The ciphertext is stored and still reveals the card at the key service.
	stored, err := f.tokens.Lookup(context.Background(), tok)
	if err != nil || stored.JWE != jwe {
		t.Fatalf("stored token lacks its ciphertext: %v", err)
	}
	// (An approved reveal, as the operator's browser and passkey make it.)
	approver := f.kz.EnrolPasskey(t, "backoffice", "op_t")
	card, err := kstest.Reveal(t, f.kz.backoffice, approver, wire.RevealRequest{JWE: stored.JWE, Actor: "op_t", Reason: "test reveal", Token: tok})
	if err != nil || card.PAN != visa {
		t.Fatalf("reveal stored ciphertext: %v", err)
	}
	if cvc, err := f.tokens.TakeCVC(context.Background(), tok); err != nil || cvc == "" {
		t.Fatalf("cvc kept: %v", err)
	}

	// Merchant B cannot see or delete merchant A's token.
	if a := f.do(t, http.MethodGet, "/v1/tokens/"+tok, f.otherKey, nil); a.status != 404 {
		t.Fatalf("other merchant get: %d", a.status)
	}
	if a := f.do(t, http.MethodDelete, "/v1/tokens/"+tok, f.otherKey, nil); a.status != 404 {
		t.Fatalf("other merchant delete: %d", a.status)
	}
	list := f.do(t, http.MethodGet, "/v1/tokens?limit=10", f.secret, nil)
	if data, _ := list.json["data"].([]any); list.status != 200 || len(data) != 1 {
		t.Fatalf("list: %d %s", list.status, list.body)
	}
	if a := f.do(t, http.MethodGet, "/v1/tokens?limit=0", f.secret, nil); a.status != 400 {
		t.Fatalf("bad limit: %d", a.status)
	}
	if a := f.do(t, http.MethodDelete, "/v1/tokens/"+tok, f.secret, nil); a.status != 204 {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if a := f.do(t, http.MethodGet, "/v1/tokens/"+tok, f.secret, nil); a.status != 404 {
		t.Fatalf("after delete: %d", a.status)
	}
	if strings.Contains(f.logs.String(), visa) || strings.Contains(f.logs.String(), jwe[:40]) {
		t.Fatal("a card number or ciphertext reached the gateway logs")
	}
}

func TestSubmitErrors(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	tests := []struct {
		name   string
		setup  func(t *testing.T) (path string, body map[string]string)
		status int
		code   string
	}{
		{"404/unknown-session-page", func(t *testing.T) (string, map[string]string) {
			return "/checkout/cs_aaaaaaaaaaaaaaaaaaaaaaaaaa", nil
		}, 404, ""},
		{"404/unknown-session", func(t *testing.T) (string, map[string]string) {
			return "/checkout/cs_aaaaaaaaaaaaaaaaaaaaaaaaaa/submit", map[string]string{"card_jwe": "a.b.c.d.e"}
		}, 404, "session_not_found"},
		{"400/not-a-jwe", func(t *testing.T) (string, map[string]string) {
			return "/checkout/" + f.newSession(t, nil) + "/submit", map[string]string{"card_jwe": "plain"}
		}, 400, "invalid_jwe"},
		{"422/luhn", func(t *testing.T) (string, map[string]string) {
			sid := f.newSession(t, nil)
			return "/checkout/" + sid + "/submit", map[string]string{"card_jwe": f.kz.encrypt(t, "4242424242424241", sid)}
		}, 422, "card_invalid"},
		{"400/moved-to-another-session", func(t *testing.T) (string, map[string]string) {
			sid := f.newSession(t, nil)
			return "/checkout/" + sid + "/submit", map[string]string{"card_jwe": f.kz.encrypt(t, visa, "cs_other")}
		}, 400, "session_mismatch"},
		{"410/expired", func(t *testing.T) (string, map[string]string) {
			sid := f.newSession(t, map[string]any{"ttl_seconds": 60})
			*f.now = f.now.Add(2 * time.Minute)
			t.Cleanup(func() { *f.now = f.now.Add(-2 * time.Minute) })
			return "/checkout/" + sid + "/submit", map[string]string{"card_jwe": f.kz.encrypt(t, visa, sid)}
		}, 410, "session_expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, body := tt.setup(t)
			method := http.MethodPost
			if body == nil {
				method = http.MethodGet // the page itself: HTML, so no JSON code
			}
			a := f.do(t, method, path, "", body)
			if a.status != tt.status || a.code() != tt.code {
				t.Fatalf("%d %q, want %d %q: %s", a.status, a.code(), tt.status, tt.code, a.body)
			}
		})
	}
}

func TestSubmitLimits(t *testing.T) {
	limits := ingest.DefaultLimits()
	limits.PerIP = ratelimit.Limit{Name: "ip", Rate: 3, Period: time.Hour, Burst: 3}
	f := newTestServer(t, fixtureOpt{limits: &limits})
	sid := f.newSession(t, map[string]any{"max_attempts": 2})
	bad := func() answer {
		return f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, "4242424242424241", sid)})
	}
	for i := 0; i < 2; i++ {
		if a := bad(); a.status != 422 {
			t.Fatalf("attempt %d: %d %s", i, a.status, a.body)
		}
	}
	if a := bad(); a.status != 429 || a.code() != "too_many_attempts" {
		t.Fatalf("attempt budget: %d %s", a.status, a.body)
	}
	// The per-IP limit (card testing across sessions) holds even on a fresh session.
	sid2 := f.newSession(t, nil)
	a := f.do(t, http.MethodPost, "/checkout/"+sid2+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, visa, sid2)})
	if a.status != 429 || a.code() != "rate_limited" || a.header.Get("Retry-After") == "" {
		t.Fatalf("per-IP limit: %d %s (Retry-After %q)", a.status, a.body, a.header.Get("Retry-After"))
	}
}

// TestKeyServiceDown: the shopper gets "retry later" and no token exists
// without its ciphertext having been inspected and stored.
func TestKeyServiceDown(t *testing.T) {
	down := inspectorFunc(func(context.Context, wire.InspectRequest) (wire.InspectResponse, error) {
		return wire.InspectResponse{}, errors.New("dial tcp: connection refused")
	})
	sealed := inspectorFunc(func(context.Context, wire.InspectRequest) (wire.InspectResponse, error) {
		return wire.InspectResponse{}, &client.Error{Status: 503, Code: "sealed", Message: "sealed"}
	})
	for name, in := range map[string]ingest.Inspector{"503/unreachable": down, "503/sealed": sealed} {
		t.Run(name, func(t *testing.T) {
			f := newTestServer(t, fixtureOpt{inspector: in})
			sid := f.newSession(t, nil)
			a := f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, visa, sid)})
			if a.status != 503 || a.code() != "keyservice_unavailable" || a.header.Get("Retry-After") == "" {
				t.Fatalf("%d %s", a.status, a.body)
			}
			list := f.do(t, http.MethodGet, "/v1/tokens", f.secret, nil)
			if data, _ := list.json["data"].([]any); len(data) != 0 {
				t.Fatalf("a token was minted while the key service was down: %s", list.body)
			}
		})
	}
}

func TestStaticAssets(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	embed := f.do(t, http.MethodGet, "/embed.js", "", nil)
	if embed.status != 200 || embed.header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(embed.header.Get("Content-Type"), "javascript") {
		t.Fatalf("embed.js: %d %v", embed.status, embed.header)
	}
	for _, p := range []string{"/assets/checkout/checkout.js", "/assets/checkout/checkout.css"} {
		if a := f.do(t, http.MethodGet, p, "", nil); a.status != 200 || a.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: %d", p, a.status)
		}
	}
	if a := f.do(t, http.MethodGet, "/assets/checkout/../../go.mod", "", nil); a.status != 404 {
		t.Fatalf("path traversal: %d", a.status)
	}
	sid := f.newSession(t, map[string]any{"appearance": map[string]string{"primary": "#112233", "font": "georgia", "radius": "30px"}})
	css := f.do(t, http.MethodGet, "/checkout/"+sid+"/theme.css", "", nil)
	if css.status != 200 || !strings.Contains(string(css.body), "#112233") {
		t.Fatalf("theme: %d %s", css.status, css.body)
	}
}

func TestGatewayMetrics(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	sid := f.newSession(t, nil)
	f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, visa, sid)})
	if a := f.do(t, http.MethodGet, "/metrics", "", nil); a.status != 404 {
		t.Fatalf("/metrics on the public port: %d", a.status)
	}
	mfs, err := f.srv.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, mf := range mfs {
		if mf.GetName() != "blindgate_gateway_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
				if strings.Contains(l.GetValue(), sid) || strings.Contains(l.GetValue(), "4242") {
					t.Fatalf("label holds request data: %v", l)
				}
			}
			if labels["route"] == "/checkout/:session/submit" && labels["status"] == "200" && m.GetCounter().GetValue() == 1 {
				seen = true
			}
		}
	}
	if !seen {
		t.Fatal("no count for the submit route")
	}
}

// TestHSTSOnlyOverTLS: browsers are told to stay on HTTPS only when the
// gateway is served over TLS (a plain-HTTP demo must not pin itself).
func TestHSTSOnlyOverTLS(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"tls/hsts", true}, {"http/none", false}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestServer(t, fixtureOpt{tls: tc.tls})
			sid := f.newSession(t, nil)
			for _, path := range []string{"/checkout/" + sid, "/v1/keys", "/embed.js", "/backoffice/login"} {
				a := f.do(t, http.MethodGet, path, "", nil)
				hsts := a.header.Get("Strict-Transport-Security")
				if tc.tls != strings.Contains(hsts, "max-age=") {
					t.Fatalf("%s: Strict-Transport-Security %q with TLS=%v", path, hsts, tc.tls)
				}
				if a.header.Get("X-Content-Type-Options") != "nosniff" || a.header.Get("Referrer-Policy") != "no-referrer" {
					t.Fatalf("%s: headers %v", path, a.header)
				}
			}
		})
	}
}

// TestSubmitValidatesCVC: the key service checks the CVC ciphertext with the
// card; a refused one stores nothing (no token, no CVC) and the session can
// be retried.
func TestSubmitValidatesCVC(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	for _, tc := range []struct {
		name string
		cvc  func(sid string) string
	}{
		{"422/visa-with-4-digits", func(sid string) string { return f.kz.encryptCVC(t, "1234", sid) }},
		{"422/other-session", func(string) string { return f.kz.encryptCVC(t, "123", "cs_someone_else") }},
		{"422/garbage", func(string) string { return "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.a.b.c.d" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sid := f.newSession(t, nil)
			a := f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, "4242424242424242", sid), "cvc_jwe": tc.cvc(sid)})
			if a.status != http.StatusUnprocessableEntity || a.code() != "cvc_invalid" {
				t.Fatalf("submit: %d %s", a.status, a.body)
			}
			ok := f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, "4242424242424242", sid), "cvc_jwe": f.kz.encryptCVC(t, "123", sid)})
			if ok.status != 200 {
				t.Fatalf("retry with a good cvc: %d %s", ok.status, ok.body)
			}
		})
	}
}
