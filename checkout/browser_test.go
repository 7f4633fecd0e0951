package checkout_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/internal/browsertest"
	"github.com/blindgate/blindgate/templates"
)

// The browser suite drives a real headless Chromium against a small test
// gateway: the real template and assets, a JWKS from go-jose (an implementation
// independent of ours) and a submit endpoint that records what the page posts.

// keySet is one JWKS served at /v1/keys?set=<name>: decoys the page must skip,
// then the key it must pick.
type keySet struct {
	alg  string
	kid  string
	priv crypto.PrivateKey
	jwks []byte
}

// reply is what the submit endpoint answers for a session.
type reply struct {
	status     int
	code       string
	retryAfter string
	hangup     bool // close the connection without an answer
}

type session struct {
	locale, parentOrigin, returnURL, keys string
	pay                                   checkout.Payment
	reply                                 reply
	token                                 string
}

type fixture struct {
	assets  *checkout.Assets
	pages   *template.Template
	keys    map[string]*keySet // read-only after newFixture
	gw      *httptest.Server   // the gateway, http://127.0.0.1:<port>
	parent  *httptest.Server   // merchant page, reached as http://localhost:<port>
	evil    *httptest.Server   // a third origin, http://127.0.0.1:<port>
	browser context.Context

	mu       sync.Mutex
	sessions map[string]*session
	posts    map[string][][]byte
	traffic  []string // every request line and body, on every server
	csp      []string // CSP violation reports
}

func (f *fixture) gwOrigin() string { return f.gw.URL }
func (f *fixture) parentOrigin() string {
	return strings.Replace(f.parent.URL, "127.0.0.1", "localhost", 1)
}

func (f *fixture) addSession(id string, s session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.token == "" {
		s.token = "tok_" + strings.TrimPrefix(id, "cs_")
	}
	if s.keys == "" {
		s.keys = "p256"
	}
	f.sessions[id] = &s
}

func (f *fixture) session(id string) (session, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return session{}, false
	}
	return *s, true
}

func (f *fixture) postsFor(id string) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.posts[id])
}

// record wraps a handler so the test sees every byte a browser sent.
func (f *fixture) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.traffic = append(f.traffic, r.Method+" "+r.Host+r.URL.String()+"\n"+r.Header.Get("Cookie")+"\n"+string(body))
		f.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pages, err := templates.Parse()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		assets:   newAssets(t),
		pages:    pages,
		keys:     makeKeySets(t),
		sessions: map[string]*session{},
		posts:    map[string][][]byte{},
	}
	f.gw = httptest.NewServer(f.record(f.gatewayMux(t)))
	t.Cleanup(f.gw.Close)
	f.evil = httptest.NewServer(f.record(staticMux(t, "/evil.html", "/evil.js")))
	t.Cleanup(f.evil.Close)
	f.parent = httptest.NewServer(f.record(f.parentMux(t)))
	t.Cleanup(f.parent.Close)
	return f
}

func makeKeySets(t *testing.T) map[string]*keySet {
	t.Helper()
	rsa3072, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	decoys := []jose.JSONWebKey{
		{Key: &p256.PublicKey, KeyID: "decoy-sig", Algorithm: "ES256", Use: "sig"},
		{Key: &rsa2048.PublicKey, KeyID: "decoy-rsa-2048", Algorithm: "RSA-OAEP-256", Use: "enc"},
		{Key: &rsa3072.PublicKey, KeyID: "decoy-oaep-sha1", Algorithm: "RSA-OAEP", Use: "enc"},
		{Key: &p521.PublicKey, KeyID: "decoy-p521", Algorithm: "ECDH-ES+A256KW", Use: "enc"},
		{Key: &p256.PublicKey, KeyID: "decoy-no-use", Algorithm: "ECDH-ES+A256KW"},
	}
	sets := map[string]*keySet{
		"rsa":  {alg: "RSA-OAEP-256", kid: "kek-rsa-3072-v1", priv: rsa3072},
		"p256": {alg: "ECDH-ES+A256KW", kid: "kek-p256-v1", priv: p256},
		"p384": {alg: "ECDH-ES+A256KW", kid: "kek-p384-v1", priv: p384},
	}
	for _, s := range sets {
		pub := s.priv.(interface{ Public() crypto.PublicKey }).Public()
		keys := append(slices.Clone(decoys), jose.JSONWebKey{Key: pub, KeyID: s.kid, Algorithm: s.alg, Use: "enc"})
		if s.jwks, err = json.Marshal(jose.JSONWebKeySet{Keys: keys}); err != nil {
			t.Fatal(err)
		}
	}
	return sets
}

func securityHeaders(w http.ResponseWriter) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

