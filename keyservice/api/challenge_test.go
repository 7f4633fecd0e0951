package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/nonce"
	"github.com/blindgate/blindgate/keyservice/replay"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// challengeServer is a key service whose challenges (reveal and
// registration together) count a budget of three per client, as the app
// counts them, and op_rita with an approved passkey (one challenge of the
// budget): on Redis (the replay cache, the limits and the nonces on rdb,
// whose round trips trips counts) or in memory (rdb nil).
func challengeServer(t *testing.T, backend string) (ts *testServer, rdb *redis.Client, trips *atomic.Int64) {
	t.Helper()
	budget := ratelimit.Limit{Name: "challenge-client", Rate: 3, Period: time.Hour, Burst: 3}
	if backend == "memory" {
		ts = newTestServerWith(t, memoryBackends(), func(o *kstest.Options) { o.ChallengeLimit = budget })
	} else {
		rdb = testenv.Redis(t)
		trips = testenv.CountTrips(rdb)
		ts = newTestServerWith(t, backends{replay: replay.NewRedis(rdb, "bg:ks:jti:"), limiter: ratelimit.NewRedis(rdb, "bg:ks:rl:")}, func(o *kstest.Options) {
			o.Nonces, o.ChallengeLimit = nonce.NewRedis(rdb, "bg:ks:nonce:"), budget
		})
	}
	ts.passkeys["op_rita"] = ts.EnrolPasskey(t, "backoffice", "op_rita")
	return ts, rdb, trips
}

// TestRevealChallengeOneRoundTrip: a reveal challenge on Redis claims its
// jti, counts its client's budget and writes its nonce in one round trip,
// and its nonce then approves a reveal.
func TestRevealChallengeOneRoundTrip(t *testing.T) {
	ts, _, trips := challengeServer(t, "redis")
	a := ts.passkeys["op_rita"]
	before := trips.Load()
	body := revealBody(t, ts, a, nil) // its challenge, then nothing on Redis
	if n := trips.Load() - before; n != 1 {
		t.Fatalf("a reveal challenge made %d Redis round trips, want 1", n)
	}
	req := httptest.NewRequest(http.MethodPost, wire.PathReveal, bytes.NewReader(body))
	h, err := ts.backoffic.Authorization(http.MethodPost, kstest.PublicURL+wire.PathReveal, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", h)
	if resp, m := ts.do(t, req); resp.StatusCode != 200 {
		t.Fatalf("the reveal with the challenge's nonce: %d %v", resp.StatusCode, m)
	}
}

// TestRevealChallengeAdmission: the challenge claims its jti in the
// domain, and answers as when the middleware claimed it first: a replay
// is 409 replay whatever the first use got (served, refused for its body,
// for a passkey the operator lacks, or past the budget), recorded as a
// denial and nothing else; past the budget is 429 with no nonce written;
// with Redis down, 503 unavailable, recorded as a denial.
func TestRevealChallengeAdmission(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		for _, tc := range []struct {
			name  string
			body  string
			after int // challenges by the client before this one
			want  int
			code  string
		}{
			{"409/replay-of-issued", `{"actor":"op_rita","token":"tok_1"}`, 0, 200, ""},
			{"409/replay-of-unreadable-body", `{"actor":`, 0, 400, "bad_request"},
			{"409/replay-of-invalid-field", `{"actor":"op rita","token":"tok_1"}`, 0, 400, "invalid_field"},
			{"409/replay-of-duplicate-key", `{"actor":"op_rita","actor":"op_rita","token":"tok_1"}`, 0, 400, "duplicate_key"},
			{"409/replay-of-passkey-required", `{"actor":"op_nobody","token":"tok_1"}`, 0, 403, "passkey_required"},
			{"409/replay-of-over-budget", `{"actor":"op_rita","token":"tok_1"}`, 2, 429, "rate_limited"},
		} {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				ts, _, _ := challengeServer(t, backend)
				for range tc.after {
					if resp, m := ts.call(t, ts.backoffic, http.MethodPost, wire.PathRevealChallenge, json.RawMessage(`{"actor":"op_rita","token":"tok_2"}`)); resp.StatusCode != 200 {
						t.Fatalf("challenge within the budget: %d %v", resp.StatusCode, m)
					}
				}
				send := challengeSender(t, ts, []byte(tc.body))
				resp, m := send()
				if resp.StatusCode != tc.want || errCode(m) != tc.code {
					t.Fatalf("first use: %d %v, want %d %s", resp.StatusCode, m, tc.want, tc.code)
				}
				if tc.want != 200 && m["nonce"] != nil {
					t.Fatal("a refused challenge answered a nonce")
				}
				denials := len(ts.Events(t, audit.Filter{Event: audit.EventRevealDenied}))
				if resp, m := send(); resp.StatusCode != 409 || errCode(m) != "replay" || m["nonce"] != nil {
					t.Fatalf("replay: %d %v", resp.StatusCode, m)
				}
				if evs := ts.Events(t, audit.Filter{Event: audit.EventDenied, Limit: 1}); len(evs) != 1 || evs[0].Code != "replay" || evs[0].Resource != "op:"+wire.OpReveal || evs[0].Client != "backoffice" {
					t.Fatalf("the replay's record %+v", evs)
				}
				if n := len(ts.Events(t, audit.Filter{Event: audit.EventRevealDenied})); n != denials {
					t.Fatalf("the replay was recorded as a refused reveal (%d reveal.denied, %d before)", n, denials)
				}
			})
		}
	}
	t.Run("redis/429-writes-no-nonce", func(t *testing.T) {
		ts, rdb, _ := challengeServer(t, "redis")
		for i, want := range []int{200, 200, 429} {
			before := nonceCount(t, rdb)
			resp, m := ts.call(t, ts.backoffic, http.MethodPost, wire.PathRevealChallenge, wire.RevealChallengeRequest{Actor: "op_rita", Token: "tok_1"})
			if resp.StatusCode != want {
				t.Fatalf("challenge %d: %d %v, want %d", i, resp.StatusCode, m, want)
			}
			written := nonceCount(t, rdb) - before
			if want == 200 && written != 1 || want == 429 && (written != 0 || resp.Header.Get("Retry-After") == "" || m["nonce"] != nil) {
				t.Fatalf("challenge %d (%d): %d nonces written, Retry-After %q, answer %v", i, want, written, resp.Header.Get("Retry-After"), m)
			}
		}
	})
	t.Run("503/redis-down", func(t *testing.T) {
		rdb := testenv.Redis(t)
		ts := revealServerOn(t, rdb)
		ts.EnrolPasskey(t, "backoffice", "op_rita")
		_ = rdb.Close()
		send := challengeSender(t, ts, []byte(`{"actor":"op_rita","token":"tok_1"}`))
		if resp, m := send(); resp.StatusCode != 503 || errCode(m) != "unavailable" || m["nonce"] != nil {
			t.Fatalf("with Redis down: %d %v", resp.StatusCode, m)
		}
		if evs := ts.Events(t, audit.Filter{Event: audit.EventDenied, Limit: 1}); len(evs) != 1 || evs[0].Code != "unavailable" || evs[0].Resource != "op:"+wire.OpReveal {
			t.Fatalf("the refusal's record %+v", evs)
		}
	})
}

