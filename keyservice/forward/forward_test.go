package forward

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/logtest"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/card"
	"github.com/blindgate/blindgate/keyservice/destinations"
	"github.com/blindgate/blindgate/keyservice/wire"
)

const testPAN = "4242424242424242"

// testOpener is the CardOpener unwrap will provide, built from the same
// pieces (internal/jose, keyservice/card) so the tests decrypt for real.
type testOpener struct {
	key   *ecdsa.PrivateKey
	opens *atomic.Int32
}

// testBinding stands in for keyring.Binding: a tag of (merchant, jwe) that
// the caller cannot compute without the opener's secret.
func testBinding(merchant, jwe string) string {
	mac := hmac.New(sha256.New, []byte("test binding key"))
	mac.Write([]byte(merchant + "\x00" + jwe))
	return wire.BindingPrefix + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

func (o testOpener) CheckBinding(_ context.Context, merchant, jwe, binding string) error {
	if !hmac.Equal([]byte(binding), []byte(testBinding(merchant, jwe))) {
		return ErrNotBound
	}
	return nil
}

func (o testOpener) OpenCard(_ context.Context, jwe, cvcJWE string) (Opened, error) {
	o.opens.Add(1)
	hdr, pt, err := jose.Decrypt([]byte(jwe), o.key)
	defer clear(pt)
	if err != nil {
		return Opened{}, err
	}
	c, err := card.ParsePlaintext(pt)
	if err != nil {
		return Opened{}, err
	}
	out := Opened{Card: c, Kid: hdr.Kid}
	if cvcJWE != "" {
		chdr, cpt, err := jose.Decrypt([]byte(cvcJWE), o.key)
		defer clear(cpt)
		if err != nil || chdr.SessionID != hdr.SessionID {
			return Opened{}, errors.New("cvc refused")
		}
		if out.CVC, err = card.ParseCVC(cpt); err != nil {
			return Opened{}, err
		}
		out.HasCVC = true
	}
	return out, nil
}

type memAudit struct {
	mu     sync.Mutex
	events []audit.Event
}

func (a *memAudit) Append(_ context.Context, e audit.Event) (audit.Event, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
	return e, nil
}

// loopbackDialer fails the test if asked for anything but loopback.
type loopbackDialer struct {
	t     *testing.T
	mu    sync.Mutex
	addrs []string
}

func (d *loopbackDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		d.t.Errorf("dial to non-loopback %q", addr)
		return nil, errors.New("test: refused non-loopback dial")
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

type fixedResolver struct {
	mu      sync.Mutex
	answers [][]netip.Addr
	calls   int
}

func (r *fixedResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.answers[min(r.calls, len(r.answers)-1)]
	r.calls++
	return a, nil
}

type fixture struct {
	t      *testing.T
	key    *ecdsa.PrivateKey
	list   *destinations.List
	dialer *loopbackDialer
	res    *fixedResolver
	audit  *memAudit
	svc    *Service
	hits   atomic.Int32
	opens  atomic.Int32
	got    chan []byte
	log    *slog.Logger
	logs   *logtest.Sink // the service's logs, every level; checked for card numbers
}

func newFixture(t *testing.T, handler http.HandlerFunc, idem Store) *fixture {
	t.Helper()
	f := &fixture{t: t, got: make(chan []byte, 100), audit: &memAudit{}}
	f.log, f.logs = logtest.Text(t)
	var err error
	if f.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		f.got <- b
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	f.list = destinations.New(dir)
	for _, d := range []destinations.Destination{
		{ID: "psp", URL: "https://127.0.0.1:" + itoa(port) + "/v1", RequestHeaders: []string{"X-API-Key"}, AnswerHeaders: []string{"Psp-Reference"},
			CAFile: "ca.pem", Merchants: []string{"m_1"}, AllowPrivate: []string{"127.0.0.1/32"}, TimeoutMS: 5000, CardFields: anyField},
		{ID: "named", URL: "https://example.com:" + itoa(port) + "/v1", RequestHeaders: []string{"X-API-Key"}, CAFile: "ca.pem", Merchants: []string{"m_1"}, AllowPrivate: []string{"127.0.0.1/32"}, CardFields: anyField},
		{ID: "no-private", URL: "https://example.com:" + itoa(port) + "/v1", RequestHeaders: []string{"X-API-Key"}, CAFile: "ca.pem", Merchants: []string{"m_1"}, CardFields: anyField},
		{ID: "other", URL: "https://127.0.0.1:" + itoa(port) + "/v1", CAFile: "ca.pem", Merchants: []string{"m_2"}, AllowPrivate: []string{"127.0.0.1/32"}, CardFields: anyField},
		// A processor's endpoint as an operator lists it: the card's own
		// fields only, and no path below the URL.
		{ID: "fields", URL: "https://127.0.0.1:" + itoa(port) + "/v1/payments", ExactPath: true, RequestHeaders: []string{"X-API-Key"},
			CAFile: "ca.pem", Merchants: []string{"m_1"}, AllowPrivate: []string{"127.0.0.1/32"}, CardFields: requestCardFields},
	} {
		if err := f.list.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	f.dialer = &loopbackDialer{t: t}
	f.res = &fixedResolver{answers: [][]netip.Addr{{netip.MustParseAddr("127.0.0.1")}}}
	if idem == nil {
		idem = NewMemory(0, nil)
	}
	f.svc, err = New(Config{Destinations: f.list, Opener: testOpener{f.key, &f.opens}, Sender: &Sender{Resolver: f.res, Dialer: f.dialer},
		Audit: f.audit, Limiter: ratelimit.NewMemory(), Idempotency: idem,
		Log: f.log, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// anyField is the operator's opt-out of card_fields, for fixtures that test
// other rules with assorted templates.
var anyField = &destinations.CardFields{Any: true}

// requestCardFields lists the card fields of fixture.request's body.
var requestCardFields = &destinations.CardFields{Places: map[string][]string{
	"card.number": {"card.number"}, "card.exp_month": {"card.expiryMonth"}, "card.exp_year": {"card.expiryYear"},
	"card.name": {"card.holderName"}, "card.cvc": {"card.cvc"},
}}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func (f *fixture) cardJWE(name string) string {
	pt, _ := json.Marshal(map[string]any{"pan": testPAN, "exp_month": 3, "exp_year": 2031, "name": name, "iat": time.Now().Unix()})
	enc, err := jose.Encrypt(pt, &f.key.PublicKey, "k1", map[string]string{jose.HeaderSessionID: "cs_1"})
	if err != nil {
		f.t.Fatal(err)
	}
	return string(enc)
}

func (f *fixture) cvcJWE(cvc string) string {
	pt, _ := json.Marshal(map[string]any{"cvc": cvc, "iat": time.Now().Unix()})
	enc, err := jose.Encrypt(pt, &f.key.PublicKey, "k1", map[string]string{jose.HeaderSessionID: "cs_1"})
	if err != nil {
		f.t.Fatal(err)
	}
	return string(enc)
}

func (f *fixture) request(dest, key string) wire.ForwardRequest {
	jwe := f.cardJWE(`Jane "O'Hara"`)
	return wire.ForwardRequest{JWE: jwe, Merchant: "m_1", Token: "tok_1", Destination: dest, IdempotencyKey: key,
		Binding: testBinding("m_1", jwe),
		Template: wire.ForwardTemplate{ContentType: wire.ContentTypeJSON, Path: "/payments", Headers: map[string]string{"X-API-Key": "k"},
			Body: `{"card":{"number":"{{card.number}}","expiryMonth":"{{card.exp_month}}","expiryYear":{{card.exp_year}},"holderName":"{{card.name}}"}}`}}
}

func echoPAN(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Psp-Reference", "psp-"+testPAN)
	w.Header().Set("X-Secret", "not passed on")
	w.WriteHeader(201)
	io.WriteString(w, `{"result":"Authorised","echo":"`+testPAN+`","other":"4111 1111 1111 1111","amount":1234}`)
}

func TestForwardSendsFilledAndRedacts(t *testing.T) {
	f := newFixture(t, echoPAN, nil)
	resp, err := f.svc.Forward(context.Background(), Meta{Client: "gateway"}, f.request("psp", "k-1"))
	if err != nil {
		t.Fatal(err)
	}
	var sent map[string]map[string]any
	if err := json.Unmarshal(<-f.got, &sent); err != nil {
		t.Fatalf("destination got invalid JSON: %v", err)
	}
	c := sent["card"]
	if c["number"] != testPAN || c["expiryMonth"] != "03" || c["expiryYear"] != float64(2031) || c["holderName"] != `Jane "O'Hara"` {
		t.Fatalf("destination got %v", c)
	}
	if resp.Status != 201 || strings.Contains(resp.Body, "4242") || strings.Contains(resp.Body, "4111") || !strings.Contains(resp.Body, "1234") {
		t.Fatalf("answer %d %q", resp.Status, resp.Body)
	}
	if resp.Headers["Psp-Reference"] != "psp-****************" || resp.Headers["X-Secret"] != "" {
		t.Fatalf("answer headers %v", resp.Headers)
	}
	evs := f.audit.events
	if len(evs) != 2 || evs[0].Event != audit.EventForward || evs[1].Event != audit.EventForwardResult || !strings.Contains(evs[1].Reason, "status=201") {
		t.Fatalf("audit %+v", evs)
	}
	for _, e := range evs {
		if b, _ := json.Marshal(e); strings.Contains(string(b), "4242") {
			t.Fatalf("audit holds the card: %s", b)
		}
	}
}

func TestForwardRefusals(t *testing.T) {
	f := newFixture(t, echoPAN, nil)
	for _, tc := range []struct {
		name string
		edit func(r *wire.ForwardRequest)
		want error
	}{
		{"destination/other-merchants", func(r *wire.ForwardRequest) { r.Destination = "other" }, ErrDestination},
		{"destination/unknown", func(r *wire.ForwardRequest) { r.Destination = "nope" }, ErrDestination},
		{"template/header-not-allowed", func(r *wire.ForwardRequest) { r.Template.Headers = map[string]string{"Authorization": "x"} }, ErrTemplate},
		{"template/path-climbs", func(r *wire.ForwardRequest) { r.Template.Path = "/../admin" }, ErrTemplate},
		{"template/unknown-placeholder", func(r *wire.ForwardRequest) { r.Template.Body = `{"a":"{{card.pin}}"}` }, ErrTemplate},
		{"cvc/missing", func(r *wire.ForwardRequest) { r.Template.Body = `{"a":"{{card.cvc}}"}` }, ErrCVCMissing},
		// R11: a caller with the forward key names a merchant the
		// destination allows; the card was bound to another.
		{"binding/other-merchant", func(r *wire.ForwardRequest) { r.Merchant, r.Destination, r.Template.Headers = "m_2", "other", nil }, ErrNotBound},
		{"binding/other-ciphertext", func(r *wire.ForwardRequest) { r.Binding = testBinding("m_1", f.cardJWE("x")) }, ErrNotBound},
		{"binding/missing", func(r *wire.ForwardRequest) { r.Binding = "" }, ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.request("psp", "k-"+tc.name)
			tc.edit(&r)
			n, opens := len(f.audit.events), f.opens.Load()
			if _, err := f.svc.Forward(context.Background(), Meta{}, r); !errors.Is(err, tc.want) {
				t.Fatalf("Forward = %v, want %v", err, tc.want)
			}
			if tc.want == ErrCVCMissing {
				return // refused once the card is open: it names no CVC
			}
			if evs := f.audit.events[n:]; len(evs) != 1 || evs[0].Event != audit.EventForwardDenied || evs[0].Code != Code(tc.want) {
				t.Fatalf("audit %+v", evs)
			}
			if f.opens.Load() != opens {
				t.Fatal("the card was opened")
			}
		})
	}
	if f.hits.Load() != 0 {
		t.Fatalf("destination reached %d times", f.hits.Load())
	}
	// The CVC, when given, fills the template.
	r := f.request("psp", "k-cvc")
	r.CVCJWE, r.Template.Body = f.cvcJWE("123"), `{"cvc":"{{card.cvc}}"}`
	if _, err := f.svc.Forward(context.Background(), Meta{}, r); err != nil {
		t.Fatal(err)
	}
	if got := string(<-f.got); got != `{"cvc":"123"}` {
		t.Fatalf("destination got %s", got)
	}
	// Same key, different request: refused, nothing sent.
	r.Template.Body = `{"cvc2":"{{card.cvc}}"}`
	if _, err := f.svc.Forward(context.Background(), Meta{}, r); !errors.Is(err, ErrIdempotencyMismatch) {
		t.Fatalf("reuse = %v", err)
	}
	if f.hits.Load() != 1 {
		t.Fatalf("destination reached %d times", f.hits.Load())
	}
}

func TestSSRF(t *testing.T) {
	t.Run("private-refused-before-dial", func(t *testing.T) {
		f := newFixture(t, echoPAN, nil)
		_, err := f.svc.Forward(context.Background(), Meta{}, f.request("no-private", "k1"))
		if !errors.Is(err, ErrAddressRefused) || len(f.dialer.addrs) != 0 {
			t.Fatalf("Forward = %v, dials %v", err, f.dialer.addrs)
		}
		// Nothing was sent: the key is released and a retry may send.
		if _, err := f.svc.Forward(context.Background(), Meta{}, f.request("no-private", "k1")); !errors.Is(err, ErrAddressRefused) {
			t.Fatalf("retry = %v", err)
		}
	})
	t.Run("mixed-answer-refused", func(t *testing.T) {
		f := newFixture(t, echoPAN, nil)
		f.res.answers = [][]netip.Addr{{netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("10.0.0.1")}}
		if _, err := f.svc.Forward(context.Background(), Meta{}, f.request("named", "k1")); !errors.Is(err, ErrAddressRefused) || len(f.dialer.addrs) != 0 {
			t.Fatalf("Forward = %v, dials %v", err, f.dialer.addrs)
		}
	})
	t.Run("rebinding-dials-the-checked-address", func(t *testing.T) {
		f := newFixture(t, echoPAN, nil)
		// First answer checked and dialed; a rebinding second answer is
		// never asked for.
		f.res.answers = [][]netip.Addr{{netip.MustParseAddr("127.0.0.1")}, {netip.MustParseAddr("10.9.9.9")}}
		if _, err := f.svc.Forward(context.Background(), Meta{}, f.request("named", "k1")); err != nil {
			t.Fatal(err)
		}
		if f.res.calls != 1 || len(f.dialer.addrs) != 1 || !strings.HasPrefix(f.dialer.addrs[0], "127.0.0.1:") {
			t.Fatalf("resolver calls %d, dials %v", f.res.calls, f.dialer.addrs)
		}
	})
	t.Run("rebinding-to-private-refused", func(t *testing.T) {
		f := newFixture(t, echoPAN, nil)
		f.res.answers = [][]netip.Addr{{netip.MustParseAddr("127.0.0.1")}}
		// no-private: the loopback answer is refused, not dialed.
		if _, err := f.svc.Forward(context.Background(), Meta{}, f.request("no-private", "k1")); !errors.Is(err, ErrAddressRefused) || len(f.dialer.addrs) != 0 {
			t.Fatalf("Forward = %v, dials %v", err, f.dialer.addrs)
		}
	})
	t.Run("redirect-not-followed", func(t *testing.T) {
		var followed atomic.Bool
		f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				followed.Store(true)
			}
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}, nil)
		resp, err := f.svc.Forward(context.Background(), Meta{}, f.request("psp", "k1"))
		if err != nil || resp.Status != http.StatusTemporaryRedirect || followed.Load() || f.hits.Load() != 1 {
			t.Fatalf("Forward = %v %v, followed %v, hits %d", resp, err, followed.Load(), f.hits.Load())
		}
	})
	t.Run("answer-too-large-outcome-unknown-stored", func(t *testing.T) {
		f := newFixture(t, func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 2<<20)) }, nil)
		for range 2 {
			_, err := f.svc.Forward(context.Background(), Meta{}, f.request("psp", "k1"))
			if !errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrStoredFailure) {
				t.Fatalf("Forward = %v", err)
			}
		}
		if f.hits.Load() != 1 {
			t.Fatalf("a retry after an unknown outcome sent again: %d hits", f.hits.Load())
		}
	})
}

