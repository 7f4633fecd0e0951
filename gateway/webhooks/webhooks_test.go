package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/forwarding"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/testenv"
)

func TestSignature(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"evt_1","type":"token.created"}`)
	h := Sign("whsec_a", now, body)
	if !strings.HasPrefix(h, "t=1800000000,v1=") {
		t.Fatalf("header %q", h)
	}
	tests := []struct {
		name    string
		secrets []string
		header  string
		body    []byte
		now     time.Time
		ok      bool
	}{
		{"ok/valid", []string{"whsec_a"}, h, body, now, true},
		{"ok/previous-secret-during-rotation", []string{"whsec_new", "whsec_a"}, h, body, now.Add(time.Minute), true},
		{"401/tampered-body", []string{"whsec_a"}, h, []byte(strings.Replace(string(body), "evt_1", "evt_2", 1)), now, false},
		{"401/other-secret", []string{"whsec_b"}, h, body, now, false},
		{"401/stale", []string{"whsec_a"}, h, body, now.Add(DefaultTolerance + time.Second), false},
		{"401/future", []string{"whsec_a"}, h, body, now.Add(-DefaultTolerance - time.Second), false},
		{"401/timestamp-changed", []string{"whsec_a"}, strings.Replace(h, "t=1800000000", "t=1800000001", 1), body, now, false},
		{"401/no-signature", []string{"whsec_a"}, "t=1800000000", body, now, false},
		{"401/garbage", []string{"whsec_a"}, "nonsense", body, now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secrets, tt.header, tt.body, tt.now, 0)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrUnauthorized)) {
				t.Fatalf("Verify = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestValidateURL(t *testing.T) {
	tests := []struct {
		name, raw, want string
		loopback        bool
	}{
		{"ok/https", "https://Shop.Example/hooks?x=1", "https://shop.example/hooks?x=1", false},
		{"ok/http-loopback-with-flag", "http://127.0.0.1:8080/h", "http://127.0.0.1:8080/h", true},
		{"ok/localhost-with-flag", "http://localhost:9/h", "http://localhost:9/h", true},
		{"400/http-public", "http://shop.example/h", "", true},
		{"400/loopback-without-flag", "http://127.0.0.1:8080/h", "", false},
		{"400/localhost-without-flag", "https://localhost/h", "", false},
		{"400/private-ip", "https://10.1.2.3/h", "", true},
		{"400/link-local-metadata", "https://169.254.169.254/latest", "", true},
		{"400/ipv6-loopback-without-flag", "https://[::1]/h", "", false},
		{"400/user-info", "https://u:p@shop.example/h", "", false},
		{"400/fragment", "https://shop.example/h#x", "", false},
		{"400/pan", "https://shop.example/h?c=4242424242424242", "", false},
		{"400/ftp", "ftp://shop.example/h", "", false},
		{"400/space", "https://shop.example/a b", "", false},
		{"400/empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ValidateURL(tt.raw, tt.loopback)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidURL) {
					t.Fatalf("ValidateURL = %q, %v; want refused", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ValidateURL = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func newBoltStore(t *testing.T) Store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "w.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s, err := NewBolt(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func stores(t *testing.T) map[string]func(t *testing.T) Store {
	var n atomic.Int64
	return map[string]func(t *testing.T) Store{
		"bolt": newBoltStore,
		"redis": func(t *testing.T) Store {
			return NewRedis(testenv.Redis(t), fmt.Sprintf("bgtest-%d", n.Add(1)))
		},
		// The Cluster path (record, then queue, in two steps) on one node.
		"redis-cluster-path": func(t *testing.T) Store {
			s := NewRedis(testenv.Redis(t), fmt.Sprintf("bgtest-%d", n.Add(1)))
			s.cluster = true
			return s
		},
	}
}

func TestStoreContract(t *testing.T) {
	ctx := context.Background()
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			now := time.Now().UTC().Truncate(time.Millisecond)
			for i := range MaxEndpoints {
				if err := s.AddEndpoint(ctx, Endpoint{ID: fmt.Sprintf("we_%d", i), MerchantID: "m_a", URL: "https://a.example", Secret: "whsec_x", CreatedAt: now.Add(time.Duration(i))}, MaxEndpoints); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.AddEndpoint(ctx, Endpoint{ID: "we_x", MerchantID: "m_a"}, MaxEndpoints); !errors.Is(err, ErrTooMany) {
				t.Fatalf("endpoint over the limit: %v", err)
			}
			if eps, err := s.Endpoints(ctx, "m_b"); err != nil || len(eps) != 0 {
				t.Fatalf("another merchant sees %d endpoints (%v)", len(eps), err)
			}
			if _, err := s.Endpoint(ctx, "m_b", "we_0"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("another merchant's endpoint: %v", err)
			}
			if err := s.DeleteEndpoint(ctx, "m_b", "we_0"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("delete of another merchant's endpoint: %v", err)
			}
			if err := s.DeleteEndpoint(ctx, "m_a", "we_0"); err != nil {
				t.Fatal(err)
			}
			if eps, _ := s.Endpoints(ctx, "m_a"); len(eps) != MaxEndpoints-1 || eps[0].ID != "we_1" {
				t.Fatalf("endpoints after delete: %+v", eps)
			}

			d := Delivery{ID: "whd_1", MerchantID: "m_a", EndpointID: "we_1", EventID: "evt_1", EventType: EventTokenCreated, Body: []byte(`{}`), Status: StatusPending, NextAt: now, CreatedAt: now, UpdatedAt: now}
			later := d
			later.ID, later.NextAt, later.CreatedAt = "whd_2", now.Add(time.Hour), now.Add(time.Second)
			for _, x := range []Delivery{d, later} {
				if err := s.Enqueue(ctx, x); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.ClaimDue(ctx, now, time.Minute, 10)
			if err != nil || len(got) != 1 || got[0].ID != "whd_1" {
				t.Fatalf("claim = %+v, %v", got, err)
			}
			if again, _ := s.ClaimDue(ctx, now.Add(time.Second), time.Minute, 10); len(again) != 0 {
				t.Fatalf("a claimed delivery was claimed again within its lease: %+v", again)
			}
			if again, _ := s.ClaimDue(ctx, now.Add(time.Minute), time.Minute, 10); len(again) != 1 {
				t.Fatalf("a lapsed claim was not taken again: %+v", again)
			}
			got[0].Status, got[0].Attempts = StatusSucceeded, 1
			if err := s.Save(ctx, got[0]); err != nil {
				t.Fatal(err)
			}
			if again, _ := s.ClaimDue(ctx, now.Add(2*time.Hour), time.Minute, 10); len(again) != 1 || again[0].ID != "whd_2" {
				t.Fatalf("finished delivery still queued, or the later one missing: %+v", again)
			}
			log, err := s.Deliveries(ctx, "m_a", 10)
			if err != nil || len(log) != 2 || log[0].ID != "whd_2" || log[1].Status != StatusSucceeded {
				t.Fatalf("log = %+v, %v", log, err)
			}
			if log, _ := s.Deliveries(ctx, "m_b", 10); len(log) != 0 {
				t.Fatalf("another merchant's log: %+v", log)
			}
		})
	}
}

// loopbackOnly is a dialer that fails the test when asked for anything but
// a loopback address: the address check must refuse before any dial.
type loopbackOnly struct {
	t     *testing.T
	dials atomic.Int32
}

func (d *loopbackOnly) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.dials.Add(1)
	host, _, _ := net.SplitHostPort(addr)
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		d.t.Errorf("dial to %s: only loopback may be dialed in tests", addr)
		return nil, errors.New("refused by the test")
	}
	return (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
}

// fixedResolver answers every name with addrs.
type fixedResolver []netip.Addr

func (r fixedResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}

func testConfig(t *testing.T, d *loopbackOnly) Config {
	return Config{AllowLoopback: true, MaxAttempts: 5, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
		Timeout: 2 * time.Second, Poll: 5 * time.Millisecond, Dialer: d, Resolver: fixedResolver{netip.MustParseAddr("127.0.0.1")}}
}

// runUntil runs the worker until cond holds or 10 s pass.
func runUntil(t *testing.T, svc *Service, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeliveryRetriesThenSucceeds(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			var (
				mu     sync.Mutex
				bodies [][]byte
				sigs   []string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				defer mu.Unlock()
				bodies, sigs = append(bodies, b), append(sigs, r.Header.Get(HeaderSignature))
				if len(bodies) <= 2 {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			}))
			t.Cleanup(srv.Close)
			dialer := &loopbackOnly{t: t}
			svc := New(newStore(t), testConfig(t, dialer))
			ctx := context.Background()
			ep, err := svc.CreateEndpoint(ctx, "m_a", srv.URL+"/hooks")
			if err != nil || !strings.HasPrefix(ep.Secret, SecretPrefix) {
				t.Fatalf("endpoint %+v, %v", ep, err)
			}
			tok := tokens.Token{ID: "tok_1", MerchantID: "m_a", SessionID: "cs_1", JWE: "eyJ.secret.cipher.text.x", Brand: "visa", BIN: "424242", Last4: "4242", ExpMonth: 12, ExpYear: 2030,
				Reference: "ORD-77", Metadata: map[string]string{"customer": "c_1"}}
			svc.TokenCreated(ctx, tok)
			var log []Delivery
			runUntil(t, svc, func() bool {
				log, _ = svc.Deliveries(ctx, "m_a", 10)
				return len(log) == 1 && log[0].Status != StatusPending
			})
			d := log[0]
			if d.Status != StatusSucceeded || d.Attempts != 3 || d.LastStatusCode != 200 || d.EventType != EventTokenCreated {
				t.Fatalf("delivery %+v", d)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(bodies) != 3 {
				t.Fatalf("%d attempts reached the receiver, want 3", len(bodies))
			}
			for i, b := range bodies {
				if err := Verify([]string{ep.Secret}, sigs[i], b, time.Now(), 0); err != nil {
					t.Fatalf("attempt %d: signature: %v", i, err)
				}
			}
			var ev struct {
				ID, Type string
				Data     map[string]any
			}
			if err := json.Unmarshal(bodies[0], &ev); err != nil || ev.Type != EventTokenCreated || ev.Data["token"] != "tok_1" || ev.Data["last4"] != "4242" ||
				ev.Data["reference"] != "ORD-77" || fmt.Sprint(ev.Data["metadata"]) != "map[customer:c_1]" {
				t.Fatalf("event %s (%v)", bodies[0], err)
			}
			if strings.Contains(string(bodies[0]), tok.JWE) || strings.Contains(string(bodies[0]), "424242") {
				t.Fatalf("payload holds the ciphertext or more than masked fields: %s", bodies[0])
			}
		})
	}
}

func TestDeliveryGivesUpAfterMaxAttempts(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	svc := New(newBoltStore(t), testConfig(t, &loopbackOnly{t: t}))
	ctx := context.Background()
	if _, err := svc.CreateEndpoint(ctx, "m_a", srv.URL); err != nil {
		t.Fatal(err)
	}
	svc.ForwardFailed(ctx, forwarding.Event{MerchantID: "m_a", TokenID: "tok_1", Destination: "adyen", Code: "destination_unreachable", IdempotencyKey: "idk_x"})
	var log []Delivery
	runUntil(t, svc, func() bool {
		log, _ = svc.Deliveries(ctx, "m_a", 10)
		return len(log) == 1 && log[0].Status != StatusPending
	})
	if log[0].Status != StatusFailed || log[0].Attempts != 5 || hits.Load() != 5 || log[0].LastError != "http_500" {
		t.Fatalf("delivery %+v after %d hits", log[0], hits.Load())
	}
}

// TestDeliverySSRF: a name that resolves to a private address is refused
// before any dial, and a redirect is not followed.
func TestDeliverySSRF(t *testing.T) {
	t.Run("refused/private-resolution-no-dial", func(t *testing.T) {
		dialer := &loopbackOnly{t: t}
		cfg := testConfig(t, dialer)
		cfg.AllowLoopback = false
		cfg.MaxAttempts = 1
		cfg.Resolver = fixedResolver{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("10.0.0.7")}
		svc := New(newBoltStore(t), cfg)
		ctx := context.Background()
		if _, err := svc.CreateEndpoint(ctx, "m_a", "https://hooks.shop.example/in"); err != nil {
			t.Fatal(err)
		}
		svc.ForwardSucceeded(ctx, forwarding.Event{MerchantID: "m_a", TokenID: "tok_1", Destination: "adyen", Status: 200})
		var log []Delivery
		runUntil(t, svc, func() bool {
			log, _ = svc.Deliveries(ctx, "m_a", 10)
			return len(log) == 1 && log[0].Status != StatusPending
		})
		if log[0].Status != StatusFailed || log[0].LastError != "address_refused" || dialer.dials.Load() != 0 {
			t.Fatalf("delivery %+v, %d dials", log[0], dialer.dials.Load())
		}
	})
	t.Run("refused/redirect-not-followed", func(t *testing.T) {
		var target atomic.Int32
		other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { target.Add(1) }))
		t.Cleanup(other.Close)
		srv := httptest.NewServer(http.RedirectHandler(other.URL, http.StatusTemporaryRedirect))
		t.Cleanup(srv.Close)
		cfg := testConfig(t, &loopbackOnly{t: t})
		cfg.MaxAttempts = 1
		svc := New(newBoltStore(t), cfg)
		ctx := context.Background()
		if _, err := svc.CreateEndpoint(ctx, "m_a", srv.URL); err != nil {
			t.Fatal(err)
		}
		svc.ForwardSucceeded(ctx, forwarding.Event{MerchantID: "m_a", TokenID: "tok_1", Destination: "adyen", Status: 200})
		var log []Delivery
		runUntil(t, svc, func() bool {
			log, _ = svc.Deliveries(ctx, "m_a", 10)
			return len(log) == 1 && log[0].Status != StatusPending
		})
		if log[0].Status != StatusFailed || log[0].LastError != "http_307" || target.Load() != 0 {
			t.Fatalf("delivery %+v; redirect target hit %d times", log[0], target.Load())
		}
	})
	t.Run("refused/registration", func(t *testing.T) {
		svc := New(newBoltStore(t), Config{})
		for _, u := range []string{"http://127.0.0.1:9/h", "https://10.0.0.1/h", "https://[fd00::1]/h", "https://localhost/h"} {
			if _, err := svc.CreateEndpoint(context.Background(), "m_a", u); !errors.Is(err, ErrInvalidURL) {
				t.Errorf("%s: %v", u, err)
			}
		}
	})
}

func TestDeletedEndpointStopsDelivery(t *testing.T) {
	svc := New(newBoltStore(t), testConfig(t, &loopbackOnly{t: t}))
	ctx := context.Background()
	ep, err := svc.CreateEndpoint(ctx, "m_a", "http://127.0.0.1:1/h")
	if err != nil {
		t.Fatal(err)
	}
	svc.TokenCreated(ctx, tokens.Token{ID: "tok_1", MerchantID: "m_a"})
	if err := svc.DeleteEndpoint(ctx, "m_a", ep.ID); err != nil {
		t.Fatal(err)
	}
	svc.RunOnce(ctx)
	log, _ := svc.Deliveries(ctx, "m_a", 10)
	if len(log) != 1 || log[0].Status != StatusFailed || log[0].LastError != "endpoint_deleted" {
		t.Fatalf("log %+v", log)
	}
}

func TestBackoffBoundedWithJitter(t *testing.T) {
	svc := New(newBoltStore(t), Config{Backoff: time.Second, MaxBackoff: 8 * time.Second})
	for n, max := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 10: 8 * time.Second} {
		for range 20 {
			if d := svc.backoff(n); d < max/2 || d > max {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, max/2, max)
			}
		}
	}
}