func (f *fixture) gatewayMux(t *testing.T) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkout/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		s, ok := f.session(id)
		if !ok {
			http.NotFound(w, r)
			return
		}
		pd := f.assets.NewPageData(checkout.DefaultAssetBase, id, s.locale)
		pd.ParentOrigin = s.parentOrigin
		pd.ReturnURL = s.returnURL
		pd.KeysURL = checkout.KeysPath + "?set=" + s.keys
		if err := pd.SetPayment(s.pay); err != nil {
			t.Errorf("payment: %v", err)
		}
		securityHeaders(w)
		w.Header().Set("Content-Security-Policy", checkout.PageCSP(s.parentOrigin)+"; report-uri /csp-report")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := f.pages.ExecuteTemplate(w, "checkout.html", pd); err != nil {
			t.Errorf("render: %v", err)
		}
	})
	mux.HandleFunc("GET /checkout/{id}/theme.css", func(w http.ResponseWriter, r *http.Request) {
		css, err := checkout.Theme{Primary: "#0a7d5a", Radius: "8px", Font: "system"}.CSS()
		if err != nil {
			t.Errorf("theme: %v", err)
		}
		securityHeaders(w)
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Write(css)
	})
	mux.HandleFunc("POST /checkout/{id}/submit", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.posts[id] = append(f.posts[id], body)
		f.mu.Unlock()
		s, ok := f.session(id)
		if !ok {
			http.NotFound(w, r)
			return
		}
		rp := s.reply
		if rp.hangup {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		securityHeaders(w)
		w.Header().Set("Content-Type", "application/json")
		if rp.status != 0 {
			if rp.retryAfter != "" {
				w.Header().Set("Retry-After", rp.retryAfter)
			}
			w.WriteHeader(rp.status)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": rp.code, "message": "test"}})
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"token": s.token})
	})
	mux.HandleFunc("GET /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		ks, ok := f.keys[r.URL.Query().Get("set")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		securityHeaders(w)
		w.Header().Set("Content-Type", "application/json")
		w.Write(ks.jwks)
	})
	serveAsset := func(w http.ResponseWriter, r *http.Request, name string) {
		data, ct, ok := f.assets.Asset(name)
		if !ok {
			http.NotFound(w, r)
			return
		}
		securityHeaders(w)
		w.Header().Set("Content-Type", ct)
		w.Write(data)
	}
	mux.HandleFunc("GET "+checkout.DefaultAssetBase+"{name...}", func(w http.ResponseWriter, r *http.Request) {
		serveAsset(w, r, r.PathValue("name"))
	})
	mux.HandleFunc("GET "+checkout.EmbedPath, func(w http.ResponseWriter, r *http.Request) {
		// Merchants load it cross-origin with integrity=, which needs CORS.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		serveAsset(w, r, checkout.ScriptEmbed)
	})
	mux.HandleFunc("GET /done", func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		io.WriteString(w, "<!doctype html><title>done</title><p>done</p>")
	})
	mux.HandleFunc("POST /csp-report", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.csp = append(f.csp, string(body))
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("GET /test/", http.StripPrefix("/test", staticMux(t, "/evil.html", "/evil.js")))
	return mux
}

// staticMux serves testdata files: .html pages are generated around the .js
// file of the same name, so no page has an inline script.
func staticMux(t *testing.T, paths ...string) *http.ServeMux {
	mux := http.NewServeMux()
	for _, p := range paths {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
			securityHeaders(w)
			if strings.HasSuffix(p, ".html") {
				w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'")
				fmt.Fprintf(w, `<!doctype html><title>x</title><script src="%s"></script>`, strings.TrimSuffix(filepath.Base(p), ".html")+".js")
				return
			}
			data, err := os.ReadFile(filepath.Join("testdata", filepath.Base(p)))
			if err != nil {
				t.Errorf("testdata: %v", err)
			}
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			w.Write(data)
		})
	}
	return mux
}

func (f *fixture) parentMux(t *testing.T) *http.ServeMux {
	mux := staticMux(t, "/parent.js")
	mux.HandleFunc("GET /parent.html", func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		// A strict merchant CSP: embed.js must work under it.
		w.Header().Set("Content-Security-Policy", fmt.Sprintf(
			"default-src 'none'; script-src 'self' %s; frame-src %s %s; style-src 'self'",
			f.gwOrigin(), f.gwOrigin(), f.evil.URL))
		fmt.Fprintf(w, `<!doctype html><html lang="en"><title>shop</title>
<script src="%s/embed.js" integrity="%s" crossorigin="anonymous" defer></script>
<script src="/parent.js" defer></script>
<h1>Shop</h1><div id="slot"></div>`, f.gwOrigin(), f.assets.SRI(checkout.ScriptEmbed))
	})
	return mux
}

// newTab opens a tab that fails the test on an uncaught exception and
// records CSP violations of its pages.
func (f *fixture) newTab(t *testing.T) *browsertest.Tab {
	t.Helper()
	return browsertest.NewTab(t, f.browser, browsertest.WithCSPProbe(), browsertest.FailOnExceptions())
}

// wait is how long a step may take to show in the page.
const wait = 15 * time.Second

func (f *fixture) openCheckout(t *testing.T, tb *browsertest.Tab, id string) {
	t.Helper()
	tb.Do(t, browsertest.Navigate(f.gwOrigin()+"/checkout/"+id))
	tb.WaitFor(t, `document.documentElement.classList.contains("bg-ready")`, wait)
}

func (f *fixture) fill(t *testing.T, tb *browsertest.Tab, number, exp, cvc, name string) {
	t.Helper()
	tb.Do(t,
		chromedp.SendKeys(chromedp.ID("bg-number"), number),
		chromedp.SendKeys(chromedp.ID("bg-exp"), exp),
		chromedp.SendKeys(chromedp.ID("bg-cvc"), cvc),
		// Enter in the last field submits: keyboard-only use must work.
		chromedp.SendKeys(chromedp.ID("bg-name"), name+"\r"),
	)
}

