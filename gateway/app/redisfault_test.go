package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/wire"
)

const redisTimeout = 200 * time.Millisecond

// checkoutGateway is the gateway as cmd/gateway wires it, checking cards
// with a real key service (in process, memory backends), with its store
// and anything else as args and edit say.
type checkoutGateway struct {
	app    *App
	zone   *kstest.Zone
	secret string
}

func newCheckoutGateway(t *testing.T, log *slog.Logger, args []string, edit func(*Config)) *checkoutGateway {
	t.Helper()
	z := kstest.NewZone(t, kstest.Options{Listen: true, Clients: []kstest.Client{{ID: "gateway", Ops: []string{wire.OpInspect}}}})
	s := z.Signer(t, "gateway")
	jwk, err := jose.MarshalPrivateJWK(s.Key, s.Kid)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "gateway.jwk")
	if err := os.WriteFile(keyFile, jwk, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, append([]string{"-keyservice-url", z.URL, "-keyservice-audience", kstest.Audience,
		"-checkout-client-id", "gateway", "-checkout-key", keyFile,
		// The test's own submissions from one address must not meet the
		// per-IP limit: recovery is measured to the first token.
		"-submit-per-ip", "100000"}, args...)...)
	if edit != nil {
		edit(&cfg)
	}
	if log == nil {
		log = testLog(t)
	}
	a, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.audit.Close()
		_ = a.stores.Close()
	})
	_, secret, err := a.stores.Merchants.Create(context.Background(), "Shop", []string{"https://shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	return &checkoutGateway{app: a, zone: z, secret: secret}
}

// newFaultyGateway has its store on a dedicated Redis behind a fault proxy
// (only the gateway's Redis fails).
func newFaultyGateway(t *testing.T, fr *testenv.FaultyRedis) *checkoutGateway {
	t.Helper()
	return newCheckoutGateway(t, nil, []string{"-store", "redis", "-redis", fr.Addr, "-redis-timeout", redisTimeout.String()}, nil)
}

func (g *checkoutGateway) do(t *testing.T, method, path, bearer string, body any) (int, map[string]any) {
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
	resp, err := g.app.Server().App().Test(req, 20_000)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (g *checkoutGateway) session(t *testing.T) (string, error) {
	t.Helper()
	st, m := g.do(t, http.MethodPost, "/v1/checkout/sessions", g.secret, map[string]any{"allowed_origins": []string{"https://shop.example"}})
	if st != http.StatusCreated {
		return "", fmt.Errorf("create session: %d %v", st, m)
	}
	return m["id"].(string), nil
}

func (g *checkoutGateway) submit(t *testing.T, sid string) (int, map[string]any) {
	t.Helper()
	jwe := g.zone.Encrypt(t, fmt.Sprintf(`{"pan":"4242424242424242","exp_month":11,"exp_year":%d,"name":"T","iat":%d}`, time.Now().Year()+2, time.Now().Unix()), sid)
	return g.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": jwe})
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// TestRedisFaults: with its Redis full, silent, slow or restarted, the
// gateway refuses a checkout submitted to a session opened before the fault
// with 503 unavailable within the Redis timeout, asks the key service
// nothing (no decrypt), and /readyz fails "redis"; once Redis is back the
// same process takes checkouts again.
func TestRedisFaults(t *testing.T) {
	fr := testenv.NewFaultyRedis(t)
	g := newFaultyGateway(t, fr)
	sid, err := g.session(t)
	if err != nil {
		t.Fatal(err)
	}
	if st, m := g.submit(t, sid); st != 200 {
		t.Fatalf("checkout before the fault: %d %v", st, m)
	}
	for _, f := range fr.Faults(10 * redisTimeout) {
		t.Run("503/"+f.Name, func(t *testing.T) {
			sid, err := g.session(t)
			if err != nil {
				t.Fatal(err)
			}
			inspects := len(g.zone.Events(t, audit.Filter{Event: audit.EventInspect}))
			f.Inject(t)
			start := time.Now()
			st, m := g.submit(t, sid)
			took := time.Since(start)
			if st != 503 || errCode(m) != "unavailable" {
				t.Fatalf("checkout with Redis %s: %d %v, want 503 unavailable", f.Name, st, m)
			}
			// A submission makes a few Redis calls before it gives up (the
			// per-IP limit first); each is bounded by the timeout.
			if took > 3*redisTimeout+2*time.Second {
				t.Errorf("checkout with Redis %s answered after %s (Redis timeout %s)", f.Name, took, redisTimeout)
			}
			t.Logf("checkout with Redis %s: %d %s after %s", f.Name, st, errCode(m), took.Round(time.Millisecond))

			var wg sync.WaitGroup
			var bad sync.Map
			for i := range 20 {
				wg.Go(func() {
					if st, m := g.submit(t, sid); st != 503 {
						bad.Store(i, fmt.Sprint(st, m))
					}
				})
			}
			wg.Wait()
			bad.Range(func(k, v any) bool { t.Errorf("concurrent checkout %v: %v", k, v); return true })
			if n := len(g.zone.Events(t, audit.Filter{Event: audit.EventInspect})); n != inspects {
				t.Errorf("the key service inspected %d cards while the gateway's Redis was %s", n-inspects, f.Name)
			}
			g.waitReadyz(t, 503, "redis")

			f.Heal(t)
			start = time.Now()
			for {
				sid, err := g.session(t)
				if err == nil {
					if st, m := g.submit(t, sid); st == 200 {
						break
					} else {
						err = fmt.Errorf("submit: %d %v", st, m)
					}
				}
				if time.Since(start) > 10*time.Second {
					t.Fatalf("checkout still failing 10s after Redis %s ended: %v", f.Name, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("checkout served again %s after Redis %s ended", time.Since(start).Round(time.Millisecond), f.Name)
			g.waitReadyz(t, 200, "")
		})
	}
}

func (g *checkoutGateway) waitReadyz(t *testing.T, status int, check string) {
	t.Helper()
	start := time.Now()
	for {
		st, m := g.do(t, http.MethodGet, "/readyz", "", nil)
		failing, _ := m["failing"].([]any)
		named := check == ""
		for _, f := range failing {
			named = named || f == check
		}
		if st == status && named {
			t.Logf("readyz %d after %s", st, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("readyz %d %v, want %d failing %q", st, m, status, check)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
