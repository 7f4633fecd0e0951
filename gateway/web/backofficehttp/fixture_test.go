package backofficehttp_test

// Fixture of the back-office tests: bbolt stores in t.TempDir(), an
// injectable clock shared by the server, the operator service and TOTP
// codes, a real in-process key service (keyservice/kstest, reached through
// keyservice/client, approving reveals with passkeys) for every test that
// claims a reveal or an audit query went through, software passkeys
// (internal/passkey/passkeytest) enrolled through the gateway's own pages
// and approved as a key-zone admin would, and a recording fake only where
// the key service must NOT be called or must fail in a way a real one
// cannot be made to (down, forced 429/503).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/clientip"
	"github.com/blindgate/blindgate/gateway/merchants"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/gateway/web"
	"github.com/blindgate/blindgate/gateway/websession"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/httpmetrics"
	"github.com/blindgate/blindgate/internal/logtest"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/passkey/passkeytest"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/unwrap"
	"github.com/blindgate/blindgate/keyservice/wire"
	"github.com/blindgate/blindgate/templates"
)

const (
	testPassword = "correct horse battery staple 42"
	testPAN      = "4242424242424242"
	testPANShown = "4242 4242 4242 4242"
	merchA       = "m_alpha"
	merchB       = "m_beta"
	testRef      = "ORD-2026-0042" // tokA's order reference
)

// fakeClock is the fixture's time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// ---- a recording fake, for "must not be called" and forced failures ----

// fakeKS answers reveal challenges with a well-formed nonce and reveals
// with revealErr or a dummy ciphertext; it counts reveals and audit
// queries (a challenge is not a reveal).
type fakeKS struct {
	mu               sync.Mutex
	reveals, queries int
	challenges       int
	revealErr        error
	queryErr         error
}

func (f *fakeKS) RevealChallenge(_ context.Context, req wire.RevealChallengeRequest) (wire.RevealChallengeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.challenges++
	return wire.RevealChallengeResponse{Nonce: "rvn_" + strings.Repeat("A", 43), ExpiresAt: time.Now().Add(2 * time.Minute).Unix(),
		RPID: "pay.example", PasskeyRequired: false}, nil
}

func (f *fakeKS) Reveal(context.Context, wire.RevealRequest) (wire.RevealResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reveals++
	if f.revealErr != nil {
		return wire.RevealResponse{}, f.revealErr
	}
	return wire.RevealResponse{JWE: "eyJhbGciOiJFQ0RILUVTIn0..aXY.Y3Q.dGFn"}, nil
}

func (f *fakeKS) PasskeyChallenge(context.Context, wire.PasskeyChallengeRequest) (wire.PasskeyChallengeResponse, error) {
	return wire.PasskeyChallengeResponse{}, &client.Error{Status: 503, Code: "unavailable"}
}

func (f *fakeKS) RegisterPasskey(context.Context, wire.PasskeyRegisterRequest) (wire.PasskeyRegisterResponse, error) {
	return wire.PasskeyRegisterResponse{}, &client.Error{Status: 503, Code: "unavailable"}
}

func (f *fakeKS) ListPasskeys(context.Context, wire.PasskeyListRequest) (wire.PasskeyListResponse, error) {
	return wire.PasskeyListResponse{}, nil
}

func (f *fakeKS) AuditQuery(context.Context, wire.AuditQueryRequest) (wire.AuditQueryResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if f.queryErr != nil {
		return wire.AuditQueryResponse{}, f.queryErr
	}
	return wire.AuditQueryResponse{ChainOK: true}, nil
}

func (f *fakeKS) calls() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reveals, f.queries
}

// ---- a real key service ----

// keyZone is a real key service in process (keyservice/kstest) behind a
// loopback listener, with the back office's client (reveal, audit) reaching
// it through keyservice/client.
type keyZone struct {
	*kstest.Zone
	backoffice *client.Client
}