// challengeSender signs body once for the reveal challenge and sends it
// as often as it is called.
func challengeSender(t *testing.T, ts *testServer, body []byte) func() (*http.Response, map[string]any) {
	t.Helper()
	h, err := ts.backoffic.Authorization(http.MethodPost, kstest.PublicURL+wire.PathRevealChallenge, body)
	if err != nil {
		t.Fatal(err)
	}
	return func() (*http.Response, map[string]any) {
		req := httptest.NewRequest(http.MethodPost, wire.PathRevealChallenge, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", h)
		return ts.do(t, req)
	}
}

// TestRegistrationChallengeRoundTrips: a passkey registration challenge on
// Redis claims its jti (the route's middleware), then counts its client's
// budget and writes its nonce in one round trip: two in all. The budget
// is the reveal challenges' (op_rita's enrolment used one of three): past
// it, 429 with no nonce written.
func TestRegistrationChallengeRoundTrips(t *testing.T) {
	ts, rdb, trips := challengeServer(t, "redis")
	for i, want := range []int{200, 200, 429} {
		before, tripsBefore := nonceCount(t, rdb), trips.Load()
		resp, m := ts.call(t, ts.backoffic, http.MethodPost, wire.PathPasskeyChallenge, wire.PasskeyChallengeRequest{Actor: "op_sam"})
		if resp.StatusCode != want {
			t.Fatalf("challenge %d: %d %v, want %d", i, resp.StatusCode, m, want)
		}
		if n := trips.Load() - tripsBefore; n != 2 {
			t.Fatalf("challenge %d made %d Redis round trips, want 2", i, n)
		}
		written := nonceCount(t, rdb) - before
		if want == 200 && (written != 1 || m["nonce"] == nil) || want == 429 && (written != 0 || resp.Header.Get("Retry-After") == "" || m["nonce"] != nil) {
			t.Fatalf("challenge %d (%d): %d nonces written, Retry-After %q, answer %v", i, want, written, resp.Header.Get("Retry-After"), m)
		}
	}
}

// nonceCount is how many nonces challengeServer's Redis holds.
func nonceCount(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "bg:ks:nonce:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}
