package web_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/internal/testenv"
)

// countingCreate counts session creations and, with gate set, holds each
// one until the gate closes.
type countingCreate struct {
	sessions.Store
	n       *atomic.Int32
	entered chan struct{}
	gate    chan struct{}
}

func (c countingCreate) Create(ctx context.Context, s sessions.Session) (sessions.Session, error) {
	c.n.Add(1)
	if c.gate != nil {
		c.entered <- struct{}{}
		<-c.gate
	}
	return c.Store.Create(ctx, s)
}

func TestCreateSessionIdempotency(t *testing.T) {
	s := boltStores(t)
	var n atomic.Int32
	s.sessions = countingCreate{Store: s.sessions, n: &n}
	f := newTestServer(t, fixtureOpt{stores: &s})
	body := map[string]any{"allowed_origins": []string{"https://shop-a.example"}}
	post := func(t *testing.T, secret string, body any, hdr ...string) answer {
		t.Helper()
		return f.do(t, http.MethodPost, "/v1/checkout/sessions", secret, body, hdr...)
	}

	t.Run("201/retry-replays-without-a-second-session", func(t *testing.T) {
		n.Store(0)
		a1 := post(t, f.secret, body, "Idempotency-Key", "order-1")
		a2 := post(t, f.secret, body, "Idempotency-Key", "order-1")
		if a1.status != 201 || a2.status != 201 || a1.json["id"] != a2.json["id"] {
			t.Fatalf("first %d %s, retry %d %s", a1.status, a1.body, a2.status, a2.body)
		}
		if a2.header.Get("Idempotent-Replayed") != "true" || a1.header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("replay marker: first %q, retry %q", a1.header.Get("Idempotent-Replayed"), a2.header.Get("Idempotent-Replayed"))
		}
		if !strings.HasPrefix(a2.header.Get("Content-Type"), "application/json") {
			t.Fatalf("replayed content type %q", a2.header.Get("Content-Type"))
		}
		if n.Load() != 1 {
			t.Fatalf("%d sessions created, want 1", n.Load())
		}
	})

	t.Run("422/same-key-other-body", func(t *testing.T) {
		post(t, f.secret, body, "Idempotency-Key", "order-2")
		a := post(t, f.secret, map[string]any{"locale": "fr"}, "Idempotency-Key", "order-2")
		if a.status != 422 || a.code() != "idempotency_mismatch" {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})

	t.Run("201/key-is-per-merchant", func(t *testing.T) {
		a1 := post(t, f.secret, body, "Idempotency-Key", "order-3")
		a2 := post(t, f.otherKey, map[string]any{}, "Idempotency-Key", "order-3")
		if a1.status != 201 || a2.status != 201 || a1.json["id"] == a2.json["id"] {
			t.Fatalf("merchant A %d %s, merchant B %d %s", a1.status, a1.body, a2.status, a2.body)
		}
	})

	t.Run("400/refusal-not-stored-key-reusable", func(t *testing.T) {
		a := post(t, f.secret, map[string]any{"locale": "xx"}, "Idempotency-Key", "order-4")
		if a.status != 400 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		// The refusal did nothing: the corrected request may use the key.
		if a := post(t, f.secret, body, "Idempotency-Key", "order-4"); a.status != 201 {
			t.Fatalf("corrected request: %d %s", a.status, a.body)
		}
	})

	t.Run("400/invalid-key", func(t *testing.T) {
		for name, k := range map[string]string{"control": "a\tb", "long": strings.Repeat("k", 256), "non-ascii": "clé", "card-number": "4242 4242 4242 4242"} {
			if a := post(t, f.secret, body, "Idempotency-Key", k); a.status != 400 || a.code() != "invalid_field" {
				t.Errorf("%s: %d %s", name, a.status, a.body)
			}
		}
	})

	t.Run("201/no-header-no-idempotency", func(t *testing.T) {
		a1, a2 := post(t, f.secret, body), post(t, f.secret, body)
		if a1.status != 201 || a2.status != 201 || a1.json["id"] == a2.json["id"] {
			t.Fatalf("%s %s", a1.body, a2.body)
		}
	})

	t.Run("401/before-the-key-is-looked-at", func(t *testing.T) {
		if a := post(t, "sk_wrong", body, "Idempotency-Key", "order-1"); a.status != 401 {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})
}

// TestCreateSessionConcurrentRetries: of ten concurrent requests with one
// key exactly one creates a session; the others are told it is in progress,
// and a later retry gets the same session. On bbolt and on Redis.
func TestCreateSessionConcurrentRetries(t *testing.T) {
	for name, stores := range map[string]func(t *testing.T) storeSet{
		"bolt":  boltStores,
		"redis": func(t *testing.T) storeSet { return redisStores(t, testenv.Redis(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			s := stores(t)
			var n atomic.Int32
			cc := countingCreate{Store: s.sessions, n: &n, entered: make(chan struct{}, 10), gate: make(chan struct{})}
			s.sessions = cc
			f := newTestServer(t, fixtureOpt{stores: &s})
			body := map[string]any{"allowed_origins": []string{"https://shop-a.example"}}
			const total = 10
			answers := make(chan answer, total)
			var wg sync.WaitGroup
			for range total {
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers <- f.do(t, http.MethodPost, "/v1/checkout/sessions", f.secret, body, "Idempotency-Key", "race-1")
				}()
			}
			<-cc.entered // one request holds the key inside the handler
			busy := 0
			for range total - 1 {
				a := <-answers
				if a.status != 409 || a.code() != "idempotency_in_progress" || a.header.Get("Retry-After") == "" {
					t.Errorf("concurrent retry: %d %s", a.status, a.body)
				}
				busy++
			}
			close(cc.gate)
			wg.Wait()
			first := <-answers
			if first.status != 201 || n.Load() != 1 || busy != total-1 {
				t.Fatalf("first %d %s; %d sessions created", first.status, first.body, n.Load())
			}
			again := f.do(t, http.MethodPost, "/v1/checkout/sessions", f.secret, body, "Idempotency-Key", "race-1")
			if again.status != 201 || again.json["id"] != first.json["id"] || n.Load() != 1 {
				t.Fatalf("retry after: %d %s (%d sessions)", again.status, again.body, n.Load())
			}
		})
	}
}