// newKeyZone starts a key service whose per-actor short reveal limit is
// revealsPerHour, approving reveals with the passkeys of rp.
func newKeyZone(t *testing.T, revealsPerHour int, rp passkey.RP) *keyZone {
	t.Helper()
	z := kstest.NewZone(t, kstest.Options{
		Clients: []kstest.Client{{ID: "backoffice", Ops: []string{wire.OpReveal, wire.OpAudit}, Alg: client.AlgES256}},
		Limits: func(l *unwrap.Limits) {
			l.RevealActorShort = ratelimit.Limit{Name: "reveal-actor-short", Rate: revealsPerHour, Period: time.Hour, Burst: revealsPerHour}
		},
		RP:     rp,
		Listen: true,
	})
	return &keyZone{Zone: z, backoffice: z.Client(t, "backoffice")}
}

// encrypt builds the ciphertext the checkout page would post.
func (kz *keyZone) encrypt(t *testing.T, pan, session string) string {
	t.Helper()
	return kz.Encrypt(t, fmt.Sprintf(`{"pan":%q,"exp_month":11,"exp_year":%d,"name":"T","iat":%d}`, pan, time.Now().Year()+2, time.Now().Unix()), session)
}

// ---- the merchants ----

// merchantNames stands for the merchant store: the pages read only names
// (Get), and the fixture's merchant ids are short fixed ones the real
// stores would not issue. Any other method panics (nil embedded Store):
// the back office must not call it.
type merchantNames struct {
	merchants.Store
	names map[string]string
}

func (m merchantNames) Get(_ context.Context, id string) (merchants.Merchant, error) {
	n, ok := m.names[id]
	if !ok {
		return merchants.Merchant{}, merchants.ErrNotFound
	}
	return merchants.Merchant{ID: id, Name: n}, nil
}

// The fixture merchants' names.
const (
	merchAName = "Alpha Outdoor Supplies"
	merchBName = "Beta Books"
)

// ---- the pages ----

type fixture struct {
	app       *fiber.App
	ops       *operators.Service
	toks      tokens.Store
	db        *bolt.DB // the bbolt file (the tokens' with the default stores)
	webs      websession.Store
	clock     *fakeClock
	kz        *keyZone // nil with a fake
	fake      *fakeKS
	gwAudit   string
	logs      *logtest.Sink // the gateway's logs, every level; checked for card numbers
	pages     *template.Template
	tokA      tokens.Token // merchant A, the real ciphertext when kz != nil
	tokA2     tokens.Token // merchant A, same card (fingerprint) as tokA
	tokB      tokens.Token // merchant B
	secrets   map[string]string
	operators map[string]operators.Operator
	passkeys  map[string]*passkeytest.Authenticator
	rp        passkey.RP
	metrics   *httpmetrics.Metrics
}

type fixtureOpts struct {
	ks        backoffice.KeyService // overrides the real key service
	noKS      bool                  // use the recording fake
	reveals   int                   // per-actor short reveal limit of the real key service (default 10)
	tls       bool
	hideAfter string // redefines bo_reveal_hide_seconds
	limiter   ratelimit.Limiter
	redis     bool // production stores (Redis) instead of bbolt
	clientIP  *clientip.Resolver
	// origin is the back office's origin (a browser test's listener);
	// default https://pay.example. Its host is the passkeys' RP id.
	origin string
	mfa    operators.MFAMode // -operator-mfa; default any
	log    io.Writer         // also receives the gateway's logs
}

// noLimit lets every request through, for tests that make more login
// attempts from one address than the per-IP limit allows in order to test
// something else (the per-account lockout).
type noLimit struct{}

