package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/passkey/passkeytest"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/api"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/replay"
	"github.com/blindgate/blindgate/keyservice/sigauth"
	"github.com/blindgate/blindgate/keyservice/unwrap"
	"github.com/blindgate/blindgate/keyservice/wire"
)

const testPAN = "5555555555554444"

// testServer is a key service driven through app.Test, with a checkout
// client, a back-office client and a stranger whose key is not enrolled.
type testServer struct {
	*kstest.Zone
	gateway   *client.Signer
	backoffic *client.Signer
	stranger  *client.Signer
	logs      *bytes.Buffer
	// passkeys are the operators' approved software passkeys, enrolled on
	// first use by reveal.
	passkeys map[string]*passkeytest.Authenticator
}

type backends struct {
	replay  sigauth.ReplayCache
	limiter ratelimit.Limiter
	redis   api.Pinger
}

func memoryBackends() backends {
	return backends{replay: replay.NewMemory(), limiter: ratelimit.NewMemory()}
}

func newTestServer(t *testing.T, b backends) *testServer {
	t.Helper()
	return newTestServerWith(t, b, nil)
}

// newTestServerWith is newTestServer with edit applied to the zone's options.
func newTestServerWith(t *testing.T, b backends, edit func(*kstest.Options)) *testServer {
	t.Helper()
	ts := &testServer{logs: &bytes.Buffer{}, passkeys: map[string]*passkeytest.Authenticator{}}
	o := kstest.Options{
		Clients: []kstest.Client{
			{ID: "gateway", Ops: []string{wire.OpInspect, wire.OpRewrap}},
			{ID: "backoffice", Ops: []string{wire.OpReveal, wire.OpAudit}, Alg: client.AlgES256},
			{ID: "stranger", Unlisted: true},
		},
		Replay: b.replay, Limiter: b.limiter, Redis: b.redis,
		Limits: func(l *unwrap.Limits) {
			l.RevealActorShort = ratelimit.Limit{Name: "ras", Rate: 2, Period: time.Hour, Burst: 2}
		},
		Log: slog.New(slog.NewJSONHandler(ts.logs, nil)),
	}
	if edit != nil {
		edit(&o)
	}
	ts.Zone = kstest.NewZone(t, o)
	ts.gateway, ts.backoffic, ts.stranger = ts.Signer(t, "gateway"), ts.Signer(t, "backoffice"), ts.Signer(t, "stranger")
	return ts
}

func (ts *testServer) cardJWE(t *testing.T, pan, session string, iat time.Time) string {
	t.Helper()
	return ts.Encrypt(t, fmt.Sprintf(`{"pan":%q,"exp_month":1,"exp_year":2031,"name":"N","iat":%d}`, pan, iat.Unix()), session)
}

// call signs (when s is not nil) and sends one request through app.Test.
func (ts *testServer) call(t *testing.T, s *client.Signer, method, path string, body any) (*http.Response, map[string]any) {
	t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if s != nil {
		h, err := s.Authorization(method, "https://keyservice.internal"+path, raw)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", h)
	}
	return ts.do(t, req)
}