func TestAddressAllowed(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"203.0.113.7", true}, {"2001:db8::1", true}, {"127.0.0.1", false}, {"10.1.2.3", false}, {"172.16.0.1", false},
		{"192.168.1.1", false}, {"169.254.169.254", false}, {"100.64.0.1", false}, {"0.0.0.0", false}, {"::1", false},
		{"::", false}, {"fe80::1", false}, {"fc00::1", false}, {"224.0.0.1", false}, {"::ffff:127.0.0.1", false},
		{"64:ff9b::a00:1", false}, {"2002:a00:1::", false}, {"255.255.255.255", false},
	} {
		if got := AddressAllowed(netip.MustParseAddr(tc.ip), nil); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.ip, got, tc.want)
		}
	}
	if !AddressAllowed(netip.MustParseAddr("10.1.2.3"), []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24")}) {
		t.Error("allow_private prefix not honoured")
	}
}

func TestIdempotencyConcurrentRetries(t *testing.T) {
	stores := map[string]func(t *testing.T) Store{
		"memory": func(*testing.T) Store { return NewMemory(0, nil) },
		"redis": func(t *testing.T) Store {
			rdb := testenv.Redis(t)
			return NewRedis(rdb, "bg:test:fwd:"+t.Name()+":"+itoa(int(time.Now().UnixNano()))+":", time.Minute)
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(50 * time.Millisecond) // keep the first in flight while the others retry
				echoPAN(w, r)
			}, mk(t))
			req := f.request("psp", "order-1")
			var wg sync.WaitGroup
			resps := make([]wire.ForwardResponse, 10)
			errs := make([]error, 10)
			for i := range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resps[i], errs[i] = f.svc.Forward(context.Background(), Meta{}, req)
				}()
			}
			wg.Wait()
			replayed := 0
			for i := range 10 {
				if errs[i] != nil || resps[i].Status != 201 || resps[i].Body != resps[0].Body {
					t.Fatalf("retry %d: %v %v", i, resps[i], errs[i])
				}
				if resps[i].Replayed {
					replayed++
				}
			}
			if f.hits.Load() != 1 || replayed != 9 {
				t.Fatalf("destination reached %d times, %d replays", f.hits.Load(), replayed)
			}
		})
	}
}