func (noLimit) Allow(context.Context, string, ratelimit.Limit) (ratelimit.Result, error) {
	return ratelimit.Result{Allowed: true}, nil
}

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "gw.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	f := &fixture{clock: &fakeClock{t: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)},
		secrets: map[string]string{}, operators: map[string]operators.Operator{}, passkeys: map[string]*passkeytest.Authenticator{}, db: db}
	f.logs = logtest.NewSink(t)
	if o.origin == "" {
		o.origin = "https://pay.example"
	}
	u, err := url.Parse(o.origin)
	if err != nil {
		t.Fatal(err)
	}
	f.rp = passkey.RP{ID: u.Hostname(), Origins: []string{o.origin}}
	verifier, err := passkey.New(f.rp)
	if err != nil {
		t.Fatal(err)
	}
	var webs interface {
		websession.Store
		operators.SessionRevoker
	}
	var opStore operators.Store
	if o.redis {
		rdb := testenv.Redis(t)
		f.toks = tokens.NewRedis(rdb, "bg")
		if webs, err = websession.NewRedis(rdb, "bg", websession.Config{}); err != nil {
			t.Fatal(err)
		}
		opStore = operators.NewRedis(rdb, "bg")
		if o.limiter == nil {
			o.limiter = ratelimit.NewRedis(rdb, "bg:rl:")
		}
	} else {
		if f.toks, err = tokens.NewBolt(db); err != nil {
			t.Fatal(err)
		}
		if webs, err = websession.NewBolt(db, websession.Config{}); err != nil {
			t.Fatal(err)
		}
		if opStore, err = operators.NewBolt(db); err != nil {
			t.Fatal(err)
		}
	}
	f.webs = webs
	f.ops, err = operators.NewService(opStore, operators.Config{
		// Cheap hashes: the tests log in dozens of times on a shared 2-core box.
		Params:   operators.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		Now:      f.clock.Now,
		Revoker:  webs,
		MFA:      o.mfa,
		Passkeys: verifier,
	})
	if err != nil {
		t.Fatal(err)
	}
	var ks backoffice.KeyService
	switch {
	case o.ks != nil:
		ks = o.ks
	case o.noKS:
		f.fake = &fakeKS{}
		ks = f.fake
	default:
		if o.reveals == 0 {
			o.reveals = 10
		}
		f.kz = newKeyZone(t, o.reveals, f.rp)
		ks = f.kz.backoffice
	}
	f.pages, err = templates.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if o.hideAfter != "" {
		// The page's own knob for the hide delay: a template the test redefines.
		if _, err := f.pages.New("bo_reveal_hide_seconds").Parse(o.hideAfter); err != nil {
			t.Fatal(err)
		}
	}
	f.gwAudit = filepath.Join(dir, "gw-audit.log")
	gwLog, err := audit.Open(f.gwAudit, audit.Options{Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gwLog.Close() })
	if o.limiter == nil {
		o.limiter = ratelimit.NewMemory()
	}
	assets, err := checkout.NewAssets()
	if err != nil {
		t.Fatal(err)
	}
	// The whole gateway, as served: the pages link the checkout's brand
	// icons and rely on its security headers and error handler.
	var logw io.Writer = f.logs
	if o.log != nil {
		logw = io.MultiWriter(f.logs, o.log)
	}
	f.metrics = httpmetrics.New("blindgate_gateway")
	srv := web.New(web.Deps{
		Tokens: f.toks, KeyService: ks, Operators: f.ops, WebSessions: webs,
		Merchants: merchantNames{names: map[string]string{merchA: merchAName, merchB: merchBName}},
		Limiter:   o.limiter, Audit: gwLog, Assets: assets, Pages: f.pages, Metrics: f.metrics,
		Log:    slog.New(slog.NewJSONHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Config: web.Config{PublicURL: "https://pay.example", TLS: o.tls, Now: f.clock.Now, ClientIP: o.clientIP},
	})
	f.app = srv.App()

	// Tokens: two of the same card at merchant A, one at merchant B.
	jwe := "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.a.b.c.d"
	if f.kz != nil {
		jwe = f.kz.encrypt(t, testPAN, "cs_test")
	}
	put := func(m, bin, last4, fp string, created time.Time, ref string, meta map[string]string) tokens.Token {
		tok, _, err := f.toks.Put(context.Background(), tokens.Token{MerchantID: m, JWE: jwe, Kid: "kek-1", Brand: "visa",
			BIN: bin, Last4: last4, ExpMonth: 11, ExpYear: 2031, Fingerprint: fp, CreatedAt: created,
			Reference: ref, Metadata: meta}, "", 0, "")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	f.tokA = put(merchA, "42424242", "4242", "fp_same", f.clock.Now().Add(-48*time.Hour), testRef, map[string]string{"customer": "c_1077", "channel": "web shop"})
	f.tokA2 = put(merchA, "42424242", "4242", "fp_same", f.clock.Now().Add(-2*time.Hour), "ORD-2026-0043", nil)
	f.tokB = put(merchB, "55555555", "4444", "fp_other", f.clock.Now().Add(-time.Hour), "", nil)
	return f
}

// addOperator creates an operator; with totp it also enrols a second factor
// and returns its secret, then moves the clock past the confirming code's
// time step (a TOTP code is single use).
func (f *fixture) addOperator(t *testing.T, name string, role operators.Role, merchant string, withTOTP bool) operators.Operator {
	t.Helper()
	ctx := context.Background()
	op, err := f.ops.Create(ctx, name, role, merchant, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if withTOTP {
		secret, _, _, err := f.ops.EnrollTOTP(ctx, op.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.ops.ConfirmTOTP(ctx, op.ID, f.codeAt(t, secret, f.clock.Now())); err != nil {
			t.Fatal(err)
		}
		f.secrets[name] = secret
		f.clock.Advance(31 * time.Second)
	}
	f.operators[name] = op
	return op
}

func (f *fixture) codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// code is the current TOTP code of name. Callers that use it move the
// clock to the next time step before asking again (codes are single use).
func (f *fixture) code(t *testing.T, name string) string {
	t.Helper()
	return f.codeAt(t, f.secrets[name], f.clock.Now())
}

// ---- a browser-like client over app.Test ----

type response struct {
	status int
	header http.Header
	body   string
}

type webClient struct {
	f       *fixture
	jar     map[string]string
	header  map[string]string
	passkey *passkeytest.Authenticator // the signed-in operator's, when enrolled
}

func (f *fixture) client() *webClient {
	return &webClient{f: f, jar: map[string]string{}, header: map[string]string{}}
}

func (c *webClient) do(t *testing.T, method, path string, form url.Values) response {
	t.Helper()
	var body io.Reader
	ctype := ""
	if form != nil {
		body, ctype = strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
	}
	return c.doBody(t, method, path, body, ctype)
}

// doBody sends a body of any content type (multipart forms, for instance).
func (c *webClient) doBody(t *testing.T, method, path string, body io.Reader, ctype string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	for k, v := range c.jar {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := c.f.app.Test(req, 20_000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.MaxAge < 0 || ck.Value == "" {
			delete(c.jar, ck.Name)
		} else {
			c.jar[ck.Name] = ck.Value
		}
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (c *webClient) get(t *testing.T, path string) response {
	t.Helper()
	return c.do(t, http.MethodGet, path, nil)
}
func (c *webClient) post(t *testing.T, path string, form url.Values) response {
	t.Helper()
	return c.do(t, http.MethodPost, path, form)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in page:\n%.600s", body)
	}
	return m[1]
}

// loginWith posts the login form (after fetching it for its CSRF token).
func (c *webClient) loginWith(t *testing.T, username, password, code string) response {
	t.Helper()
	page := c.get(t, "/backoffice/login")
	if page.status != http.StatusOK {
		t.Fatalf("login form: %d", page.status)
	}
	return c.post(t, "/backoffice/login", url.Values{"csrf": {csrfOf(t, page.body)}, "username": {username}, "password": {password}, "code": {code}})
}

// login signs name in with its TOTP code and expects the tokens page.
func (c *webClient) login(t *testing.T, name string) {
	t.Helper()
	r := c.loginWith(t, name, testPassword, c.f.code(t, name))
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/backoffice/tokens" {
		t.Fatalf("login %s: %d %s\n%.800s", name, r.status, r.header.Get("Location"), r.body)
	}
	c.f.clock.Advance(30 * time.Second) // the next code must come from a later step
}

// csrf fetches a signed-in page and returns the session's CSRF token.
func (c *webClient) csrf(t *testing.T) string {
	t.Helper()
	r := c.get(t, "/backoffice/tokens")
	if r.status != http.StatusOK {
		t.Fatalf("tokens page: %d", r.status)
	}
	return csrfOf(t, r.body)
}

// postJSON posts a JSON body as the pages' script does: the session's
// CSRF token in X-CSRF-Token.
func (c *webClient) postJSON(t *testing.T, path, csrf string, body any) response {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if csrf != "" {
		c.header["X-CSRF-Token"] = csrf
		defer delete(c.header, "X-CSRF-Token")
	}
	return c.doBody(t, http.MethodPost, path, bytes.NewReader(b), "application/json")
}

// errCode is the code of a JSON error answer ("" when there is none).
func errCode(r response) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal([]byte(r.body), &e)
	return e.Error.Code
}

// revealOpts shape a reveal the way a page (or an attacker) would send it.
// The zero value is the honest page of an operator whose passkey the
// fixture enrolled.
type revealOpts struct {
	auth       *passkeytest.Authenticator // the passkey; nil: the operator's own
	noPasskey  bool                       // send no assertion
	password   string                     // re-authentication fields
	code       string
	signToken  string                // the assertion commits to another token
	signReason string                // ... another reason
	signKey    *wire.BrowserKey      // ... another browser key
	signNonce  string                // ... another nonce
	replay     json.RawMessage       // send this assertion instead
	sendKey    *wire.BrowserKey      // send another browser key than the one signed
	nonce      string                // send another nonce
	keep       func(json.RawMessage) // receives the assertion sent
}

// revealResult is a reveal's last answer and, on success, the card the
// page would decrypt from it.
type revealResult struct {
	response
	code      string      // the error code of a refusal
	challenge response    // the first step's answer
	card      kstest.Card // opened with the browser key, as the page does
	nonce     string
}

// reveal runs the page's two steps for tokID with reason: a browser key,
// the challenge, the passkey's assertion over this reveal, the reveal, and
// the answer opened with the browser key.
func (c *webClient) reveal(t *testing.T, tokID, reason string, o ...revealOpts) revealResult {
	t.Helper()
	var opt revealOpts
	if len(o) > 0 {
		opt = o[0]
	}
	csrf := c.csrf(t)
	key, priv := kstest.BrowserKey(t)
	base := "/backoffice/tokens/" + tokID + "/reveal"
	res := revealResult{}
	res.challenge = c.postJSON(t, base+"/challenge", csrf, map[string]any{"reason": reason, "browser_key": key})
	if res.challenge.status != http.StatusOK {
		res.response, res.code = res.challenge, errCode(res.challenge)
		return res
	}
	var ch struct {
		Nonce          string   `json:"nonce"`
		RPID           string   `json:"rp_id"`
		Credentials    []string `json:"credentials"`
		ReauthRequired bool     `json:"reauth_required"`
	}
	if err := json.Unmarshal([]byte(res.challenge.body), &ch); err != nil {
		t.Fatalf("challenge answer: %v\n%s", err, res.challenge.body)
	}
	res.nonce = ch.Nonce
	body := map[string]any{"reason": reason, "browser_key": key, "nonce": ch.Nonce}
	if opt.password != "" {
		body["password"], body["code"] = opt.password, opt.code
	}
	if opt.sendKey != nil {
		body["browser_key"] = *opt.sendKey
	}
	if opt.nonce != "" {
		body["nonce"] = opt.nonce
	}
	auth := opt.auth
	if auth == nil {
		auth = c.passkey
	}
	switch {
	case opt.replay != nil:
		body["assertion"] = opt.replay
	case !opt.noPasskey && auth != nil:
		signKey, signTok, signReason, signNonce := key, tokID, reason, ch.Nonce
		if opt.signKey != nil {
			signKey = *opt.signKey
		}
		if opt.signToken != "" {
			signTok = opt.signToken
		}
		if opt.signReason != "" {
			signReason = opt.signReason
		}
		if opt.signNonce != "" {
			signNonce = opt.signNonce
		}
		as := kstest.Assertion(t, auth, signNonce, signTok, signReason, signKey)
		body["assertion"] = as
		if opt.keep != nil {
			opt.keep(as)
		}
	}
	res.response = c.postJSON(t, base, csrf, body)
	if res.status != http.StatusOK {
		res.code = errCode(res.response)
		return res
	}
	var ans struct {
		JWE        string `json:"jwe"`
		Credential string `json:"credential"`
	}
	if err := json.Unmarshal([]byte(res.body), &ans); err != nil {
		t.Fatalf("reveal answer: %v", err)
	}
	if c.f.kz != nil {
		res.card = kstest.OpenReveal(t, ans.JWE, priv, tokID, ch.Nonce)
	}
	return res
}

// enrolPasskey enrols a new software passkey for the signed-in operator
// name through the passkeys page's two calls (password and current TOTP
// code), and returns it with the enrolment's answer. The passkey is
// pending at the key service until approve.
func (c *webClient) enrolPasskey(t *testing.T, name string) (*passkeytest.Authenticator, response) {
	t.Helper()
	page := c.get(t, "/backoffice/passkeys") // open before the second factor is done
	if page.status != http.StatusOK {
		t.Fatalf("passkeys page: %d", page.status)
	}
	csrf := csrfOf(t, page.body)
	ch := c.postJSON(t, "/backoffice/passkeys/challenge", csrf, map[string]any{})
	if ch.status != http.StatusOK {
		t.Fatalf("passkey challenge: %d %s", ch.status, ch.body)
	}
	var opts struct {
		Nonce     string              `json:"nonce"`
		Challenge string              `json:"challenge"`
		RP        struct{ ID string } `json:"rp"`
		User      struct{ ID string } `json:"user"`
	}
	if err := json.Unmarshal([]byte(ch.body), &opts); err != nil {
		t.Fatal(err)
	}
	a := kstest.NewAuthenticator(t, c.f.rp)
	challenge, _ := base64.RawURLEncoding.DecodeString(opts.Challenge)
	handle, _ := base64.RawURLEncoding.DecodeString(opts.User.ID)
	att, err := a.Create(challenge, handle)
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"nonce": opts.Nonce, "attestation": json.RawMessage(att), "password": testPassword}
	if c.f.secrets[name] != "" {
		body["code"] = c.f.code(t, name)
		defer c.f.clock.Advance(30 * time.Second) // the code is spent
	}
	r := c.postJSON(t, "/backoffice/passkeys", csrf, body)
	return a, r
}

// addRevealer creates a revealer with TOTP and a passkey enrolled through
// the gateway and approved at the key service (as `keyservice passkeys
// approve` would), and returns a client signed in as it.
func (f *fixture) addRevealer(t *testing.T, name, merchant string) *webClient {
	t.Helper()
	op := f.addOperator(t, name, operators.RoleRevealer, merchant, true)
	c := f.client()
	c.login(t, name)
	a, r := c.enrolPasskey(t, name)
	if r.status != http.StatusCreated {
		t.Fatalf("enrol passkey for %s: %d %s", name, r.status, r.body)
	}
	if f.kz != nil {
		if ids := f.kz.ApprovePending(t, op.ID); len(ids) != 1 {
			t.Fatalf("approved %v", ids)
		}
	}
	f.passkeys[name] = a
	c.passkey = a
	return c
}

// gwEvents reads the gateway's own audit log.
func (f *fixture) gwEvents(t *testing.T, flt audit.Filter) []audit.Event {
	t.Helper()
	b, err := os.ReadFile(f.gwAudit)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := audit.Read(bytes.NewReader(b), flt)
	if err != nil {
		t.Fatalf("gateway audit: %v", err)
	}
	return evs
}

// noPAN fails if the card number appears anywhere in an answer or the logs.
func (f *fixture) noPAN(t *testing.T, r response) {
	t.Helper()
	for _, s := range []string{testPAN, testPANShown} {
		if strings.Contains(r.body, s) {
			t.Errorf("the card number is in the page")
		}
		if strings.Contains(f.logs.String(), s) {
			t.Errorf("the card number is in the logs")
		}
	}
}