func (ts *testServer) do(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := ts.Server.App().Test(req, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp, m
}

// reveal runs a whole approved reveal through app.Test, as the back office
// and the operator's browser do: a nonce for (actor, token), a browser
// key, the actor's passkey assertion (the passkey enrolled and approved on
// first use), the reveal. A 200 answer is opened with the browser key and
// must hold the card.
func (ts *testServer) reveal(t *testing.T, actor, reason, token, jwe string) (*http.Response, map[string]any) {
	t.Helper()
	a := ts.passkeys[actor]
	if a == nil {
		a = ts.EnrolPasskey(t, "backoffice", actor)
		ts.passkeys[actor] = a
	}
	resp, m := ts.call(t, ts.backoffic, http.MethodPost, wire.PathRevealChallenge, wire.RevealChallengeRequest{Actor: actor, Token: token})
	if resp.StatusCode != 200 {
		return resp, m
	}
	n, _ := m["nonce"].(string)
	key, priv := kstest.BrowserKey(t)
	resp, m = ts.call(t, ts.backoffic, http.MethodPost, wire.PathReveal, wire.RevealRequest{
		JWE: jwe, Actor: actor, Reason: reason, Token: token, Nonce: n, BrowserKey: key,
		Assertion: kstest.Assertion(t, a, n, token, reason, key),
	})
	if resp.StatusCode == 200 {
		answer, _ := m["jwe"].(string)
		if c := kstest.OpenReveal(t, answer, priv, token, n); c.PAN == "" {
			t.Fatal("the reveal answer holds no card")
		}
	}
	return resp, m
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestUnwrapEndpoints(t *testing.T) {
	ts := newTestServer(t, memoryBackends())
	now := time.Now()
	good := ts.cardJWE(t, testPAN, "cs_1", now)
	tests := []struct {
		name     string
		signer   *client.Signer
		path     string
		body     any
		status   int
		code     string
		validate func(t *testing.T, m map[string]any)
	}{
		{"200/inspect", ts.gateway, "/v1/inspect", wire.InspectRequest{JWE: good, Session: "cs_1", Merchant: "m_1"}, 200, "", func(t *testing.T, m map[string]any) {
			if m["brand"] != "mastercard" || m["bin"] != "555555" || m["last4"] != "4444" || !strings.HasPrefix(fmt.Sprint(m["fingerprint"]), "fpm_") {
				t.Fatalf("inspect answer %v", m)
			}
			if _, has := m["pan"]; has {
				t.Fatal("inspect returned a pan")
			}
		}},
		{"401/unsigned", nil, "/v1/inspect", wire.InspectRequest{JWE: good, Session: "cs_1", Merchant: "m_1"}, 401, "unauthenticated", nil},
		{"401/unknown-client", ts.stranger, "/v1/inspect", wire.InspectRequest{JWE: good, Session: "cs_1", Merchant: "m_1"}, 401, "unauthenticated", nil},
		{"400/card-number-in-reason", ts.backoffic, "/v1/reveal", wire.RevealRequest{JWE: good, Actor: "op_1", Reason: "card 4242 4242 4242 4242"}, 400, "pan_in_text", nil},
		{"403/gateway-may-not-reveal", ts.gateway, "/v1/reveal", wire.RevealRequest{JWE: good, Actor: "op_1", Reason: "dispute"}, 403, "forbidden", nil},
		{"403/backoffice-may-not-inspect", ts.backoffic, "/v1/inspect", wire.InspectRequest{JWE: good, Session: "cs_1", Merchant: "m_1"}, 403, "forbidden", nil},
		{"400/invalid-jwe", ts.gateway, "/v1/inspect", wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs_1", Merchant: "m_1"}, 400, "invalid_jwe", nil},
		{"400/session-mismatch", ts.gateway, "/v1/inspect", wire.InspectRequest{JWE: good, Session: "cs_2", Merchant: "m_1"}, 400, "session_mismatch", nil},
		{"422/luhn", ts.gateway, "/v1/inspect", wire.InspectRequest{JWE: ts.cardJWE(t, "5555555555554445", "cs_1", now), Session: "cs_1", Merchant: "m_1"}, 422, "card_invalid", nil},
		{"422/stale", ts.gateway, "/v1/inspect", wire.InspectRequest{JWE: ts.cardJWE(t, testPAN, "cs_1", now.Add(-time.Hour)), Session: "cs_1", Merchant: "m_1"}, 422, "stale_ciphertext", nil},
		{"200/rewrap", ts.gateway, "/v1/rewrap", wire.RewrapRequest{JWE: good, Merchant: "m_1"}, 200, "", func(t *testing.T, m map[string]any) {
			if m["kid"] != ts.Keyring.Newest().Kid {
				t.Fatalf("rewrap kid %v", m["kid"])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := ts.call(t, tt.signer, http.MethodPost, tt.path, tt.body)
			if resp.StatusCode != tt.status || errCode(m) != tt.code {
				t.Fatalf("status %d code %q, want %d %q (%v)", resp.StatusCode, errCode(m), tt.status, tt.code, m)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control = %q", resp.Header.Get("Cache-Control"))
			}
			if tt.validate != nil {
				tt.validate(t, m)
			}
		})
	}
	if strings.Contains(ts.Logs.String(), testPAN) {
		t.Fatal("a card number reached the logs")
	}
}

func TestSignatureRules(t *testing.T) {
	ts := newTestServer(t, memoryBackends())
	body, _ := json.Marshal(wire.InspectRequest{JWE: ts.cardJWE(t, testPAN, "cs_1", time.Now()), Session: "cs_1", Merchant: "m_1"})
	sign := func(url string, b []byte) string {
		h, err := ts.gateway.Authorization(http.MethodPost, url, b)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	send := func(auth string, b []byte) (*http.Response, map[string]any) {
		req := httptest.NewRequest(http.MethodPost, "/v1/inspect", bytes.NewReader(b))
		req.Header.Set("Authorization", auth)
		return ts.do(t, req)
	}
	t.Run("409/replay", func(t *testing.T) {
		h := sign("https://keyservice.internal/v1/inspect", body)
		if resp, m := send(h, body); resp.StatusCode != 200 {
			t.Fatalf("first use: %d %v", resp.StatusCode, m)
		}
		if resp, m := send(h, body); resp.StatusCode != 409 || errCode(m) != "replay" {
			t.Fatalf("replay: %d %v", resp.StatusCode, m)
		}
	})
	// A signed request refused for its body has used its jti all the same:
	// its replay is a replay (Contract 2), whatever the body.
	for _, tc := range []struct {
		name string
		body []byte
		want int
	}{
		{"409/replay-of-unreadable-body", []byte(`{"jwe":`), 400},
		{"409/replay-of-invalid-field", []byte(`{"jwe":"x","session":"cs_1","merchant":"m_1"}`), 400},
		{"409/replay-of-missing-merchant", []byte(`{"jwe":"` + ts.cardJWE(t, testPAN, "cs_1", time.Now()) + `","session":"cs_1"}`), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sign("https://keyservice.internal/v1/inspect", tc.body)
			if resp, m := send(h, tc.body); resp.StatusCode != tc.want {
				t.Fatalf("first use: %d %v, want %d", resp.StatusCode, m, tc.want)
			}
			if resp, m := send(h, tc.body); resp.StatusCode != 409 || errCode(m) != "replay" {
				t.Fatalf("replay: %d %v", resp.StatusCode, m)
			}
		})
	}
	// A request refused for its client's rights keeps its jti (the claim
	// comes last): the same request is refused the same way again, on a
	// route that claims in the middleware and on one that claims in the
	// domain.
	for _, route := range []string{wire.PathRevealChallenge, wire.PathAuditQuery, wire.PathReveal} {
		t.Run("403/forbidden-keeps-its-jti"+route, func(t *testing.T) {
			b := []byte(`{}`)
			h := sign("https://keyservice.internal"+route, b)
			for i := range 2 {
				req := httptest.NewRequest(http.MethodPost, route, bytes.NewReader(b))
				req.Header.Set("Authorization", h)
				if resp, m := ts.do(t, req); resp.StatusCode != 403 || errCode(m) != "forbidden" {
					t.Fatalf("attempt %d: %d %v, want 403 forbidden", i, resp.StatusCode, m)
				}
			}
		})
	}
	t.Run("401/body-hash", func(t *testing.T) {
		h := sign("https://keyservice.internal/v1/inspect", body)
		tampered := bytes.Replace(body, []byte("cs_1"), []byte("cs_2"), 1)
		if resp, _ := send(h, tampered); resp.StatusCode != 401 {
			t.Fatalf("tampered body: %d", resp.StatusCode)
		}
	})
	t.Run("401/htu", func(t *testing.T) {
		if resp, _ := send(sign("https://keyservice.internal/v1/rewrap", body), body); resp.StatusCode != 401 {
			t.Fatalf("signature for another path: %d", resp.StatusCode)
		}
	})
	t.Run("401/htu-other-host", func(t *testing.T) {
		// Right path, but signed for another key service (staging).
		resp, m := send(sign("https://staging-keyservice.internal/v1/inspect", body), body)
		if resp.StatusCode != 401 || errCode(m) != "unauthenticated" {
			t.Fatalf("signature for another host: %d %v", resp.StatusCode, m)
		}
	})
	t.Run("401/expired", func(t *testing.T) {
		old := *ts.gateway
		old.Now = func() time.Time { return time.Now().Add(-2 * time.Minute) }
		h, _ := old.Authorization(http.MethodPost, "https://keyservice.internal/v1/inspect", body)
		if resp, _ := send(h, body); resp.StatusCode != 401 {
			t.Fatalf("expired: %d", resp.StatusCode)
		}
	})
	t.Run("401/revoked", func(t *testing.T) {
		if err := ts.Clients.Revoke(ts.gateway.Kid); err != nil {
			t.Fatal(err)
		}
		if resp, _ := send(sign("https://keyservice.internal/v1/inspect", body), body); resp.StatusCode != 401 {
			t.Fatalf("revoked key: %d", resp.StatusCode)
		}
	})
	// Every refusal leaves an audit record.
	evs, _, _ := audit.FileTrail(ts.AuditPath).Query(context.Background(), audit.Filter{Event: audit.EventDenied})
	if len(evs) < 4 {
		t.Fatalf("want >= 4 denial events, got %d", len(evs))
	}
}

func TestRevealLimit(t *testing.T) {
	ts := newTestServer(t, memoryBackends())
	jwe := ts.cardJWE(t, testPAN, "cs_1", time.Now())
	for i := 0; i < 2; i++ {
		if resp, m := ts.reveal(t, "op_9", "refund", "tok_1", jwe); resp.StatusCode != 200 {
			t.Fatalf("reveal %d: %d %v", i, resp.StatusCode, m)
		}
	}
	resp, m := ts.reveal(t, "op_9", "refund", "tok_1", jwe)
	if resp.StatusCode != 429 || errCode(m) != "rate_limited" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("3rd reveal: %d %v retry-after %q", resp.StatusCode, m, resp.Header.Get("Retry-After"))
	}
	resp, m = ts.call(t, ts.backoffic, http.MethodPost, "/v1/audit/query", wire.AuditQueryRequest{Event: audit.EventReveal})
	if resp.StatusCode != 200 || m["chain_ok"] != true {
		t.Fatalf("audit query: %d %v", resp.StatusCode, m)
	}
	if evs, _ := m["events"].([]any); len(evs) != 2 {
		t.Fatalf("audit shows %d reveals, want 2", len(evs))
	}
}

func TestSealLifecycle(t *testing.T) {
	ts := newTestServer(t, memoryBackends())
	ts.Holder.Seal()
	jwe := "x.y.z.w.v"
	if resp, m := ts.call(t, ts.gateway, http.MethodPost, "/v1/inspect", wire.InspectRequest{JWE: jwe, Session: "cs_1", Merchant: "m_1"}); resp.StatusCode != 503 || errCode(m) != "sealed" {
		t.Fatalf("sealed inspect: %d %v", resp.StatusCode, m)
	}
	if resp, _ := ts.call(t, nil, http.MethodGet, "/readyz", nil); resp.StatusCode != 503 {
		t.Fatalf("sealed readyz: %d", resp.StatusCode)
	}
	if resp, _ := ts.call(t, nil, http.MethodGet, "/.well-known/jwks.json", nil); resp.StatusCode != 503 {
		t.Fatalf("sealed jwks: %d", resp.StatusCode)
	}
	wrong, _ := keyring.GenerateMasterKey()
	if resp, m := ts.call(t, nil, http.MethodPost, "/v1/sys/unseal", wire.UnsealRequest{Key: keyring.EncodeMasterKey(wrong)}); resp.StatusCode != 400 || errCode(m) != "unseal_failed" {
		t.Fatalf("wrong share: %d %v", resp.StatusCode, m)
	}
	for _, tc := range []struct {
		name string
		req  wire.UnsealRequest
		code string
	}{
		{"409/nonce-without-round", wire.UnsealRequest{Key: keyring.EncodeMasterKey(ts.Master), Nonce: "abcd"}, "unseal_nonce_mismatch"},
		{"409/reset-without-round", wire.UnsealRequest{Reset: true, Nonce: "abcd"}, "unseal_nonce_mismatch"},
		{"400/reset-without-nonce", wire.UnsealRequest{Reset: true}, "invalid_field"},
		{"400/no-share", wire.UnsealRequest{}, "invalid_field"},
	} {
		if resp, m := ts.call(t, nil, http.MethodPost, "/v1/sys/unseal", tc.req); errCode(m) != tc.code {
			t.Errorf("%s: %d %v", tc.name, resp.StatusCode, m)
		}
	}
	if resp, m := ts.call(t, nil, http.MethodPost, "/v1/sys/unseal", wire.UnsealRequest{Key: keyring.EncodeMasterKey(ts.Master)}); resp.StatusCode != 200 || m["sealed"] != false {
		t.Fatalf("unseal: %d %v", resp.StatusCode, m)
	}
	// Once unsealed a share has no effect, and says so rather than "success".
	// (This is the fifth attempt from this address: the limit allows five.)
	if resp, m := ts.call(t, nil, http.MethodPost, "/v1/sys/unseal", wire.UnsealRequest{Key: keyring.EncodeMasterKey(wrong)}); resp.StatusCode != 409 || errCode(m) != "already_unsealed" {
		t.Fatalf("share after unseal: %d %v", resp.StatusCode, m)
	}
	resp, _ := ts.call(t, nil, http.MethodGet, "/readyz", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("readyz after unseal: %d", resp.StatusCode)
	}
	resp, m := ts.call(t, nil, http.MethodGet, "/.well-known/jwks.json", nil)
	keys, _ := m["keys"].([]any)
	if resp.StatusCode != 200 || len(keys) != 1 {
		t.Fatalf("jwks: %d %v", resp.StatusCode, m)
	}
	k := keys[0].(map[string]any)
	if k["use"] != "enc" || k["alg"] != jose.AlgECDHES || k["kid"] != ts.Keyring.Newest().Kid || k["d"] != nil {
		t.Fatalf("jwks key %v", k)
	}
}

func TestErrorsAndMetrics(t *testing.T) {
	ts := newTestServer(t, memoryBackends())
	resp, m := ts.call(t, nil, http.MethodGet, "/nope", nil)
	if resp.StatusCode != 404 || errCode(m) != "not_found" {
		t.Fatalf("404: %d %v", resp.StatusCode, m)
	}
	// app.Test cannot carry an over-limit body, so this one goes over a socket.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ts.Server.App().Listener(ln) }()
	t.Cleanup(func() { _ = ts.Server.App().Shutdown() })
	// Only the headers are sent: the server answers 413 from Content-Length
	// and closes, and a client still writing the body would see a reset
	// instead of the answer (seen under load).
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /v1/inspect HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", ln.Addr(), api.MaxBody+1)
	hr, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 413 {
		t.Fatalf("oversize: %d", hr.StatusCode)
	}
	resp, m = ts.call(t, ts.gateway, http.MethodPost, "/v1/inspect", map[string]any{"jwe": "a.b.c.d.e", "session": "cs_1", "pan": testPAN})
	if resp.StatusCode != 400 || errCode(m) != "bad_request" {
		t.Fatalf("unknown field: %d %v", resp.StatusCode, m)
	}
	jwe := ts.cardJWE(t, testPAN, "cs_1", time.Now())
	ts.call(t, ts.gateway, http.MethodPost, "/v1/inspect", wire.InspectRequest{JWE: jwe, Session: "cs_1", Merchant: "m_1"})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	mr, err := ts.Server.App().Test(req)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(mr.Body)
	for _, want := range []string{`blindgate_keyservice_requests_total{method="POST",route="/v1/inspect",status="200"} 1`, `blindgate_keyservice_decrypts_total{client="gateway",op="inspect"} 1`, "blindgate_keyservice_request_seconds_bucket"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("metrics lack %s\n%s", want, grepLines(string(text), "blindgate_keyservice_requests_total"))
		}
	}
	if strings.Contains(string(text), testPAN) || strings.Contains(string(text), "555555") {
		t.Fatal("metrics hold card digits")
	}
}

// TestRedisBackends runs the replay cache and limiter on a real Redis, and
// shows that with Redis down nothing is decrypted.
func TestRedisBackends(t *testing.T) {
	rdb := testenv.Redis(t)
	ts := newTestServer(t, backends{replay: replay.NewRedis(rdb, "t:jti:"), limiter: ratelimit.NewRedis(rdb, "t:rl:"), redis: redisx.Pinger{C: rdb}})
	jwe := ts.cardJWE(t, testPAN, "cs_1", time.Now())
	body, _ := json.Marshal(wire.InspectRequest{JWE: jwe, Session: "cs_1", Merchant: "m_1"})
	h, _ := ts.gateway.Authorization(http.MethodPost, "https://keyservice.internal/v1/inspect", body)
	for i, want := range []int{200, 409} {
		req := httptest.NewRequest(http.MethodPost, "/v1/inspect", bytes.NewReader(body))
		req.Header.Set("Authorization", h)
		if resp, m := ts.do(t, req); resp.StatusCode != want {
			t.Fatalf("request %d: %d %v", i, resp.StatusCode, m)
		}
	}
	// A body the key service refuses still claims its jti (one script with
	// no limits): its replay is a replay.
	bad := []byte(`{"jwe":"x","session":"cs_1","merchant":"m_1"}`)
	hb, _ := ts.gateway.Authorization(http.MethodPost, "https://keyservice.internal/v1/inspect", bad)
	for i, want := range []int{400, 409} {
		req := httptest.NewRequest(http.MethodPost, "/v1/inspect", bytes.NewReader(bad))
		req.Header.Set("Authorization", hb)
		if resp, m := ts.do(t, req); resp.StatusCode != want {
			t.Fatalf("invalid request %d: %d %v", i, resp.StatusCode, m)
		}
	}
	// The jti is claimed with the limits, in one script: the replay is
	// refused and recorded as a denial, and no second inspect is recorded.
	if evs := ts.Events(t, audit.Filter{Event: audit.EventInspect}); len(evs) != 1 || evs[0].Outcome != audit.OutcomeSuccess {
		t.Fatalf("inspects on record: %+v, want the one that was served", evs)
	}
	if evs := ts.Events(t, audit.Filter{Event: audit.EventDenied}); len(evs) != 2 || evs[0].Code != "replay" || evs[1].Code != "replay" || evs[0].Resource != "op:inspect" || evs[0].Client != "gateway" {
		t.Fatalf("denials on record: %+v, want the two replays", evs)
	}
	if resp, _ := ts.call(t, nil, http.MethodGet, "/readyz", nil); resp.StatusCode != 200 {
		t.Fatalf("readyz with redis: %d", resp.StatusCode)
	}

	dead := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = dead.Close() })
	down := newTestServer(t, backends{replay: replay.NewRedis(dead, "t:jti:"), limiter: ratelimit.NewRedis(dead, "t:rl:"), redis: redisx.Pinger{C: dead}})
	jwe = down.cardJWE(t, testPAN, "cs_1", time.Now())
	resp, m := down.call(t, down.gateway, http.MethodPost, "/v1/inspect", wire.InspectRequest{JWE: jwe, Session: "cs_1", Merchant: "m_1"})
	if resp.StatusCode != 503 || errCode(m) != "unavailable" {
		t.Fatalf("redis down inspect: %d %v", resp.StatusCode, m)
	}
	// Not admitted (the jti could not be claimed): a denial, as a replay
	// cache failure always was, and no inspect on record.
	if evs := down.Events(t, audit.Filter{Event: audit.EventInspect}); len(evs) != 0 {
		t.Fatalf("inspects on record with redis down: %+v", evs)
	}
	if evs := down.Events(t, audit.Filter{Event: audit.EventDenied}); len(evs) != 1 || evs[0].Code != "unavailable" || evs[0].Resource != "op:inspect" {
		t.Fatalf("denials on record with redis down: %+v", evs)
	}
	resp, m = down.call(t, down.backoffic, http.MethodPost, "/v1/reveal", wire.RevealRequest{JWE: jwe, Actor: "op_1", Reason: "dispute"})
	if resp.StatusCode != 503 || m["jwe"] != nil {
		t.Fatalf("redis down reveal: %d %v", resp.StatusCode, m)
	}
	if resp, _ := down.call(t, nil, http.MethodGet, "/readyz", nil); resp.StatusCode != 503 {
		t.Fatalf("readyz with redis down: %d", resp.StatusCode)
	}
}

