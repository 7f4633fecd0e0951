package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/gateway/clientip"
	"github.com/blindgate/blindgate/gateway/idempotency"
	"github.com/blindgate/blindgate/gateway/ingest"
	"github.com/blindgate/blindgate/gateway/kek"
	"github.com/blindgate/blindgate/gateway/merchants"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/gateway/web"
	"github.com/blindgate/blindgate/gateway/webhooks"
	"github.com/blindgate/blindgate/gateway/websession"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/logtest"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/unwrap"
	"github.com/blindgate/blindgate/keyservice/wire"
	"github.com/blindgate/blindgate/templates"
)

// keyZone is a real key service in process (keyservice/kstest) behind a
// loopback listener, with a checkout client (inspect, rewrap) and a
// back-office client (reveal, audit) reaching it through keyservice/client.
type keyZone struct {
	*kstest.Zone
	checkout   *client.Client
	backoffice *client.Client
}

// newKeyZone starts a key service whose per-actor short reveal limit is
// revealsPerHour.
func newKeyZone(t *testing.T, revealsPerHour int) *keyZone {
	t.Helper()
	z := kstest.NewZone(t, kstest.Options{
		Clients: []kstest.Client{
			{ID: "gateway", Ops: []string{wire.OpInspect, wire.OpRewrap}},
			{ID: "backoffice", Ops: []string{wire.OpReveal, wire.OpAudit}, Alg: client.AlgES256},
		},
		Limits: func(l *unwrap.Limits) {
			l.RevealActorShort = ratelimit.Limit{Name: "reveal-actor-short", Rate: revealsPerHour, Period: time.Hour, Burst: revealsPerHour}
		},
		Listen: true,
	})
	return &keyZone{Zone: z, checkout: z.Client(t, "gateway"), backoffice: z.Client(t, "backoffice")}
}

// encrypt builds the ciphertext the checkout page would post.
func (kz *keyZone) encrypt(t *testing.T, pan, session string) string {
	t.Helper()
	return kz.Encrypt(t, fmt.Sprintf(`{"pan":%q,"exp_month":11,"exp_year":%d,"name":"T","iat":%d}`, pan, time.Now().Year()+2, time.Now().Unix()), session)
}

func (kz *keyZone) encryptCVC(t *testing.T, cvc, session string) string {
	t.Helper()
	return kz.Encrypt(t, fmt.Sprintf(`{"cvc":%q,"iat":%d}`, cvc, time.Now().Unix()), session)
}

type gwFixture struct {
	srv      *web.Server
	kz       *keyZone
	merchant merchants.Merchant
	secret   string
	other    merchants.Merchant
	otherKey string
	tokens   tokens.Store
	sessions sessions.Store
	ops      *operators.Service
	webs     websession.Store
	now      *time.Time
	logs     *logtest.Sink // the gateway's logs, every level; checked for card numbers
	hooks    *webhooks.Service
}

type storeSet struct {
	merchants merchants.Store
	sessions  sessions.Store
	tokens    tokens.Store
	ops       operators.Store
	webs      websession.Store
	limiter   ratelimit.Limiter
	idem      idempotency.Store
	hooks     webhooks.Store
}

// clock is the fixture's time, shared by the API and the session store so a
// test can move past an expiry.
var clock = struct{ now func() time.Time }{now: time.Now}

func boltStores(t *testing.T) storeSet {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "gw.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	var s storeSet
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	var e error
	s.merchants, e = merchants.NewBolt(db)
	must(e)
	s.sessions, e = sessions.NewBolt(db, sessions.WithClock(func() time.Time { return clock.now() }))
	must(e)
	s.tokens, e = tokens.NewBolt(db)
	must(e)
	s.ops, e = operators.NewBolt(db)
	must(e)
	s.webs, e = websession.NewBolt(db, websession.Config{})
	must(e)
	s.limiter = ratelimit.NewMemory()
	s.idem, e = idempotency.NewBolt(db)
	must(e)
	s.hooks, e = webhooks.NewBolt(db, nil)
	must(e)
	return s
}

