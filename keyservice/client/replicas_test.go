package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// replica is a key service stand-in that verifies signatures (shared replay
// cache with the other replicas of its fixture, as replicas share Redis),
// counts the calls it got and answers as its test says.
type replica struct {
	srv *httptest.Server

	mu     sync.Mutex
	hits   int
	status int    // 0: 200 with a valid answer
	code   string // error code with status
	drop   bool   // close the connection once the request is read
	sealed bool
}

func (r *replica) set(status int, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.code = status, code
}

func (r *replica) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

func newReplica(t *testing.T, f fixture) *replica {
	t.Helper()
	r := &replica{}
	r.srv = newServer(t, f, func(w http.ResponseWriter, req *http.Request, _ []byte) {
		r.mu.Lock()
		r.hits++
		status, code, drop, sealed := r.status, r.code, r.drop, r.sealed
		r.mu.Unlock()
		if drop {
			// The request arrived; the answer never does (a replica killed
			// mid-request).
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if status != 0 {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":{"code":"` + code + `","message":"stand-in"}}`))
			return
		}
		switch req.URL.Path {
		case wire.PathInspect:
			_, _ = w.Write([]byte(`{"kid":"kek-1","brand":"visa","bin":"424242","last4":"4242","exp_month":12,"exp_year":2030,"fingerprint":"fpm_x"}`))
		case wire.PathReveal:
			_, _ = w.Write([]byte(`{"pan":"` + testPAN + `","exp_month":1,"exp_year":2031}`))
		case wire.PathSealStatus:
			if sealed {
				_, _ = w.Write([]byte(`{"sealed":true}`))
				return
			}
			_, _ = w.Write([]byte(`{"sealed":false}`))
		case wire.PathJWKS:
			_, _ = w.Write([]byte(`{"keys":[]}`))
		}
	})
	return r
}

// replicaSet is two replicas behind one client whose pass-over clock the
// test moves.
type replicaSet struct {
	a, b  *replica
	c     *client.Client
	clock *fakeClock
}

func newReplicaSet(t *testing.T) replicaSet {
	t.Helper()
	f := newFixture(t, "")
	a, b := newReplica(t, f), newReplica(t, f)
	c := client.New(a.srv.URL+", "+b.srv.URL+"/", f.signer, client.HTTPClient(false))
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	client.SetReplicaClock(c, clk.Now)
	return replicaSet{a: a, b: b, c: c, clock: clk}
}

func inspectOnce(c *client.Client) error {
	_, err := c.Inspect(context.Background(), wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs_1", Merchant: "m_1"})
	return err
}

func revealOnce(c *client.Client) error {
	_, err := c.Reveal(context.Background(), validReveal())
	return err
}

func TestReplicasSpreadCalls(t *testing.T) {
	rs := newReplicaSet(t)
	if got := rs.c.Replicas(); !slices.Equal(got, []string{rs.a.srv.URL, rs.b.srv.URL}) {
		t.Fatalf("Replicas() = %v", got)
	}
	for range 6 {
		if err := inspectOnce(rs.c); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := rs.a.count(), rs.b.count(); a != 3 || b != 3 {
		t.Fatalf("calls: %d and %d, want 3 each (in turn)", a, b)
	}
}

func TestReplicasFailover(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		code      string
		call      func(*client.Client) error
		wantErr   string // "" : the call succeeds at the other replica
		passOver  bool   // the failed replica is tried last for a while
		otherHits int    // calls the healthy replica got for this one
	}{
		{"ok/503-unavailable", http.StatusServiceUnavailable, "unavailable", inspectOnce, "", true, 1},
		{"ok/503-sealed-reveal", http.StatusServiceUnavailable, "sealed", revealOnce, "", true, 1},
		{"ok/400-key-unknown-not-passed-over", http.StatusBadRequest, "key_unknown", inspectOnce, "", false, 1},
		{"err/429-shared-limit", http.StatusTooManyRequests, "rate_limited", inspectOnce, "rate_limited", false, 0},
		{"err/400-verdict", http.StatusBadRequest, "invalid_card", inspectOnce, "invalid_card", false, 0},
		{"err/401", http.StatusUnauthorized, "unauthenticated", inspectOnce, "unauthenticated", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := newReplicaSet(t)
			rs.a.set(tc.status, tc.code)
			// Calls start at a and b in turn; find one that starts at a.
			for attempt := 0; rs.a.count() == 0; attempt++ {
				if attempt == 2 {
					t.Fatal("no call started at the first replica")
				}
				before := rs.b.count()
				err := tc.call(rs.c)
				if rs.a.count() == 0 {
					if err != nil {
						t.Fatalf("call served by the healthy replica: %v", err)
					}
					continue
				}
				switch {
				case tc.wantErr == "" && err != nil:
					t.Fatalf("err = %v, want success at the other replica", err)
				case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				if got := rs.b.count() - before; got != tc.otherHits {
					t.Errorf("the other replica got %d calls, want %d", got, tc.otherHits)
				}
			}
			// Four more calls: each would start at a twice if it were not
			// passed over.
			hitsA := rs.a.count()
			for range 4 {
				_ = tc.call(rs.c)
			}
			if tc.passOver && rs.a.count() != hitsA {
				t.Errorf("the failed replica got %d calls within %s of its failure, want none", rs.a.count()-hitsA, client.PassOver)
			}
			if !tc.passOver && rs.a.count() == hitsA {
				t.Errorf("the replica was passed over after %s", tc.code)
			}
			if tc.passOver {
				// Its time out ends: it is tried again, and once it answers
				// it is in turn again.
				rs.clock.Add(client.PassOver + time.Second)
				rs.a.set(0, "")
				for range 4 {
					if err := tc.call(rs.c); err != nil {
						t.Fatal(err)
					}
				}
				if got := rs.a.count() - hitsA; got != 2 {
					t.Errorf("after its pass-over the replica got %d of 4 calls, want 2", got)
				}
			}
		})
	}
}

func TestReplicasNoConnection(t *testing.T) {
	f := newFixture(t, "")
	b := newReplica(t, f)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // refused: the request never left
	f.verifier.Origins = append(f.verifier.Origins, deadURL)
	c := client.New(deadURL+","+b.srv.URL, f.signer, nil)
	for _, call := range []func(*client.Client) error{inspectOnce, revealOnce, inspectOnce, revealOnce} {
		if err := call(c); err != nil {
			t.Fatalf("with one replica refusing connections: %v", err)
		}
	}
	if b.count() != 4 {
		t.Errorf("the live replica got %d calls, want 4", b.count())
	}
	jwks, err := c.JWKS(context.Background())
	if err != nil || string(jwks) != `{"keys":[]}` {
		t.Errorf("jwks: %s %v", jwks, err)
	}
}

// A replica that drops the connection after reading the request may have
// done the work: only calls safe to repeat go to the other.
func TestReplicasDroppedConnection(t *testing.T) {
	for _, tc := range []struct {
		name      string
		call      func(*client.Client) error
		wantOther bool
	}{
		{"ok/inspect-repeated", inspectOnce, true},
		{"err/reveal-not-repeated", revealOnce, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := newReplicaSet(t)
			rs.a.mu.Lock()
			rs.a.drop = true
			rs.a.mu.Unlock()
			// The first call starts at the second replica (in turn from 1).
			if err := tc.call(rs.c); err != nil || rs.b.count() != 1 {
				t.Fatalf("first call: %v, %d at b", err, rs.b.count())
			}
			err := tc.call(rs.c)
			if rs.a.count() != 1 {
				t.Fatalf("the dropping replica got %d calls, want 1", rs.a.count())
			}
			if tc.wantOther {
				if err != nil || rs.b.count() != 2 {
					t.Fatalf("err = %v, %d calls at the other replica; want the call repeated there", err, rs.b.count())
				}
				return
			}
			var ke *client.Error
			if err == nil || errors.As(err, &ke) || rs.b.count() != 1 {
				t.Fatalf("err = %v, %d calls at the other replica; want the transport error and no second send", err, rs.b.count())
			}
		})
	}
}

func TestReplicasAllFail(t *testing.T) {
	rs := newReplicaSet(t)
	rs.a.set(http.StatusServiceUnavailable, "unavailable")
	rs.b.set(http.StatusServiceUnavailable, "sealed")
	err := inspectOnce(rs.c)
	var ke *client.Error
	if !errors.As(err, &ke) || ke.Status != http.StatusServiceUnavailable {
		t.Fatalf("err = %v, want the last 503", err)
	}
	if rs.a.count() != 1 || rs.b.count() != 1 {
		t.Fatalf("calls %d and %d, want each replica tried once", rs.a.count(), rs.b.count())
	}
	// Both passed over: both are still tried, each once.
	_ = inspectOnce(rs.c)
	if rs.a.count() != 2 || rs.b.count() != 2 {
		t.Fatalf("calls %d and %d with both passed over, want each tried once more", rs.a.count(), rs.b.count())
	}
}

func TestReplicasSealStatus(t *testing.T) {
	for _, tc := range []struct {
		name             string
		aSealed, bSealed bool
		want             bool
	}{
		{"unsealed/one-sealed", true, false, false},
		{"unsealed/other-sealed", false, true, false},
		{"sealed/both", true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := newReplicaSet(t)
			for r, sealed := range map[*replica]bool{rs.a: tc.aSealed, rs.b: tc.bSealed} {
				r.mu.Lock()
				r.sealed = sealed
				r.mu.Unlock()
			}
			for range 2 { // from each start
				st, err := rs.c.SealStatus(context.Background())
				if err != nil || st.Sealed != tc.want {
					t.Fatalf("seal status %+v %v, want sealed=%v", st, err, tc.want)
				}
			}
		})
	}
}

func TestParseURLs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"https://ks:8443", []string{"https://ks:8443"}},
		{"https://ks-1:8443/, https://ks-2:8443", []string{"https://ks-1:8443", "https://ks-2:8443"}},
		{" http://a ,,http://b ", []string{"http://a", "http://b"}},
		{"", nil},
		{"ks:8443", nil},
		{"https://ks:8443,ftp://x", nil},
		{"https://ks:8443/?x=1", nil},
	} {
		got, err := client.ParseURLs(tc.in)
		if (err == nil) != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("ParseURLs(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