func TestBrowser(t *testing.T) {
	browser := browsertest.Browser(t) // one browser for every subtest
	f := newFixture(t)
	f.browser = browser

	t.Run("jwe", func(t *testing.T) { testJWE(t, f) })
	t.Run("card-rules", func(t *testing.T) { testCardRules(t, f) })
	t.Run("fields", func(t *testing.T) { testFields(t, f) })
	t.Run("errors", func(t *testing.T) { testErrors(t, f) })
	t.Run("embed", func(t *testing.T) { testEmbed(t, f) })
	t.Run("timing", func(t *testing.T) { testTiming(t, f) })
	t.Run("payment", func(t *testing.T) { testPayment(t, f) })
	t.Run("brands", func(t *testing.T) { testBrands(t, f) })
	t.Run("typing", func(t *testing.T) { testTyping(t, f) })
	t.Run("click-not-lost", func(t *testing.T) { testClickNotLost(t, f) })
	t.Run("focus", func(t *testing.T) { testFocus(t, f) })
	t.Run("alignment", func(t *testing.T) { testAlignment(t, f) })
	t.Run("grouping", func(t *testing.T) { testGrouping(t, f) })

	// Reports travel asynchronously; give the last ones a moment.
	time.Sleep(300 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.csp {
		t.Errorf("CSP report: %s", r)
	}
}

type cardCase struct {
	alg, keys, pan, exp, cvc, name string
	wantMonth, wantYear            int
}

func testJWE(t *testing.T, f *fixture) {
	cases := []cardCase{
		{alg: "RSA-OAEP-256", keys: "rsa", pan: "4242424242424242", exp: "1230", cvc: "123", name: "Ada Lovelace", wantMonth: 12, wantYear: 2030},
		{alg: "ECDH-ES+A256KW/P-256", keys: "p256", pan: "378282246310005", exp: "0731", cvc: "7373", name: "Grace Hopper", wantMonth: 7, wantYear: 2031},
		{alg: "ECDH-ES+A256KW/P-384", keys: "p384", pan: "2223003122003222", exp: "11/29", cvc: "913", name: "Émilie du Châtelet", wantMonth: 11, wantYear: 2029},
	}
	for i, tc := range cases {
		t.Run(tc.alg, func(t *testing.T) {
			id := fmt.Sprintf("cs_jwe%d", i)
			f.addSession(id, session{locale: "en", keys: tc.keys, returnURL: f.gwOrigin() + "/done?shop=1"})
			tb := f.newTab(t)
			f.openCheckout(t, tb, id)
			f.fill(t, tb, tc.pan, tc.exp, tc.cvc, tc.name)

			// Not embedded, with a return URL: the page navigates there with the token.
			tb.WaitFor(t, `location.pathname === "/done"`, wait)
			loc := browsertest.Eval[string](t, tb, `location.href`)
			u, _ := url.Parse(loc)
			s, _ := f.session(id)
			if q := u.Query(); q.Get("token") != s.token || q.Get("session") != id || q.Get("shop") != "1" {
				t.Errorf("return URL = %s, want token %s and session %s", loc, s.token, id)
			}
			if got := browsertest.Eval[string](t, tb, `String(localStorage.length) + "/" + String(sessionStorage.length) + "/" + document.cookie`); got != "0/0/" {
				t.Errorf("localStorage/sessionStorage/cookie = %q, want empty", got)
			}

			posts := f.postsFor(id)
			if len(posts) != 1 {
				t.Fatalf("%d submissions, want 1", len(posts))
			}
			var body struct {
				CardJWE string `json:"card_jwe"`
				CVCJWE  string `json:"cvc_jwe"`
			}
			dec := json.NewDecoder(bytes.NewReader(posts[0]))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				t.Fatalf("submitted body: %v", err)
			}
			ks := f.keys[tc.keys]

			var card struct {
				PAN      string `json:"pan"`
				ExpMonth int    `json:"exp_month"`
				ExpYear  int    `json:"exp_year"`
				Name     string `json:"name"`
				Iat      int64  `json:"iat"`
			}
			decryptInto(t, body.CardJWE, ks, id, &card)
			if card.PAN != tc.pan || card.ExpMonth != tc.wantMonth || card.ExpYear != tc.wantYear || card.Name != tc.name {
				t.Errorf("card payload = {exp %d/%d name %q pan-ok %v}, want {%d/%d %q}",
					card.ExpMonth, card.ExpYear, card.Name, card.PAN == tc.pan, tc.wantMonth, tc.wantYear, tc.name)
			}
			checkIat(t, card.Iat)

			var cvc struct {
				CVC string `json:"cvc"`
				Iat int64  `json:"iat"`
			}
			decryptInto(t, body.CVCJWE, ks, id, &cvc)
			if cvc.CVC != tc.cvc {
				t.Errorf("cvc payload differs from what was typed")
			}
			checkIat(t, cvc.Iat)

			f.assertNoPlaintext(t, tc.pan, tc.cvc)
			if c := strings.Join(tb.Console(), "\n"); strings.Contains(c, tc.pan) {
				t.Error("the PAN reached the console")
			}
		})
	}
}

