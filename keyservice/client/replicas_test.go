package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
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
	hang   bool   // answer only once the client gives up or the test ends
	sealed bool

	arrived chan struct{} // a request it hangs on arrived
	release chan struct{} // closed when the test ends
}

func (r *replica) setHang(hang bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hang = hang
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
	r := &replica{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	r.srv = newServer(t, f, func(w http.ResponseWriter, req *http.Request, _ []byte) {
		r.mu.Lock()
		r.hits++
		status, code, drop, hang, sealed := r.status, r.code, r.drop, r.hang, r.sealed
		r.mu.Unlock()
		if hang {
			// The request arrived; the replica is stuck (a full disk, a
			// lost Redis) until the client hangs up.
			select {
			case r.arrived <- struct{}{}:
			default:
			}
			select {
			case <-req.Context().Done():
			case <-r.release:
			}
			return
		}
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
	// Before the server closes (cleanups run last first): the server waits
	// for its handlers.
	t.Cleanup(func() { close(r.release) })
	return r
}

// replicaSet is two replicas behind one client whose pass-over clock the
// test moves.
type replicaSet struct {
	a, b  *replica
	c     *client.Client
	clock *fakeClock
}

func newReplicaSet(t *testing.T, newClient clientMaker) replicaSet {
	t.Helper()
	return newReplicaSetWith(t, newClient, client.HTTPClient(false))
}

func newReplicaSetWith(t *testing.T, newClient clientMaker, hc *http.Client) replicaSet {
	t.Helper()
	f := newFixture(t, "")
	a, b := newReplica(t, f), newReplica(t, f)
	c := newClient(a.srv.URL+", "+b.srv.URL+"/", f.signer, hc)
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

func TestReplicasSpreadCalls(t *testing.T) { bothSenders(t, testReplicasSpreadCalls) }

func testReplicasSpreadCalls(t *testing.T, newClient clientMaker) {
	rs := newReplicaSet(t, newClient)
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

func TestReplicasFailover(t *testing.T) { bothSenders(t, testReplicasFailover) }

func testReplicasFailover(t *testing.T, newClient clientMaker) {
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
			rs := newReplicaSet(t, newClient)
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

func TestReplicasNoConnection(t *testing.T) { bothSenders(t, testReplicasNoConnection) }

func testReplicasNoConnection(t *testing.T, newClient clientMaker) {
	f := newFixture(t, "")
	b := newReplica(t, f)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // refused: the request never left
	f.verifier.Origins = append(f.verifier.Origins, deadURL)
	c := newClient(deadURL+","+b.srv.URL, f.signer, nil)
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
func TestReplicasDroppedConnection(t *testing.T) { bothSenders(t, testReplicasDroppedConnection) }

func testReplicasDroppedConnection(t *testing.T, newClient clientMaker) {
	for _, tc := range []struct {
		name      string
		call      func(*client.Client) error
		wantOther bool
	}{
		{"ok/inspect-repeated", inspectOnce, true},
		{"err/reveal-not-repeated", revealOnce, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := newReplicaSet(t, newClient)
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

// A replica that takes the request and does not answer within the
// transport's wait for an answer (ResponseHeaderTimeout) is as one that
// dropped the connection: only calls safe to repeat go to the other, and it
// is passed over. fasthttp's timeout reads as net/http's.
func TestReplicasTimeout(t *testing.T) { bothSenders(t, testReplicasTimeout) }

func testReplicasTimeout(t *testing.T, newClient clientMaker) {
	for _, tc := range []struct {
		name      string
		call      func(*client.Client) error
		wantOther bool
	}{
		{"ok/inspect-repeated", inspectOnce, true},
		{"err/reveal-not-repeated", revealOnce, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc := client.HTTPClient(false)
			hc.Transport.(*http.Transport).ResponseHeaderTimeout = 200 * time.Millisecond
			rs := newReplicaSetWith(t, newClient, hc)
			rs.a.setHang(true)
			// The first call starts at the second replica (in turn from 1).
			if err := tc.call(rs.c); err != nil || rs.b.count() != 1 {
				t.Fatalf("first call: %v, %d at b", err, rs.b.count())
			}
			err := tc.call(rs.c)
			if rs.a.count() != 1 {
				t.Fatalf("the stuck replica got %d calls, want 1", rs.a.count())
			}
			if tc.wantOther {
				if err != nil || rs.b.count() != 2 {
					t.Fatalf("err = %v, %d calls at the other replica; want the call repeated there", err, rs.b.count())
				}
			} else {
				var ue *url.Error
				var ke *client.Error
				if !errors.As(err, &ue) || !ue.Timeout() || errors.As(err, &ke) || rs.b.count() != 1 {
					t.Fatalf("err = %v, %d calls at the other replica; want the transport's timeout and no second send", err, rs.b.count())
				}
			}
			for range 2 {
				if err := inspectOnce(rs.c); err != nil {
					t.Fatal(err)
				}
			}
			if rs.a.count() != 1 {
				t.Errorf("the stuck replica got %d calls within %s of its timeout, want none", rs.a.count()-1, client.PassOver)
			}
		})
	}
}

// The call's own deadline passes at a replica that does not answer: the
// call ends with the context's error and tries no other replica, whether
// the deadline is the caller's or the client's timeout over a caller's
// context without one (the checkout's). fasthttp takes no context; its
// sender gives it the same deadline.
func TestReplicasDeadline(t *testing.T) { bothSenders(t, testReplicasDeadline) }

func testReplicasDeadline(t *testing.T, newClient clientMaker) {
	for _, tc := range []struct {
		name      string
		ctx       func() (context.Context, context.CancelFunc)
		hcTimeout time.Duration
	}{
		{"err/caller-deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		}, 0},
		{"err/client-timeout", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc := client.HTTPClient(false)
			if tc.hcTimeout > 0 {
				hc.Timeout = tc.hcTimeout
			}
			rs := newReplicaSetWith(t, newClient, hc)
			rs.a.setHang(true)
			rs.b.setHang(true)
			ctx, cancel := tc.ctx()
			defer cancel()
			_, err := rs.c.Inspect(ctx, wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs_1", Merchant: "m_1"})
			var ue *url.Error
			if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ue) || !ue.Timeout() {
				t.Fatalf("err = %v, want the context's deadline as a *url.Error", err)
			}
			if n := rs.a.count() + rs.b.count(); n != 1 {
				t.Fatalf("%d replicas tried, want 1: the deadline is the whole call's", n)
			}
		})
	}
}

// A call canceled while a replica holds it returns with context.Canceled
// and tries no other replica (fasthttp's sender returns at once; its
// exchange ends in the background).
func TestReplicasCanceled(t *testing.T) { bothSenders(t, testReplicasCanceled) }

func testReplicasCanceled(t *testing.T, newClient clientMaker) {
	rs := newReplicaSet(t, newClient)
	rs.a.setHang(true)
	rs.b.setHang(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-rs.a.arrived:
		case <-rs.b.arrived:
		}
		cancel()
	}()
	_, err := rs.c.Inspect(ctx, wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs_1", Merchant: "m_1"})
	var ue *url.Error
	if !errors.Is(err, context.Canceled) || !errors.As(err, &ue) {
		t.Fatalf("err = %v, want context.Canceled as a *url.Error", err)
	}
	if n := rs.a.count() + rs.b.count(); n != 1 {
		t.Fatalf("%d replicas tried, want 1", n)
	}
}

func TestReplicasAllFail(t *testing.T) { bothSenders(t, testReplicasAllFail) }

func testReplicasAllFail(t *testing.T, newClient clientMaker) {
	rs := newReplicaSet(t, newClient)
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

func TestReplicasSealStatus(t *testing.T) { bothSenders(t, testReplicasSealStatus) }

func testReplicasSealStatus(t *testing.T, newClient clientMaker) {
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
			rs := newReplicaSet(t, newClient)
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
