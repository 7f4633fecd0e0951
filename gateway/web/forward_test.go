package web_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/gateway/forwarding"
	"github.com/blindgate/blindgate/gateway/ingest"
	"github.com/blindgate/blindgate/gateway/kek"
	"github.com/blindgate/blindgate/gateway/rewrap"
	"github.com/blindgate/blindgate/gateway/web"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/logtest"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/destinations"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/wire"
	"github.com/blindgate/blindgate/templates"
)

const fwdPAN = "4242424242424242"

// processor is a stand-in for a card processor: HTTPS with its own
// certificate, on loopback. It checks what it receives (a Luhn-valid number,
// an expiry, the CVC at most once) and answers like a processor, echoing
// the card number so the test can prove the answer is redacted.
type processor struct {
	srv     *httptest.Server
	caFile  string
	hits    atomic.Int32
	mu      sync.Mutex
	cvcs    map[string]int
	bad     []string
	lastCVC string
}

func newProcessor(t *testing.T, dir string) *processor {
	t.Helper()
	p := &processor{cvcs: map[string]int{}}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		if strings.HasSuffix(r.URL.Path, "/hangup") {
			// Read the request, then drop the connection: the outcome at
			// the processor is unknown to the key service.
			_, _ = io.ReadAll(r.Body)
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			_ = conn.Close()
			return
		}
		var got struct {
			Number   string `json:"number"`
			ExpMonth string `json:"exp_month"`
			ExpYear  int    `json:"exp_year"`
			CVC      string `json:"cvc"`
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			p.fail("body is not JSON")
		}
		if !luhn(got.Number) {
			p.fail("number is not Luhn-valid")
		}
		if m, _ := strconv.Atoi(got.ExpMonth); m < 1 || m > 12 || got.ExpYear < time.Now().Year() {
			p.fail("expiry " + got.ExpMonth + "/" + strconv.Itoa(got.ExpYear))
		}
		if r.Header.Get("X-Api-Key") != "psp-secret" {
			p.fail("api key header missing")
		}
		if got.CVC != "" {
			p.mu.Lock()
			p.cvcs[got.CVC]++
			if p.cvcs[got.CVC] > 1 {
				p.bad = append(p.bad, "cvc seen twice")
			}
			p.lastCVC = got.CVC
			p.mu.Unlock()
		}
		w.Header().Set("Psp-Reference", "ref-"+got.Number[len(got.Number)-4:])
		w.Header().Set("Set-Cookie", "psp=1")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"resultCode":"Authorised","card":{"number":%q}}`, got.Number)
	}))
	t.Cleanup(p.srv.Close)
	p.caFile = filepath.Join(dir, "psp-ca.pem")
	if err := os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *processor) fail(why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bad = append(p.bad, why)
}

func (p *processor) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bad) > 0 {
		t.Fatalf("processor stand-in refused what it got: %v", p.bad)
	}
}

type fwdFixture struct {
	*gwFixture
	psp     *processor
	procKey *ecdsa.PrivateKey
}

// newForwardServer is the gateway with a real key service in process that
// has destinations pointing at the stand-in, a checkout identity and a
// separate forward identity. Checkout and forward go through the real
// ingest path and the real key-service client, over loopback only.
func newForwardServer(t *testing.T, opts ...func(*kstest.Options)) *fwdFixture {
	t.Helper()
	dir := t.TempDir()
	psp := newProcessor(t, dir)
	port := strconv.Itoa(psp.srv.Listener.Addr().(*net.TCPAddr).Port)
	// A port nobody listens on: the "destination down" case.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	_ = ln.Close()
	procKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jose.MarshalPublicJWK(&procKey.PublicKey, "psp-enc-1")
	if err != nil {
		t.Fatal(err)
	}

	s := boltStores(t)
	now := time.Now()
	clock.now = func() time.Time { return now }
	t.Cleanup(func() { clock.now = time.Now })
	f := &gwFixture{tokens: s.tokens, sessions: s.sessions, webs: s.webs, now: &now}
	f.merchant, f.secret, err = s.merchants.Create(context.Background(), "Shop A", []string{"https://shop-a.example"})
	if err != nil {
		t.Fatal(err)
	}
	f.other, f.otherKey, err = s.merchants.Create(context.Background(), "Shop B", []string{"https://shop-b.example"})
	if err != nil {
		t.Fatal(err)
	}
	list := destinations.New(dir)
	loop := []string{"127.0.0.1/32"}
	// The processor stand-in's card fields, as its operator lists them (R12).
	cf := &destinations.CardFields{Places: map[string][]string{
		"card.number": {"number"}, "card.exp_month": {"exp_month"}, "card.exp_year": {"exp_year"}, "card.cvc": {"cvc"},
	}}
	for _, d := range []destinations.Destination{
		{ID: "psp", URL: "https://127.0.0.1:" + port + "/v1", RequestHeaders: []string{"X-API-Key"}, AnswerHeaders: []string{"Psp-Reference"},
			CAFile: psp.caFile, Merchants: []string{f.merchant.ID}, AllowPrivate: loop, TimeoutMS: 5000, CardFields: cf},
		{ID: "psp-b", URL: "https://127.0.0.1:" + port + "/v1", CAFile: psp.caFile, Merchants: []string{f.other.ID}, AllowPrivate: loop, CardFields: cf},
		{ID: "down", URL: "https://127.0.0.1:" + downPort + "/v1", RequestHeaders: []string{"X-API-Key"}, CAFile: psp.caFile, Merchants: []string{f.merchant.ID}, AllowPrivate: loop, TimeoutMS: 2000, CardFields: cf},
		{ID: "psp-enc", ProcessorKey: jwk, Merchants: []string{f.merchant.ID}, CardFields: cf},
	} {
		if err := list.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	ko := kstest.Options{
		Clients: []kstest.Client{
			{ID: "gateway", Ops: []string{wire.OpInspect, wire.OpRewrap}},
			{ID: "forward", Ops: []string{wire.OpForward}},
		},
		Destinations: list, Listen: true,
	}
	for _, o := range opts {
		o(&ko)
	}
	z := kstest.NewZone(t, ko) // its logs are checked for the card number
	f.kz = &keyZone{Zone: z, checkout: z.Client(t, "gateway")}
	assets, err := checkout.NewAssets()
	if err != nil {
		t.Fatal(err)
	}
	pages, err := templates.Parse()
	if err != nil {
		t.Fatal(err)
	}
	gwAudit, err := audit.Open(filepath.Join(t.TempDir(), "gw-audit.log"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gwAudit.Close() })
	var log *slog.Logger
	log, f.logs = logtest.JSON(t)
	fwd := z.Client(t, "forward").WithHTTPTimeout(client.ForwardTimeout)
	f.srv = web.New(web.Deps{
		Merchants: s.merchants, Sessions: s.sessions, Tokens: s.tokens,
		Ingest: ingest.New(s.sessions, s.tokens, f.kz.checkout, s.limiter, ingest.DefaultLimits(), time.Minute,
			ingest.WithClock(func() time.Time { return *f.now }), ingest.WithAudit(gwAudit, log)),
		Keys:       kek.New(f.kz.checkout, time.Second, time.Minute),
		Forwarding: forwarding.New(s.tokens, fwd, nil),
		Limiter:    s.limiter, Audit: gwAudit, Assets: assets, Pages: pages, Log: log,
		Config: web.Config{PublicURL: "https://pay.example", Now: func() time.Time { return *f.now }},
	})
	return &fwdFixture{gwFixture: f, psp: psp, procKey: procKey}
}

// mint takes a card through the checkout as a shopper would: a session
// opened by the merchant, the card and CVC ciphertexts submitted.
func (f *fwdFixture) mint(t *testing.T, secret, origin string) string {
	t.Helper()
	a := f.do(t, http.MethodPost, "/v1/checkout/sessions", secret, map[string]any{"allowed_origins": []string{origin}})
	if a.status != http.StatusCreated {
		t.Fatalf("create session: %d %s", a.status, a.body)
	}
	sid := a.json["id"].(string)
	sub := f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{
		"card_jwe": f.kz.encrypt(t, fwdPAN, sid), "cvc_jwe": f.kz.encryptCVC(t, "737", sid),
	})
	tok, _ := sub.json["token"].(string)
	if sub.status != 200 || tok == "" {
		t.Fatalf("submit: %d %s", sub.status, sub.body)
	}
	return tok
}

func fwdBody(dest, body string) map[string]any {
	return map[string]any{"destination": dest, "request": map[string]any{
		"path": "/payments", "headers": map[string]string{"X-API-Key": "psp-secret"},
		"body": body, "content_type": "application/json",
	}}
}

const (
	bodyWithCVC = `{"number":"{{card.number}}","exp_month":"{{card.exp_month}}","exp_year":{{card.exp_year}},"cvc":"{{card.cvc}}","amount":1200}`
	bodyNoCVC   = `{"number":"{{card.number}}","exp_month":"{{card.exp_month}}","exp_year":{{card.exp_year}},"amount":1200}`
)

func (f *fwdFixture) forward(t *testing.T, secret, tok, key string, body map[string]any) answer {
	t.Helper()
	var hdr []string
	if key != "" {
		hdr = []string{"Idempotency-Key", key}
	}
	return f.do(t, http.MethodPost, "/v1/tokens/"+tok+"/forward", secret, body, hdr...)
}

func TestForwardEndToEnd(t *testing.T) {
	f := newForwardServer(t)
	tok := f.mint(t, f.secret, "https://shop-a.example")

	first := f.forward(t, f.secret, tok, "order-1001", fwdBody("psp", bodyWithCVC))
	if first.status != 200 || first.json["status"] != float64(201) {
		t.Fatalf("forward: %d %s", first.status, first.body)
	}
	f.psp.check(t)
	if f.psp.hits.Load() != 1 || f.psp.lastCVC != "737" {
		t.Fatalf("processor hits %d, cvc %q", f.psp.hits.Load(), f.psp.lastCVC)
	}
	body, _ := first.json["body"].(string)
	hdrs, _ := first.json["headers"].(map[string]any)
	if !strings.Contains(body, "Authorised") || strings.Contains(string(first.body), "42424242") || hdrs["Psp-Reference"] != "ref-4242" || hdrs["Set-Cookie"] != nil {
		t.Fatalf("merchant's answer: %s", first.body)
	}

	// The same key again: the stored answer, the processor not reached.
	again := f.forward(t, f.secret, tok, "order-1001", fwdBody("psp", bodyWithCVC))
	if again.status != 200 || again.json["replayed"] != true || again.json["body"] != first.json["body"] || f.psp.hits.Load() != 1 {
		t.Fatalf("retry: %d %s (hits %d)", again.status, again.body, f.psp.hits.Load())
	}

	for _, tc := range []struct {
		name, secret, tok, key string
		body                   map[string]any
		status                 int
		code                   string
	}{
		{"422/same-key-other-body", f.secret, tok, "order-1001", fwdBody("psp", bodyNoCVC), 422, "idempotency_mismatch"},
		{"422/cvc-gone", f.secret, tok, "order-1002", fwdBody("psp", bodyWithCVC), 422, "cvc_unavailable"},
		{"404/other-merchants-token", f.otherKey, tok, "order-1003", fwdBody("psp-b", bodyNoCVC), 404, "not_found"},
		{"404/no-such-token", f.secret, "tok_aaaaaaaaaaaaaaaaaaaaaaaaaa", "order-1004", fwdBody("psp", bodyNoCVC), 404, "not_found"},
		{"403/destination-of-another-merchant", f.secret, tok, "order-1005", fwdBody("psp-b", bodyNoCVC), 403, "destination_not_allowed"},
		{"403/unknown-destination", f.secret, tok, "order-1006", fwdBody("nope", bodyNoCVC), 403, "destination_not_allowed"},
		{"400/template", f.secret, tok, "order-1007", fwdBody("psp", `{"pin":"{{card.pin}}"}`), 400, "template_invalid"},
		// R12: the card in a field the processor stores and shows back to
		// whoever holds the merchant's processor credentials.
		{"400/card-in-metadata", f.secret, tok, "order-1010", fwdBody("psp", `{"number":"{{card.number}}","metadata":{"note":"{{card.number}}"},"amount":1200}`), 400, "template_invalid"},
		{"400/card-in-description", f.secret, tok, "order-1011", fwdBody("psp", `{"description":"order {{card.number}}","amount":1200}`), 400, "template_invalid"},
		{"400/no-idempotency-key", f.secret, tok, "", fwdBody("psp", bodyNoCVC), 400, "invalid_field"},
		{"400/pan-shaped-idempotency-key", f.secret, tok, "4111 1111 1111 1111", fwdBody("psp", bodyNoCVC), 400, "invalid_field"},
		{"400/content-type", f.secret, tok, "order-1008", map[string]any{"destination": "psp", "request": map[string]any{"body": "x", "content_type": "text/plain"}}, 400, "invalid_field"},
		{"401/no-key", "", tok, "order-1009", fwdBody("psp", bodyNoCVC), 401, "unauthenticated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := f.forward(t, tc.secret, tc.tok, tc.key, tc.body)
			if a.status != tc.status || a.code() != tc.code {
				t.Fatalf("got %d %s", a.status, a.body)
			}
		})
	}
	if f.psp.hits.Load() != 1 {
		t.Fatalf("refused forwards reached the processor: %d hits", f.psp.hits.Load())
	}

	// Without the CVC, a new key forwards again (a second charge is the
	// merchant's deliberate choice, made with a new key).
	if a := f.forward(t, f.secret, tok, "order-2001", fwdBody("psp", bodyNoCVC)); a.status != 200 || f.psp.hits.Load() != 2 {
		t.Fatalf("second forward: %d %s", a.status, a.body)
	}
	f.psp.check(t)

	// Nothing the gateway wrote holds the number: its logs, its audit trail.
	if strings.Contains(f.logs.String(), fwdPAN) {
		t.Fatal("gateway log holds the card number")
	}
	// The key service audited each forward, without the card.
	evs := f.kz.Events(t, audit.Filter{})
	var fwd, results int
	for _, e := range evs {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), fwdPAN) || strings.Contains(string(b), "order-1001") {
			t.Fatalf("key service audit holds the card or the raw key: %s", b)
		}
		switch e.Event {
		case audit.EventForward:
			fwd++
		case audit.EventForwardResult:
			results++
		}
	}
	if fwd < 2 || results < 3 {
		t.Fatalf("audit: %d forward, %d forward.result", fwd, results)
	}
}

func TestForwardDestinationDown(t *testing.T) {
	f := newForwardServer(t)
	tok := f.mint(t, f.secret, "https://shop-a.example")
	// Nothing listens: nothing was sent, the answer says so, and a retry
	// with the same key tries again (it cannot double-charge).
	for range 2 {
		a := f.forward(t, f.secret, tok, "down-1", fwdBody("down", bodyNoCVC))
		if a.status != 502 || a.code() != "destination_unreachable" {
			t.Fatalf("down: %d %s", a.status, a.body)
		}
	}
	// The processor drops the connection after reading the request: the
	// charge may have happened, so a retry is answered without sending.
	body := fwdBody("psp", bodyNoCVC)
	body["request"].(map[string]any)["path"] = "/hangup"
	for i := range 2 {
		a := f.forward(t, f.secret, tok, "hangup-1", body)
		if a.status != 504 || a.code() != "destination_outcome_unknown" {
			t.Fatalf("hang-up %d: %d %s", i, a.status, a.body)
		}
	}
	if n := f.psp.hits.Load(); n != 1 {
		t.Fatalf("processor reached %d times, want 1", n)
	}
}

func TestForwardEncryptsToProcessorKey(t *testing.T) {
	f := newForwardServer(t)
	tok := f.mint(t, f.secret, "https://shop-a.example")
	a := f.forward(t, f.secret, tok, "enc-1", map[string]any{"destination": "psp-enc", "request": map[string]any{
		"body": bodyWithCVC, "content_type": "application/json",
	}})
	jwe, _ := a.json["jwe"].(string)
	if a.status != 200 || jwe == "" || a.json["status"] != nil {
		t.Fatalf("encrypt: %d %s", a.status, a.body)
	}
	hdr, pt, err := jose.Decrypt([]byte(jwe), f.procKey)
	if err != nil || hdr.Kid != "psp-enc-1" {
		t.Fatalf("processor cannot open it: %v (kid %q)", err, hdr.Kid)
	}
	var got map[string]any
	if err := json.Unmarshal(pt, &got); err != nil || got["number"] != fwdPAN || got["cvc"] != "737" {
		t.Fatalf("processor got %s", pt)
	}
	if f.psp.hits.Load() != 0 {
		t.Fatal("a processor-key destination sent something")
	}
}

// R11: a compromised gateway holds the forward key and rewrites the
// merchant of a forward to one the destination allows. The card was bound
// to its own merchant at inspect: refused, nothing decrypted or sent. The
// merchant's view of its token never shows the binding.
func TestForwardCompromisedGatewayRewritesMerchant(t *testing.T) {
	f := newForwardServer(t)
	tok := f.mint(t, f.secret, "https://shop-a.example")
	stored, err := f.tokens.Lookup(context.Background(), tok)
	if err != nil || stored.Binding == "" {
		t.Fatalf("minted token has no binding: %v", err)
	}
	if a := f.do(t, http.MethodGet, "/v1/tokens/"+tok, f.secret, nil); a.status != 200 || strings.Contains(string(a.body), stored.Binding) || strings.Contains(string(a.body), "binding") {
		t.Fatalf("token view: %d %s", a.status, a.body)
	}
	evil := f.kz.Client(t, "forward")
	for name, req := range map[string]wire.ForwardRequest{
		"other-merchant":   {Merchant: f.other.ID, Destination: "psp-b", Binding: stored.Binding},
		"other-ciphertext": {Merchant: f.merchant.ID, Destination: "psp", Binding: f.kz.Keyring.Binding(f.merchant.ID, []byte(f.kz.encrypt(t, fwdPAN, "cs_x")))},
	} {
		req.JWE, req.Token, req.IdempotencyKey = stored.JWE, stored.ID, "evil"+strings.ReplaceAll(name, "-", "")
		req.Template = wire.ForwardTemplate{ContentType: wire.ContentTypeJSON, Path: "/payments", Body: bodyNoCVC}
		var ce *client.Error
		if _, err := evil.Forward(context.Background(), req); !errors.As(err, &ce) || ce.Status != 403 || ce.Code != "card_not_bound" {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if f.psp.hits.Load() != 0 {
		t.Fatal("the processor was reached")
	}
	for _, e := range f.kz.Events(t, audit.Filter{}) {
		if e.Event == audit.EventForward || e.Event == audit.EventForwardResult {
			t.Fatalf("a forward was authorised: %+v", e)
		}
	}
}

// A rotation moves the token to a new ciphertext with its binding, and it
// still forwards. A token stored before bindings cannot be forwarded, and
// `rewrap -all` binds it only while the key service runs -bind-legacy.
func TestForwardAfterRewrap(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("bind-legacy=%v", legacy), func(t *testing.T) {
			f := newForwardServer(t, func(o *kstest.Options) { o.BindLegacy = legacy })
			ctx := context.Background()
			tok := f.mint(t, f.secret, "https://shop-a.example")
			before, _ := f.tokens.Lookup(ctx, tok)
			// The same card stored before bindings existed.
			old := before
			old.ID, old.Binding, old.SessionID = "", "", ""
			old, _, err := f.tokens.Put(ctx, old, "", 0, "")
			if err != nil {
				t.Fatal(err)
			}
			if a := f.forward(t, f.secret, old.ID, "legacy-1", fwdBody("psp", bodyNoCVC)); a.status != 403 || a.code() != "card_not_bound" {
				t.Fatalf("legacy token: %d %s", a.status, a.body)
			}
			if _, err := f.kz.Keyring.Rotate(keyring.DefaultAlg); err != nil {
				t.Fatal(err)
			}
			if _, err := rewrap.RunAll(ctx, f.tokens, f.kz.checkout); err != nil {
				t.Fatal(err)
			}
			after, _ := f.tokens.Lookup(ctx, tok)
			if after.JWE == before.JWE || after.Binding == "" || after.Binding == before.Binding {
				t.Fatalf("rewrap did not move the token with a new binding: kid %s -> %s", before.Kid, after.Kid)
			}
			if a := f.forward(t, f.secret, tok, "moved-1", fwdBody("psp", bodyNoCVC)); a.status != 200 {
				t.Fatalf("moved token: %d %s", a.status, a.body)
			}
			a := f.forward(t, f.secret, old.ID, "legacy-2", fwdBody("psp", bodyNoCVC))
			if legacy && a.status != 200 || !legacy && (a.status != 403 || a.code() != "card_not_bound") {
				t.Fatalf("legacy token after rewrap -all: %d %s", a.status, a.body)
			}
		})
	}
}

// The gateway with no forward identity refuses before reading anything.
func TestForwardDisabled(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	a := f.do(t, http.MethodPost, "/v1/tokens/tok_aaaaaaaaaaaaaaaaaaaaaaaaaa/forward", f.secret, fwdBody("psp", bodyNoCVC), "Idempotency-Key", "k")
	if a.status != 404 || a.code() != "not_found" {
		t.Fatalf("got %d %s", a.status, a.body)
	}
}