var b64u = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// decryptInto checks the compact JWE's form and protected header, decrypts it
// with go-jose and strictly decodes the payload.
func decryptInto(t *testing.T, compact string, ks *keySet, sessionID string, v any) {
	t.Helper()
	parts := strings.Split(compact, ".")
	if len(parts) != 5 {
		t.Fatalf("JWE has %d parts, want 5 (compact)", len(parts))
	}
	for i, p := range parts {
		if !b64u.MatchString(p) {
			t.Fatalf("JWE part %d is not base64url", i)
		}
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatalf("protected header: %v", err)
	}
	wantKeys := []string{"alg", "bg_sid", "enc", "kid"}
	if ks.alg == "ECDH-ES+A256KW" {
		wantKeys = append(wantKeys, "epk")
		sort.Strings(wantKeys)
	}
	gotKeys := make([]string, 0, len(hdr))
	for k := range hdr {
		gotKeys = append(gotKeys, k)
	}
	sort.Strings(gotKeys)
	if !slices.Equal(gotKeys, wantKeys) {
		t.Errorf("header members = %v, want %v", gotKeys, wantKeys)
	}
	if hdr["alg"] != ks.alg || hdr["enc"] != "A256GCM" || hdr["kid"] != ks.kid || hdr["bg_sid"] != sessionID {
		t.Errorf("header = %s, want alg %s enc A256GCM kid %s bg_sid %s", raw, ks.alg, ks.kid, sessionID)
	}

	obj, err := jose.ParseEncryptedCompact(compact,
		[]jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.ECDH_ES_A256KW}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		t.Fatalf("go-jose parse: %v", err)
	}
	if obj.Header.KeyID != ks.kid || obj.Header.ExtraHeaders["bg_sid"] != sessionID {
		t.Errorf("go-jose header kid %q bg_sid %v", obj.Header.KeyID, obj.Header.ExtraHeaders["bg_sid"])
	}
	pt, err := obj.Decrypt(ks.priv)
	if err != nil {
		t.Fatalf("go-jose decrypt: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("payload is not the contract's JSON: %v", err)
	}

	// The header is the AAD: moving the ciphertext to another session must fail.
	hdr["bg_sid"] = "cs_other"
	moved, _ := json.Marshal(hdr)
	parts[0] = base64.RawURLEncoding.EncodeToString(moved)
	if obj, err := jose.ParseEncryptedCompact(strings.Join(parts, "."),
		[]jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.ECDH_ES_A256KW}, []jose.ContentEncryption{jose.A256GCM}); err == nil {
		if _, err := obj.Decrypt(ks.priv); err == nil {
			t.Error("a JWE with a rewritten bg_sid still decrypts: the header is not bound as AAD")
		}
	}
}

func checkIat(t *testing.T, iat int64) {
	t.Helper()
	if d := time.Since(time.Unix(iat, 0)); d < -time.Minute || d > time.Minute {
		t.Errorf("iat is %v away from now", d)
	}
}

// assertNoPlaintext scans every request any server received (lines, cookies,
// bodies) for the PAN, any 8-digit run of it, and the CVC as a JSON value.
func (f *fixture) assertNoPlaintext(t *testing.T, pan, cvc string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	all := strings.Join(f.traffic, "\n")
	for i := 0; i+8 <= len(pan); i++ {
		if strings.Contains(all, pan[i:i+8]) {
			t.Fatalf("digits %d-%d of the PAN appear in a request", i, i+8)
		}
	}
	for _, s := range []string{`"` + cvc + `"`, `"cvc"`, `"pan"`, "cvc=" + cvc} {
		if strings.Contains(all, s) {
			t.Fatalf("a request carries plaintext card data (%s)", s)
		}
	}
}