// TestAuditQueryPages: the key service filters by a set of actors and pages
// with a before_seq cursor, so the back office never fetches the trail to
// filter it itself.
func TestAuditQueryPages(t *testing.T) {
	ts := newTestServer(t, memoryBackends())
	jwe := ts.cardJWE(t, testPAN, "cs_1", time.Now())
	for _, actor := range []string{"op_1", "op_2", "op_3", "op_1"} {
		if resp, m := ts.reveal(t, actor, "refund", "tok_1", jwe); resp.StatusCode != 200 {
			t.Fatalf("reveal by %s: %d %v", actor, resp.StatusCode, m)
		}
	}
	query := func(t *testing.T, req wire.AuditQueryRequest) wire.AuditQueryResponse {
		t.Helper()
		resp, m := ts.call(t, ts.backoffic, http.MethodPost, "/v1/audit/query", req)
		if resp.StatusCode != 200 {
			t.Fatalf("audit query: %d %v", resp.StatusCode, m)
		}
		b, _ := json.Marshal(m)
		var out wire.AuditQueryResponse
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	actors := func(r wire.AuditQueryResponse) string {
		var s []string
		for _, e := range r.Events {
			s = append(s, e.Actor)
		}
		return strings.Join(s, ",")
	}
	t.Run("200/pages-newest-first", func(t *testing.T) {
		p1 := query(t, wire.AuditQueryRequest{Event: audit.EventReveal, Limit: 3})
		if actors(p1) != "op_1,op_3,op_2" || p1.NextBeforeSeq != p1.Events[2].Seq {
			t.Fatalf("page 1: %s next %d", actors(p1), p1.NextBeforeSeq)
		}
		p2 := query(t, wire.AuditQueryRequest{Event: audit.EventReveal, Limit: 3, BeforeSeq: p1.NextBeforeSeq})
		if actors(p2) != "op_1" || p2.NextBeforeSeq != 0 {
			t.Fatalf("page 2: %s next %d", actors(p2), p2.NextBeforeSeq)
		}
	})
	t.Run("200/exact-page-has-no-next", func(t *testing.T) {
		if p := query(t, wire.AuditQueryRequest{Event: audit.EventReveal, Limit: 4}); len(p.Events) != 4 || p.NextBeforeSeq != 0 {
			t.Fatalf("%s next %d", actors(p), p.NextBeforeSeq)
		}
	})
	t.Run("200/actor-set", func(t *testing.T) {
		if p := query(t, wire.AuditQueryRequest{Event: audit.EventReveal, Actors: []string{"op_1", "op_3"}}); actors(p) != "op_1,op_3,op_1" {
			t.Fatalf("got %s", actors(p))
		}
	})
	t.Run("200/actor-and-set-both-apply", func(t *testing.T) {
		if p := query(t, wire.AuditQueryRequest{Actor: "op_2", Actors: []string{"op_1"}}); len(p.Events) != 0 {
			t.Fatalf("got %s", actors(p))
		}
	})
	t.Run("400/too-many-actors", func(t *testing.T) {
		many := make([]string, wire.MaxAuditActors+1)
		for i := range many {
			many[i] = "op_" + strconv.Itoa(i)
		}
		resp, m := ts.call(t, ts.backoffic, http.MethodPost, "/v1/audit/query", wire.AuditQueryRequest{Actors: many})
		if resp.StatusCode != 400 || errCode(m) != "invalid_field" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
}