func TestEncryptToProcessorKey(t *testing.T) {
	f := newFixture(t, echoPAN, nil)
	proc, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwk, err := jose.MarshalPublicJWK(&proc.PublicKey, "proc-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.list.Add(destinations.Destination{ID: "enc", ProcessorKey: jwk, Merchants: []string{"m_1"}, CardFields: requestCardFields}); err != nil {
		t.Fatal(err)
	}
	r := f.request("enc", "k1")
	r.Template.Path, r.Template.Headers = "", nil
	resp, err := f.svc.Forward(context.Background(), Meta{}, r)
	if err != nil || resp.JWE == "" || resp.Body != "" {
		t.Fatalf("Forward = %v %v", resp, err)
	}
	hdr, pt, err := jose.Decrypt([]byte(resp.JWE), proc)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Kid != "proc-1" || !strings.Contains(string(pt), `"number":"`+testPAN+`"`) {
		t.Fatalf("processor got kid %s, %s", hdr.Kid, pt)
	}
	if f.hits.Load() != 0 {
		t.Fatal("encrypt mode sent something")
	}
}

// TestForwardVolume: the daily windows per merchant and per destination
// alarm at 80% and at exhaustion and, unless alarm-only, refuse past them
// (each refusal alarmed too), before anything is decrypted or sent.
func TestForwardVolume(t *testing.T) {
	day := func(name string) ratelimit.Limit {
		return ratelimit.Limit{Name: name, Rate: 5, Period: 24 * time.Hour, Burst: 5}
	}
	tests := []struct {
		name      string
		edit      func(l *Limits)
		forwards  int
		wantHits  int32
		refusedBy string // the limit refusing the last forward, "" for none
		alarms    []string
	}{
		{"429/merchant-daily", func(l *Limits) { l.MerchantDaily = day("fmd") }, 6, 5, "fmd", []string{
			"80% of limit fmd used by merchant m_1", "limit fmd exhausted by merchant m_1", "limit fmd reached by merchant m_1"}},
		{"429/destination-daily", func(l *Limits) { l.DestinationDaily = day("fdd") }, 6, 5, "fdd", []string{
			"80% of limit fdd used by destination psp", "limit fdd exhausted by destination psp", "limit fdd reached by destination psp"}},
		{"200/alarm-only", func(l *Limits) { l.MerchantDaily, l.DailyAlarmOnly = day("fmd"), true }, 7, 7, "", []string{
			"80% of limit fmd used by merchant m_1", "limit fmd exhausted by merchant m_1"}},
		{"429/per-second", func(l *Limits) { l.PerMerchant = ratelimit.Limit{Name: "fm", Rate: 1, Period: time.Hour, Burst: 1} }, 2, 1, "fm", []string{
			"limit fm reached by merchant m_1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, echoPAN, nil)
			log, logs := logtest.Text(t)
			cfg := f.svc.cfg
			cfg.Limits, cfg.Log = DefaultLimits(), log
			tt.edit(&cfg.Limits)
			svc, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.forwards {
				_, err = svc.Forward(context.Background(), Meta{Client: "forward"}, f.request("psp", "k-"+itoa(i)))
				if i < tt.forwards-1 && err != nil {
					t.Fatalf("forward %d: %v", i+1, err)
				}
			}
			var r *ratelimit.Refused
			switch {
			case tt.refusedBy == "" && err != nil:
				t.Fatalf("last forward: %v, want it through", err)
			case tt.refusedBy != "" && (!errors.As(err, &r) || r.Limit != tt.refusedBy || !errors.Is(err, ErrLimited) || Code(err) != "rate_limited"):
				t.Fatalf("last forward: %v, want refused by %s", err, tt.refusedBy)
			}
			if got := f.hits.Load(); got != tt.wantHits {
				t.Fatalf("destination reached %d times, want %d", got, tt.wantHits)
			}
			var alarms []string
			for _, e := range f.audit.events {
				if e.Event == audit.EventAlarm {
					if e.Actor != "m_1" || e.Client != "forward" || e.Resource != "tok_1" {
						t.Errorf("alarm without its caller: %+v", e)
					}
					alarms = append(alarms, e.Reason)
				}
			}
			if strings.Join(alarms, "|") != strings.Join(tt.alarms, "|") {
				t.Fatalf("alarms %q, want %q", alarms, tt.alarms)
			}
			if n := strings.Count(logs.String(), `level=ERROR msg="ALARM: unusual forward activity"`); n != len(tt.alarms) {
				t.Fatalf("%d ALARM log lines, want %d:\n%s", n, len(tt.alarms), logs.String())
			}
			if strings.Contains(logs.String(), "4242") {
				t.Fatal("a log line holds the card")
			}
		})
	}
}