// luhnComplete pads prefix with zeros to n-1 digits and appends the check digit.
func luhnComplete(prefix string, n int) string {
	s := prefix + strings.Repeat("0", n-1-len(prefix))
	sum := 0
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if (len(s)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return s + fmt.Sprint((10-sum%10)%10)
}

type inspectResult struct {
	Brand     string `json:"brand"`
	Formatted string `json:"formatted"`
	CVCLength int    `json:"cvcLength"`
	Luhn      bool   `json:"luhn"`
	Valid     bool   `json:"valid"`
	Error     string `json:"error"`
}

func testCardRules(t *testing.T, f *fixture) {
	f.addSession("cs_rules", session{locale: "en"})
	tb := f.newTab(t)
	f.openCheckout(t, tb, "cs_rules")

	tests := []struct {
		name, number, brand, formatted, err string
		cvc                                 int
	}{
		{"valid/visa", "4242424242424242", "visa", "4242 4242 4242 4242", "", 3},
		{"valid/mastercard", "5555555555554444", "mastercard", "5555 5555 5555 4444", "", 3},
		{"valid/mastercard-2-series", "2223003122003222", "mastercard", "2223 0031 2200 3222", "", 3},
		{"valid/amex", "378282246310005", "amex", "3782 822463 10005", "", 4},
		{"valid/discover", "6011111111111117", "discover", "6011 1111 1111 1117", "", 3},
		{"valid/diners-14", "36227206271667", "diners", "3622 720627 1667", "", 3},
		{"valid/diners-16", "3056930009020004", "diners", "3056 9300 0902 0004", "", 3},
		{"valid/jcb", "3566002020360505", "jcb", "3566 0020 2036 0505", "", 3},
		{"valid/unionpay", "6200000000000005", "unionpay", "6200 0000 0000 0005", "", 3},
		{"valid/maestro", "6759649826438453", "maestro", "6759 6498 2643 8453", "", 3},
		{"valid/spaces-typed", "4242 4242 4242 4242", "visa", "4242 4242 4242 4242", "", 3},
		{"valid/visa-19", luhnComplete("4", 19), "visa", "", "", 3},
		{"valid/discover-622126", luhnComplete("622126", 16), "discover", "", "", 3},
		{"valid/discover-622925", luhnComplete("622925", 16), "discover", "", "", 3},
		{"valid/unionpay-622125", luhnComplete("622125", 16), "unionpay", "", "", 3},
		{"valid/unionpay-622926", luhnComplete("622926", 16), "unionpay", "", "", 3},
		{"valid/discover-644", luhnComplete("644", 16), "discover", "", "", 3},
		{"valid/discover-65", luhnComplete("65", 16), "discover", "", "", 3},
		{"valid/maestro-other-6", luhnComplete("63", 16), "maestro", "", "", 3},
		{"valid/maestro-50", luhnComplete("50", 16), "maestro", "", "", 3},
		{"valid/maestro-58", luhnComplete("58", 12), "maestro", "", "", 3},
		{"valid/mastercard-2221", luhnComplete("2221", 16), "mastercard", "", "", 3},
		{"valid/mastercard-2720", luhnComplete("2720", 16), "mastercard", "", "", 3},
		{"valid/jcb-3589", luhnComplete("3589", 16), "jcb", "", "", 3},
		{"valid/diners-3095", luhnComplete("3095", 16), "diners", "", "", 3},
		{"valid/diners-38", luhnComplete("38", 14), "diners", "", "", 3},
		{"invalid/luhn", "4242424242424241", "visa", "4242 4242 4242 4241", "number_luhn", 3},
		{"invalid/amex-luhn", "378282246310006", "amex", "3782 822463 10006", "number_luhn", 4},
		{"invalid/visa-12-digits", "424242424242", "visa", "4242 4242 4242", "number_length", 3},
		{"invalid/amex-14-digits", "37828224631000", "amex", "", "number_length", 4},
		{"invalid/mastercard-15-digits", "555555555555444", "mastercard", "", "number_length", 3},
		{"invalid/brand-2721", luhnComplete("2721", 16), "", "", "number_brand", 0},
		{"invalid/brand-3590", luhnComplete("3590", 16), "", "", "number_brand", 0},
		{"invalid/brand-9", "9999999999999995", "", "", "number_brand", 0},
		{"invalid/empty", "", "", "", "number_empty", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := browsertest.Eval[inspectResult](t, tb, fmt.Sprintf(`BlindgateCard.inspect(%q)`, tc.number))
			if r.Brand != tc.brand || r.Error != tc.err || r.Valid != (tc.err == "") || r.CVCLength != tc.cvc {
				t.Errorf("inspect = %+v, want brand %q error %q cvc %d", r, tc.brand, tc.err, tc.cvc)
			}
			if tc.formatted != "" && r.Formatted != tc.formatted {
				t.Errorf("formatted = %q, want %q", r.Formatted, tc.formatted)
			}
		})
	}

	// The same rules drive the real field: typed keys are spaced per brand, cut
	// at the brand's longest length, the icon and the CVC length follow.
	for _, tc := range []struct{ typed, want, brand, cvcMax string }{
		{"4242424242424242", "4242 4242 4242 4242", "visa", "3"},
		{"378282246310005999", "3782 822463 10005", "amex", "4"},
		{"36227206271667", "3622 720627 1667", "diners", "3"},
		{"3056930009020004", "3056 9300 0902 0004", "diners", "3"},
		{"2223003122003222", "2223 0031 2200 3222", "mastercard", "3"},
		{"6200000000000005", "6200 0000 0000 0005", "unionpay", "3"},
		{"42a42-4242", "4242 4242", "visa", "3"},
	} {
		t.Run("field/"+tc.brand+"/"+tc.typed, func(t *testing.T) {
			tb.Do(t, chromedp.SetValue(chromedp.ID("bg-number"), ""), chromedp.SendKeys(chromedp.ID("bg-number"), tc.typed))
			got := browsertest.Eval[[]string](t, tb, `[document.getElementById("bg-number").value,
				document.getElementById("bg-brand").dataset.brand,
				document.getElementById("bg-cvc").getAttribute("maxlength")]`)
			if got[0] != tc.want || got[1] != tc.brand || got[2] != tc.cvcMax {
				t.Errorf("field shows %q brand %q cvc maxlength %s; want %q %q %s", got[0], got[1], got[2], tc.want, tc.brand, tc.cvcMax)
			}
		})
	}

	type expiry struct {
		Month int    `json:"month"`
		Year  int    `json:"year"`
		Error string `json:"error"`
	}
	// "now" is 15 May 2026 for every case.
	for _, tc := range []struct {
		in   string
		want expiry
	}{
		{"12/30", expiry{12, 2030, ""}},
		{"1230", expiry{12, 2030, ""}},
		{"05/26", expiry{5, 2026, ""}},
		{"5/27", expiry{5, 2027, ""}},
		{"12/2030", expiry{12, 2030, ""}},
		{"04/26", expiry{4, 2026, "exp_past"}},
		{"12/25", expiry{12, 2025, "exp_past"}},
		{"12/47", expiry{12, 2047, "exp_far"}},
		{"13/30", expiry{0, 0, "exp_month"}},
		{"00/30", expiry{0, 0, "exp_month"}},
		{"13/99", expiry{0, 0, "exp_month"}},
		{"ab/cd", expiry{0, 0, "exp_format"}},
		{"", expiry{0, 0, "exp_empty"}},
	} {
		t.Run("expiry/"+tc.in, func(t *testing.T) {
			got := browsertest.Eval[expiry](t, tb, fmt.Sprintf(`BlindgateCard.parseExpiry(%q, new Date(2026, 4, 15))`, tc.in))
			if got != tc.want {
				t.Errorf("parseExpiry(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
	for in, want := range map[string]string{"1230": "12/30", "4": "04", "12/2030": "12/30", "1/": "01", "123": "12/3", "12": "12"} {
		if got := browsertest.Eval[string](t, tb, fmt.Sprintf(`BlindgateCard.formatExpiry(%q)`, in)); got != want {
			t.Errorf("formatExpiry(%q) = %q, want %q", in, got, want)
		}
	}
	for _, tc := range []struct{ cvc, brand, want string }{
		{"123", "visa", ""}, {"1234", "amex", ""}, {"123", "amex", "cvc_length"}, {"1234", "visa", "cvc_length"},
		{"", "visa", "cvc_empty"}, {"12a", "visa", "cvc_length"}, {"12", "mastercard", "cvc_length"},
	} {
		if got := browsertest.Eval[string](t, tb, fmt.Sprintf(`BlindgateCard.validateCVC(%q, %q)`, tc.cvc, tc.brand)); got != tc.want {
			t.Errorf("validateCVC(%q, %s) = %q, want %q", tc.cvc, tc.brand, got, tc.want)
		}
	}
	tb.NoCSPViolations(t)
}

// testFields covers the page's own validation: blur errors with aria, the
// submit summary, the theme, and the mobile layout.
func testFields(t *testing.T, f *fixture) {
	f.addSession("cs_fields", session{locale: "fr-FR"})
	tb := f.newTab(t)
	f.openCheckout(t, tb, "cs_fields")
	_, fr := f.assets.Strings("fr")

	// Submitting an empty form: summary in the live region, focus on the number.
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-name"), "\r"))
	tb.WaitFor(t, `document.getElementById("bg-status").textContent !== ""`, wait)
	got := browsertest.Eval[[]string](t, tb, `[document.getElementById("bg-status").textContent, document.activeElement.id,
		document.getElementById("bg-number").getAttribute("aria-invalid"),
		document.getElementById("bg-number-error").textContent]`)
	if want := []string{fr["err_form"], "bg-number", "true", fr["err_number_empty"]}; !slices.Equal(got, want) {
		t.Errorf("empty submit: %q, want %q", got, want)
	}
	if n := len(f.postsFor("cs_fields")); n != 0 {
		t.Errorf("an invalid form was submitted %d times", n)
	}

	// A Luhn error shows on blur and clears once fixed.
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-number"), "4242424242424241\t"))
	got = browsertest.Eval[[]string](t, tb, `[document.getElementById("bg-number").getAttribute("aria-invalid"),
		document.getElementById("bg-number-error").textContent,
		document.getElementById("bg-number").getAttribute("aria-describedby"), document.activeElement.id]`)
	if want := []string{"true", fr["err_number_luhn"], "bg-number-error", "bg-exp"}; !slices.Equal(got, want) {
		t.Errorf("luhn blur: %q, want %q", got, want)
	}
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-number"), "\b2"))
	got = browsertest.Eval[[]string](t, tb, `[document.getElementById("bg-number").getAttribute("aria-invalid"),
		document.getElementById("bg-number-error").textContent, document.getElementById("bg-brand").getAttribute("aria-label")]`)
	if want := []string{"false", "", "Type de carte : Visa"}; !slices.Equal(got, want) {
		t.Errorf("after fixing: %q, want %q", got, want)
	}
	tb.Do(t, chromedp.SendKeys(chromedp.ID("bg-exp"), "0420\t"), chromedp.SendKeys(chromedp.ID("bg-cvc"), "12\t"))
	got = browsertest.Eval[[]string](t, tb, `[document.getElementById("bg-exp").value, document.getElementById("bg-exp-error").textContent,
		document.getElementById("bg-cvc-error").textContent]`)
	if want := []string{"04/20", fr["err_exp_past"], strings.ReplaceAll(fr["err_cvc_length"], "{n}", "3")}; !slices.Equal(got, want) {
		t.Errorf("expiry/cvc errors: %q, want %q", got, want)
	}

	// The theme stylesheet applies under the page's CSP.
	if bg := browsertest.Eval[string](t, tb, `getComputedStyle(document.getElementById("bg-submit")).backgroundColor`); bg != "rgb(10, 125, 90)" {
		t.Errorf("submit button colour = %s, want the theme's rgb(10, 125, 90)", bg)
	}
	// Mobile width: nothing overflows a 320px viewport.
	tb.Do(t, chromedp.EmulateViewport(320, 640, chromedp.EmulateMobile))
	if w := browsertest.Eval[int](t, tb, `document.documentElement.scrollWidth`); w > 320 {
		t.Errorf("page is %dpx wide on a 320px screen", w)
	}
	tb.NoCSPViolations(t)
}

func testErrors(t *testing.T, f *fixture) {
	tests := []struct {
		name, locale, key string
		reply             reply
		params            map[string]string
		terminal          bool
	}{
		{"429/too_many_attempts", "en", "srv_too_many", reply{status: 429, code: "too_many_attempts", retryAfter: "30"}, map[string]string{"seconds": "30"}, false},
		{"429/fr", "fr-FR", "srv_too_many", reply{status: 429, code: "too_many_attempts", retryAfter: "45"}, map[string]string{"seconds": "45"}, false},
		{"429/no-retry-after", "de-DE", "srv_too_many_later", reply{status: 429, code: "too_many_attempts"}, nil, false},
		{"503/keyservice_unavailable", "en", "srv_unavailable", reply{status: 503, code: "keyservice_unavailable"}, nil, false},
		{"503/fr", "fr", "srv_unavailable", reply{status: 503, code: "keyservice_unavailable"}, nil, false},
		{"410/session_expired", "en", "srv_session_expired", reply{status: 410, code: "session_expired"}, nil, true},
		{"410/de", "de", "srv_session_expired", reply{status: 410, code: "session_expired"}, nil, true},
		{"422/card_invalid", "en", "srv_card_invalid", reply{status: 422, code: "card_invalid"}, nil, false},
		{"422/card_brand_unsupported", "de", "srv_card_invalid", reply{status: 422, code: "card_brand_unsupported"}, nil, false},
		{"422/card_expired", "fr", "srv_card_expired", reply{status: 422, code: "card_expired"}, nil, false},
		{"422/unknown-code", "en", "srv_card_invalid", reply{status: 422, code: "something_new"}, nil, false},
		{"422/stale_ciphertext", "en", "srv_stale", reply{status: 422, code: "stale_ciphertext"}, nil, true},
		{"409/session_completed", "de-DE", "srv_session_expired", reply{status: 409, code: "session_completed"}, nil, true},
		{"400/key_unknown", "fr", "srv_stale", reply{status: 400, code: "key_unknown"}, nil, true},
		{"500/internal", "en", "srv_generic", reply{status: 500, code: "internal"}, nil, false},
		{"network/hangup", "en", "srv_network", reply{hangup: true}, nil, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("cs_err%d", i)
			f.addSession(id, session{locale: tc.locale, reply: tc.reply})
			tb := f.newTab(t)
			f.openCheckout(t, tb, id)
			f.fill(t, tb, "4242424242424242", "1230", "123", "Ada")
			tb.WaitFor(t, `document.getElementById("bg-status").dataset.kind === "error"`, wait)
			_, strs := f.assets.Strings(tc.locale)
			want := strs[tc.key]
			for k, v := range tc.params {
				want = strings.ReplaceAll(want, "{"+k+"}", v)
			}
			got := browsertest.Eval[[]string](t, tb, `(function () {
				var s = document.getElementById("bg-status");
				return [s.textContent, s.getAttribute("aria-live"), document.getElementById("bg-number").value,
					document.getElementById("bg-cvc").value, String(document.getElementById("bg-fields").disabled),
					String(document.getElementById("bg-submit").disabled)];
			})()`)
			if got[0] != want || got[1] != "polite" {
				t.Errorf("live region = %q (aria-live %s), want %q", got[0], got[1], want)
			}
			if got[2] != "" || got[3] != "" {
				t.Error("card fields were not cleared after the POST")
			}
			if got[4] != fmt.Sprint(tc.terminal) {
				t.Errorf("form disabled = %s, want %v", got[4], tc.terminal)
			}
			if tc.reply.retryAfter != "" && got[5] != "true" {
				t.Error("submit button is enabled during Retry-After")
			}
			f.assertNoPlaintext(t, "4242424242424242", "123")
			tb.NoCSPViolations(t)
		})
	}
}

func testEmbed(t *testing.T, f *fixture) {
	const id = "cs_embed"
	f.addSession(id, session{locale: "en", parentOrigin: f.parentOrigin(), keys: "p384"})
	tb := f.newTab(t)
	q := url.Values{"session": {id}, "evil1": {f.evil.URL + "/evil.html"}, "evil2": {f.gwOrigin() + "/test/evil.html"}}
	tb.Do(t, browsertest.Navigate(f.parentOrigin()+"/parent.html?"+q.Encode()))

	// The checkout says it is ready, and all three impostors have posted.
	tb.WaitFor(t, fmt.Sprintf(`window.__seen && __seen.some(function (m) { return m.origin === %q && m.type === "blindgate:ready"; })`, f.gwOrigin()), wait)
	tb.WaitFor(t, fmt.Sprintf(`["tok_self", "tok_evil_%s", "tok_evil_%s"].every(function (tok) {
		return __seen.some(function (m) { return m.token === tok; }); })`, port(f.evil.URL), port(f.gw.URL)), wait)
	if v := browsertest.Eval[bool](t, tb, `window.__token === undefined && window.__mountError === undefined`); !v {
		t.Fatalf("mount settled on an impostor message: token %q", browsertest.Eval[string](t, tb, `String(window.__token) + String(window.__mountError)`))
	}

	// Keyboard only, from the merchant page: Tab into the iframe, type, Enter.
	// Focus crosses into the iframe's process asynchronously, so each step waits
	// (inside the frame) for focus and value before the next keys go out.
	frame := browsertest.AttachFrame(t, tb, f.gwOrigin()+"/checkout/"+id)
	for _, step := range []struct{ keys, field, value string }{
		{"\t", "bg-number", ""},
		{"5555555555554444", "bg-number", "5555 5555 5555 4444"},
		{"\t", "bg-exp", ""},
		{"1230", "bg-exp", "12/30"},
		{"\t", "bg-cvc", ""},
		{"321", "bg-cvc", "321"},
		{"\t", "bg-name", ""},
		{"Ada", "bg-name", "Ada"},
	} {
		tb.Do(t, chromedp.KeyEvent(step.keys))
		frame.WaitFor(t, fmt.Sprintf(`document.activeElement.id === %q && document.activeElement.value === %q`, step.field, step.value), wait)
	}
	tb.Do(t, chromedp.KeyEvent("\r"))
	tb.WaitFor(t, `window.__token !== undefined`, wait)
	s, _ := f.session(id)
	if got := browsertest.Eval[string](t, tb, `window.__token`); got != s.token {
		t.Fatalf("mount resolved with %q, want %q", got, s.token)
	}
	// The page posted the token to the merchant origin only, and resized the frame.
	tokenMsgs := browsertest.Eval[[]string](t, tb, `__seen.filter(function (m) { return m.type === "blindgate:token"; }).map(function (m) { return m.origin + " " + m.token; })`)
	if !slices.Contains(tokenMsgs, f.gwOrigin()+" "+s.token) {
		t.Errorf("token messages seen: %v", tokenMsgs)
	}
	if h := browsertest.Eval[string](t, tb, `document.querySelector("#slot iframe").style.height`); h == "460px" || h == "120px" || h == "" {
		t.Errorf("iframe height %q: the page's resize message was not applied", h)
	}

	posts := f.postsFor(id)
	if len(posts) != 1 {
		t.Fatalf("%d submissions, want 1", len(posts))
	}
	var body struct {
		CardJWE string `json:"card_jwe"`
		CVCJWE  string `json:"cvc_jwe"`
	}
	if err := json.Unmarshal(posts[0], &body); err != nil {
		t.Fatal(err)
	}
	var card struct {
		PAN      string `json:"pan"`
		ExpMonth int    `json:"exp_month"`
		ExpYear  int    `json:"exp_year"`
		Name     string `json:"name"`
		Iat      int64  `json:"iat"`
	}
	decryptInto(t, body.CardJWE, f.keys["p384"], id, &card)
	if card.PAN != "5555555555554444" || card.ExpMonth != 12 || card.ExpYear != 2030 || card.Name != "Ada" {
		t.Errorf("card typed through the iframe decrypted to other values (exp %d/%d name %q)", card.ExpMonth, card.ExpYear, card.Name)
	}
	f.assertNoPlaintext(t, "5555555555554444", "321")
}

func port(u string) string {
	p, _ := url.Parse(u)
	return p.Port()
}

// testTiming measures building the JWE in the page (key import, then
// encryption) for each key type and logs the medians against the 20 ms
// target. It asserts no duration (a timed pass/fail fails on a busy
// machine, not on slow code), but that what it timed is what the page
// sends: one measurement per run, the encryption inside the whole, and each
// run a fresh JWE to the session's key that decrypts to the card.
func testTiming(t *testing.T, f *fixture) {
	const runs = 21
	for _, set := range []struct{ name, keys string }{
		{"RSA-OAEP-256/3072", "rsa"}, {"ECDH-ES+A256KW/P-256", "p256"}, {"ECDH-ES+A256KW/P-384", "p384"},
	} {
		t.Run(set.name, func(t *testing.T) {
			id := "cs_timing_" + set.keys
			f.addSession(id, session{locale: "en", keys: set.keys})
			tb := f.newTab(t)
			f.openCheckout(t, tb, id)
			type timings struct {
				Full []float64 `json:"full"`
				Enc  []float64 `json:"enc"`
				JWEs []string  `json:"jwes"`
			}
			res := browsertest.Eval[timings](t, tb, fmt.Sprintf(`(async function () {
				var keysURL = document.getElementById("bg-form").dataset.keysUrl;
				var jwk = BlindgateJWE.selectKey(await (await fetch(keysURL, { credentials: "omit" })).json());
				var payload = { pan: "4242424242424242", exp_month: 12, exp_year: 2030, name: "Ada", iat: Math.floor(Date.now() / 1000) };
				var header = { bg_sid: %q };
				await BlindgateJWE.encryptJSON(await BlindgateJWE.importKey(jwk), payload, header); // warm-up
				var full = [], enc = [], jwes = [];
				for (var i = 0; i < %d; i++) {
					var t0 = performance.now();
					var rk = await BlindgateJWE.importKey(jwk);
					var t1 = performance.now();
					jwes.push(await BlindgateJWE.encryptJSON(rk, payload, header));
					var t2 = performance.now();
					full.push(t2 - t0);
					enc.push(t2 - t1);
				}
				return { full: full, enc: enc, jwes: jwes };
			})()`, id, runs))
			if len(res.Full) != runs || len(res.Enc) != runs || len(res.JWEs) != runs {
				t.Fatalf("%d, %d and %d results, want %d runs each", len(res.Full), len(res.Enc), len(res.JWEs), runs)
			}
			for i := range runs {
				if full, enc := res.Full[i], res.Enc[i]; math.IsNaN(full) || enc < 0 || enc > full {
					t.Errorf("run %d: whole %.3f ms, encryption %.3f ms: want 0 <= encryption <= whole", i, full, enc)
				}
				var card struct {
					PAN      string `json:"pan"`
					ExpMonth int    `json:"exp_month"`
					ExpYear  int    `json:"exp_year"`
					Name     string `json:"name"`
					Iat      int64  `json:"iat"`
				}
				decryptInto(t, res.JWEs[i], f.keys[set.keys], id, &card)
				if card.PAN != "4242424242424242" || card.ExpYear != 2030 {
					t.Errorf("run %d decrypted to another card", i)
				}
			}
			if distinct := len(slices.Compact(slices.Sorted(slices.Values(res.JWEs)))); distinct != runs {
				t.Errorf("the %d runs made %d distinct JWEs: each must have its own content key and IV", runs, distinct)
			}
			t.Logf("%s: JWE build median %.2f ms (import+encrypt %.2f ms) over %d runs; target < 20 ms",
				set.name, median(res.Enc), median(res.Full), len(res.Enc))
		})
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