func redisStores(t *testing.T, rdb *redis.Client) storeSet {
	t.Helper()
	ws, err := websession.NewRedis(rdb, "bg", websession.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return storeSet{
		merchants: merchants.NewRedis(rdb, "bg"), sessions: sessions.NewRedis(rdb, "bg", sessions.WithClock(func() time.Time { return clock.now() })), tokens: tokens.NewRedis(rdb, "bg"),
		ops: operators.NewRedis(rdb, "bg"), webs: ws, limiter: ratelimit.NewRedis(rdb, "bg:rl:"),
		idem: idempotency.NewRedis(rdb, "bg"), hooks: webhooks.NewRedis(rdb, "bg"),
	}
}

// inspectorFunc lets a test put a broken key service in front of ingest.
type inspectorFunc func(ctx context.Context, req wire.InspectRequest) (wire.InspectResponse, error)

func (f inspectorFunc) Inspect(ctx context.Context, req wire.InspectRequest) (wire.InspectResponse, error) {
	return f(ctx, req)
}

type fixtureOpt struct {
	stores    *storeSet
	inspector ingest.Inspector
	limits    *ingest.Limits
	tls       bool
	clientIP  *clientip.Resolver
}

func newTestServer(t *testing.T, o fixtureOpt) *gwFixture {
	t.Helper()
	kz := newKeyZone(t, 2)
	s := boltStores(t)
	if o.stores != nil {
		s = *o.stores
	}
	now := time.Now()
	clock.now = func() time.Time { return now }
	t.Cleanup(func() { clock.now = time.Now })
	f := &gwFixture{kz: kz, tokens: s.tokens, sessions: s.sessions, webs: s.webs, now: &now}
	var err error
	f.merchant, f.secret, err = s.merchants.Create(context.Background(), "Shop A", []string{"https://shop-a.example", "http://localhost:9999"})
	if err != nil {
		t.Fatal(err)
	}
	f.other, f.otherKey, err = s.merchants.Create(context.Background(), "Shop B", []string{"https://shop-b.example"})
	if err != nil {
		t.Fatal(err)
	}
	f.ops, err = operators.NewService(s.ops, operators.Config{Params: operators.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, Revoker: s.webs})
	if err != nil {
		t.Fatal(err)
	}
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
	inspector := o.inspector
	if inspector == nil {
		inspector = kz.checkout
	}
	limits := ingest.DefaultLimits()
	if o.limits != nil {
		limits = *o.limits
	}
	var log *slog.Logger
	log, f.logs = logtest.JSON(t)
	f.hooks = webhooks.New(s.hooks, webhooks.Config{AllowLoopback: true, Log: log})
	f.srv = web.New(web.Deps{
		Merchants: s.merchants, Sessions: s.sessions, Tokens: s.tokens,
		Ingest: ingest.New(s.sessions, s.tokens, inspector, s.limiter, limits, time.Minute,
			ingest.WithClock(func() time.Time { return *f.now }), ingest.WithAudit(gwAudit, log), ingest.WithEvents(f.hooks)),
		Keys:       kek.New(kz.checkout, time.Second, time.Minute),
		KeyService: kz.backoffice, Operators: f.ops, WebSessions: s.webs, Limiter: s.limiter,
		Audit: gwAudit, Idempotency: s.idem, Webhooks: f.hooks, Assets: assets, Pages: pages, Log: log,
		Config: web.Config{PublicURL: "https://pay.example", TLS: o.tls, Now: func() time.Time { return *f.now }, ClientIP: o.clientIP},
	})
	return f
}

type answer struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (a answer) code() string {
	e, _ := a.json["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (f *gwFixture) do(t *testing.T, method, path, bearer string, body any, hdr ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.App().Test(req, 20_000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &a.json)
	return a
}

// newSession creates a checkout session for merchant A through the API.
func (f *gwFixture) newSession(t *testing.T, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"allowed_origins": []string{"https://shop-a.example"}}
	for k, v := range extra {
		body[k] = v
	}
	a := f.do(t, http.MethodPost, "/v1/checkout/sessions", f.secret, body)
	if a.status != http.StatusCreated {
		t.Fatalf("create session: %d %s", a.status, a.body)
	}
	return a.json["id"].(string)
}