func TestNewRefusesUnwatchedLimits(t *testing.T) {
	f := newFixture(t, echoPAN, nil)
	for name, edit := range map[string]func(l *Limits){
		"merchant-daily-missing":    func(l *Limits) { l.MerchantDaily = ratelimit.Limit{} },
		"destination-daily-missing": func(l *Limits) { l.DestinationDaily = ratelimit.Limit{} },
		"fraction-100%":             func(l *Limits) { l.AlarmDailyFraction = 1 },
	} {
		cfg := f.svc.cfg
		cfg.Limits = DefaultLimits()
		edit(&cfg.Limits)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

// TestForwardCardFields (R12): with card_fields, a card placeholder goes
// only into the fields the operator listed for it, as their whole value,
// and with exact_path the template adds no path. Anything else is refused
// as template_invalid before the card is opened or anything is sent, so a
// merchant cannot park the card in a field the processor stores and shows
// back (metadata, a description).
func TestForwardCardFields(t *testing.T) {
	f := newFixture(t, echoPAN, nil)
	if err := f.list.Add(destinations.Destination{ID: "no-fields", URL: "https://127.0.0.1:1/v1", CAFile: "ca.pem", Merchants: []string{"m_1"}, AllowPrivate: []string{"127.0.0.1/32"}}); err != nil {
		t.Fatal(err)
	}
	const card = `"card":{"number":"{{card.number}}","expiryMonth":"{{card.exp_month}}","expiryYear":{{card.exp_year}},"holderName":"{{card.name}}"}`
	for _, tc := range []struct {
		name string
		edit func(r *wire.ForwardRequest)
	}{
		{"refused/metadata", func(r *wire.ForwardRequest) { r.Template.Body = `{` + card + `,"metadata":{"n":"{{card.number}}"}}` }},
		{"refused/description", func(r *wire.ForwardRequest) { r.Template.Body = `{` + card + `,"description":"{{card.number}}"}` }},
		{"refused/description-only", func(r *wire.ForwardRequest) { r.Template.Body = `{"description":"{{card.number}}"}` }},
		{"refused/inside-a-longer-string", func(r *wire.ForwardRequest) { r.Template.Body = `{"card":{"number":"n {{card.number}}"}}` }},
		{"refused/field-of-another-placeholder", func(r *wire.ForwardRequest) { r.Template.Body = `{"card":{"holderName":"{{card.number}}"}}` }},
		{"refused/in-an-array", func(r *wire.ForwardRequest) { r.Template.Body = `{"card":{"number":["{{card.number}}"]}}` }},
		{"refused/dotted-member-name", func(r *wire.ForwardRequest) { r.Template.Body = `{"card.number":"{{card.number}}"}` }},
		{"refused/bare-expiry-in-metadata", func(r *wire.ForwardRequest) { r.Template.Body = `{` + card + `,"metadata":{{card.exp_year}}}` }},
		{"refused/exact-path-suffix", func(r *wire.ForwardRequest) { r.Template.Path = "/refunds" }},
		{"refused/destination-without-card-fields", func(r *wire.ForwardRequest) { r.Destination = "no-fields" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.request("fields", "k-"+tc.name)
			r.Template.Path = ""
			tc.edit(&r)
			n, opens := len(f.audit.events), f.opens.Load()
			if _, err := f.svc.Forward(context.Background(), Meta{}, r); !errors.Is(err, ErrTemplate) || Code(err) != "template_invalid" {
				t.Fatalf("Forward = %v, want template_invalid", err)
			}
			if evs := f.audit.events[n:]; len(evs) != 1 || evs[0].Event != audit.EventForwardDenied || evs[0].Code != "template_invalid" {
				t.Fatalf("audit %+v", evs)
			}
			if f.opens.Load() != opens || f.hits.Load() != 0 {
				t.Fatalf("card opened (%d) or sent (%d hits)", f.opens.Load()-opens, f.hits.Load())
			}
		})
	}
	r := f.request("fields", "k-ok")
	r.Template.Path = ""
	if _, err := f.svc.Forward(context.Background(), Meta{}, r); err != nil {
		t.Fatalf("the card in its listed fields: %v", err)
	}
	if got := string(<-f.got); !strings.Contains(got, `"number":"`+testPAN+`"`) || f.hits.Load() != 1 {
		t.Fatalf("destination got %s (%d hits)", got, f.hits.Load())
	}
}
