package client_test

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/sigauth"
	"github.com/blindgate/blindgate/keyservice/wire"
)

const testPAN = "4242424242424242"

// memReplay is a minimal in-memory ReplayCache for these tests.
type memReplay struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (m *memReplay) Claim(_ context.Context, jti string, _ time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	if m.seen[jti] {
		return false, nil
	}
	m.seen[jti] = true
	return true, nil
}

type fixture struct {
	signer   *client.Signer
	verifier *sigauth.Verifier
}

func newFixture(t *testing.T, alg string) fixture {
	t.Helper()
	key, err := client.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	al := &sigauth.AllowList{}
	if err := al.AddClient("gateway", []string{wire.OpInspect, wire.OpRewrap}, "gateway-1", key.Public()); err != nil {
		t.Fatal(err)
	}
	return fixture{
		signer:   &client.Signer{ClientID: "gateway", Kid: "gateway-1", Audience: "keyservice", Key: key},
		verifier: &sigauth.Verifier{Audience: "keyservice", Origins: []string{"https://ks.internal:8443", "https://ks"}, Clients: al, Replay: &memReplay{}},
	}
}

func TestSignerVerifiedBySigauth(t *testing.T) {
	for _, alg := range []string{client.AlgEdDSA, client.AlgES256} {
		t.Run("ok/"+alg, func(t *testing.T) {
			f := newFixture(t, alg)
			body := []byte(`{"jwe":"x","session":"cs_1"}`)
			auth, err := f.signer.Authorization("post", "https://ks.internal:8443/v1/inspect?ignored=1#frag", body)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(auth, wire.AuthScheme+" ") {
				t.Fatalf("header %q", auth)
			}
			caller, err := f.verifier.Verify(context.Background(), auth, "POST", "/v1/inspect", body)
			if err != nil {
				t.Fatal(err)
			}
			if caller.ClientID != "gateway" || caller.Kid != "gateway-1" || !caller.May(wire.OpInspect) || caller.May(wire.OpReveal) {
				t.Fatalf("caller %+v", caller)
			}
			// The same header again is a replay.
			if _, err := f.verifier.Verify(context.Background(), auth, "POST", "/v1/inspect", body); !errors.Is(err, sigauth.ErrReplay) {
				t.Fatalf("replay: %v", err)
			}
		})
	}
}

func TestSignerClaims(t *testing.T) {
	f := newFixture(t, "")
	now := time.Unix(1_700_000_000, 0)
	f.signer.Now = func() time.Time { return now }
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		auth, err := f.signer.Authorization("POST", "https://ks/v1/rewrap?a=b", []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		c := claimsOf(t, auth)
		if c.Iss != "gateway" || c.Aud != "keyservice" || c.Iat != now.Unix() || c.Exp != now.Unix()+30 ||
			c.Htm != "POST" || c.Htu != "https://ks/v1/rewrap" || c.Bh != wire.BodyHash([]byte("{}")) || len(c.Jti) != 22 {
			t.Fatalf("claims %+v", c)
		}
		if seen[c.Jti] {
			t.Fatal("jti reused")
		}
		seen[c.Jti] = true
	}

	bad := []struct {
		name string
		mod  func(s *client.Signer)
		url  string
	}{
		{"ttl-too-long", func(s *client.Signer) { s.TTL = 61 * time.Second }, "https://ks/v1/inspect"},
		{"ttl-too-short", func(s *client.Signer) { s.TTL = time.Millisecond }, "https://ks/v1/inspect"},
		{"no-key", func(s *client.Signer) { s.Key = nil }, "https://ks/v1/inspect"},
		{"no-audience", func(s *client.Signer) { s.Audience = "" }, "https://ks/v1/inspect"},
		{"relative-url", func(s *client.Signer) {}, "/v1/inspect"},
		{"ftp-url", func(s *client.Signer) {}, "ftp://ks/v1/inspect"},
	}
	for _, tc := range bad {
		t.Run("error/"+tc.name, func(t *testing.T) {
			s := *f.signer
			tc.mod(&s)
			if _, err := s.Authorization("POST", tc.url, nil); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func claimsOf(t *testing.T, auth string) wire.Claims {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(auth, wire.AuthScheme+" "), ".")
	raw, err := base64URL(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c wire.Claims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// newServer is a key service stand-in that really verifies signatures.
func newServer(t *testing.T, f fixture, h func(w http.ResponseWriter, r *http.Request, body []byte)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost {
			if _, err := f.verifier.Verify(r.Context(), r.Header.Get("Authorization"), r.Method, r.URL.Path, body); err != nil {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":{"code":"unauthenticated","message":"bad signature"}}`))
				return
			}
		}
		h(w, r, body)
	}))
	t.Cleanup(srv.Close)
	// Before any request: the stand-in is reached at its own URL.
	f.verifier.Origins = append(f.verifier.Origins, srv.URL)
	return srv
}

func TestClientSuccess(t *testing.T) { bothSenders(t, testClientSuccess) }

func testClientSuccess(t *testing.T, newClient clientMaker) {
	f := newFixture(t, "")
	srv := newServer(t, f, func(w http.ResponseWriter, r *http.Request, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case wire.PathInspect:
			var req wire.InspectRequest
			if err := json.Unmarshal(body, &req); err != nil || req.Session != "cs_1" {
				w.WriteHeader(400)
				return
			}
			_, _ = w.Write([]byte(`{"kid":"kek-1","brand":"visa","bin":"424242","last4":"4242","exp_month":12,"exp_year":2030,"fingerprint":"fpm_x"}`))
		case wire.PathReveal:
			var req wire.RevealRequest
			if err := json.Unmarshal(body, &req); err != nil || req.Nonce != testNonce || req.BrowserKey != testBrowserKey || string(req.Assertion) != `{"id":"AAAA"}` {
				w.WriteHeader(400)
				return
			}
			_, _ = w.Write([]byte(`{"jwe":"e.f..g.h","credential":"AAAA"}`))
		case wire.PathRevealChallenge:
			_, _ = w.Write([]byte(`{"nonce":"` + testNonce + `","expires_at":1,"rp_id":"bo.example","credentials":["AAAA"],"passkey_required":true}`))
		case wire.PathPasskeyChallenge:
			_, _ = w.Write([]byte(`{"nonce":"pkn_x","expires_at":1,"rp_id":"bo.example","user_handle":"uh"}`))
		case wire.PathPasskeys:
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"credential":"AAAA","fingerprint":"K7QD-9F2M-XW4A","status":"pending"}`))
		case wire.PathPasskeyList:
			_, _ = w.Write([]byte(`{"credentials":[{"id":"AAAA","fingerprint":"K7QD-9F2M-XW4A","status":"approved","created_at":5,"approved_at":6}]}`))
		case wire.PathRewrap:
			_, _ = w.Write([]byte(`{"jwe":"a.b.c.d.e","kid":"kek-2"}`))
		case wire.PathJWKS:
			if r.Header.Get("Authorization") != "" {
				w.WriteHeader(400)
				return
			}
			_, _ = w.Write([]byte(`{"keys":[]}`))
		}
	})
	c := newClient(srv.URL+"/", f.signer, srv.Client())
	ctx := context.Background()

	got, err := c.Inspect(ctx, wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs_1", Merchant: "m_1"})
	if err != nil {
		t.Fatal(err)
	}
	want := wire.InspectResponse{Kid: "kek-1", Brand: "visa", BIN: "424242", Last4: "4242", ExpMonth: 12, ExpYear: 2030, Fingerprint: "fpm_x"}
	if got != want {
		t.Fatalf("inspect = %+v", got)
	}
	ch, err := c.RevealChallenge(ctx, wire.RevealChallengeRequest{Actor: "op_1", Token: "tok_1"})
	if err != nil || ch.Nonce != testNonce || ch.RPID != "bo.example" || len(ch.Credentials) != 1 || !ch.PasskeyRequired {
		t.Fatalf("reveal challenge = %+v %v", ch, err)
	}
	rev, err := c.Reveal(ctx, validReveal())
	if err != nil || rev != (wire.RevealResponse{JWE: "e.f..g.h", Credential: "AAAA"}) {
		t.Fatalf("reveal = %v %v", rev, err)
	}
	pc, err := c.PasskeyChallenge(ctx, wire.PasskeyChallengeRequest{Actor: "op_1"})
	if err != nil || pc.Nonce != "pkn_x" || pc.UserHandle != "uh" {
		t.Fatalf("passkey challenge = %+v %v", pc, err)
	}
	reg, err := c.RegisterPasskey(ctx, wire.PasskeyRegisterRequest{Actor: "op_1", Username: "Op One", Nonce: "pkn_" + testNonce[4:], Attestation: []byte(`{"id":"AAAA"}`)})
	if err != nil || reg.Status != wire.PasskeyPending || reg.Fingerprint != "K7QD-9F2M-XW4A" {
		t.Fatalf("register = %+v %v", reg, err)
	}
	list, err := c.ListPasskeys(ctx, wire.PasskeyListRequest{Actor: "op_1"})
	if err != nil || len(list.Credentials) != 1 || list.Credentials[0].ApprovedAt != 6 {
		t.Fatalf("list = %+v %v", list, err)
	}
	rw, err := c.Rewrap(ctx, wire.RewrapRequest{JWE: "a.b.c.d.e", Merchant: "m_1"})
	if err != nil || rw.Kid != "kek-2" {
		t.Fatalf("rewrap = %v %v", rw, err)
	}
	jwks, err := c.JWKS(ctx)
	if err != nil || string(jwks) != `{"keys":[]}` {
		t.Fatalf("jwks = %s %v", jwks, err)
	}
}

func TestClientErrors(t *testing.T) { bothSenders(t, testClientErrors) }

func testClientErrors(t *testing.T, newClient clientMaker) {
	f := newFixture(t, "")
	retryAt := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	srv := newServer(t, f, func(w http.ResponseWriter, r *http.Request, body []byte) {
		switch r.URL.Path {
		case wire.PathInspect:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"code":"rate_limited","message":"Too many requests; retry later."}}`))
		case wire.PathRewrap:
			w.Header().Set("Retry-After", retryAt)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"sealed","message":"The key service is sealed."}}`))
		case wire.PathReveal:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte(`<html>proxy error</html>`))
		}
	})
	c := newClient(srv.URL, f.signer, srv.Client())
	ctx := context.Background()

	_, err := c.Inspect(ctx, wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs_1", Merchant: "m_1"})
	var ke *client.Error
	if !errors.As(err, &ke) || ke.Status != 429 || ke.Code != "rate_limited" || ke.RetryAfter != 7*time.Second || !ke.Temporary() {
		t.Fatalf("429: %#v", err)
	}
	if strings.Contains(err.Error(), "a.b.c.d.e") || strings.Contains(err.Error(), "cs_1") {
		t.Fatalf("error text carries request data: %q", err)
	}

	_, err = c.Rewrap(ctx, wire.RewrapRequest{JWE: "a.b.c.d.e", Merchant: "m_1"})
	if !errors.As(err, &ke) || ke.Code != "sealed" || ke.RetryAfter < 80*time.Second || ke.RetryAfter > 90*time.Second {
		t.Fatalf("503: %#v", err)
	}

	_, err = c.Reveal(ctx, validReveal())
	if !errors.As(err, &ke) || ke.Status != 502 || ke.Code != "http_502" || ke.Temporary() {
		t.Fatalf("502: %#v", err)
	}

	// A signature the server rejects surfaces as its 401 code.
	other := *f.signer
	other.Kid = "nope-1"
	_, err = newClient(srv.URL, &other, srv.Client()).Inspect(ctx, wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs_1", Merchant: "m_1"})
	if !errors.As(err, &ke) || ke.Status != 401 || ke.Code != "unauthenticated" {
		t.Fatalf("401: %v", err)
	}
}

func TestClientBadResponseHidesBody(t *testing.T) { bothSenders(t, testClientBadResponseHidesBody) }

func testClientBadResponseHidesBody(t *testing.T, newClient clientMaker) {
	f := newFixture(t, "")
	srv := newServer(t, f, func(w http.ResponseWriter, r *http.Request, body []byte) {
		_, _ = fmt.Fprintf(w, `{"pan":%s}`, testPAN+"x") // not JSON
	})
	_, err := newClient(srv.URL, f.signer, srv.Client()).Reveal(context.Background(), validReveal())
	if !errors.Is(err, client.ErrBadResponse) || strings.Contains(err.Error(), "4242") {
		t.Fatalf("err = %v", err)
	}
}

// An answer over the 4 MiB cap is refused unread, whether its length is
// announced or it comes in chunks, on either sender; its bytes stay out of
// the error.
func TestClientTooLargeAnswer(t *testing.T) { bothSenders(t, testClientTooLargeAnswer) }

func testClientTooLargeAnswer(t *testing.T, newClient clientMaker) {
	big := []byte(`{"keys":["` + strings.Repeat("4242", 1<<20) + `"]}`)
	for _, tc := range []struct {
		name    string
		chunked bool
	}{{"err/content-length", false}, {"err/chunked", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if !tc.chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(big)))
				}
				for rest := big; len(rest) > 0; rest = rest[min(len(rest), 64<<10):] {
					_, _ = w.Write(rest[:min(len(rest), 64<<10)])
					if tc.chunked {
						w.(http.Flusher).Flush()
					}
				}
			}))
			t.Cleanup(srv.Close)
			_, err := newClient(srv.URL, nil, nil).JWKS(context.Background())
			if !errors.Is(err, client.ErrBadResponse) || !strings.Contains(err.Error(), "too large") || strings.Contains(err.Error(), "4242") {
				t.Fatalf("err = %v, want a too-large ErrBadResponse", err)
			}
		})
	}
}

func TestClientTransportError(t *testing.T) { bothSenders(t, testClientTransportError) }

func testClientTransportError(t *testing.T, newClient clientMaker) {
	f := newFixture(t, "")
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens any more
	c := newClient(base, f.signer, nil)
	_, err := c.Inspect(context.Background(), wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs_1", Merchant: "m_1"})
	var ue *url.Error
	var ke *client.Error
	if err == nil || !errors.As(err, &ue) || errors.As(err, &ke) {
		t.Fatalf("err = %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.JWKS(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

func TestClientValidatesBeforeSending(t *testing.T) { bothSenders(t, testClientValidatesBeforeSending) }

func testClientValidatesBeforeSending(t *testing.T, newClient clientMaker) {
	f := newFixture(t, "")
	hit := false
	srv := newServer(t, f, func(w http.ResponseWriter, r *http.Request, body []byte) { hit = true })
	c := newClient(srv.URL, f.signer, srv.Client())
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"inspect/no-session": func() error { _, err := c.Inspect(ctx, wire.InspectRequest{JWE: "x"}); return err },
		"inspect/no-jwe":     func() error { _, err := c.Inspect(ctx, wire.InspectRequest{Session: "cs"}); return err },
		"inspect/no-merchant": func() error {
			_, err := c.Inspect(ctx, wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs"})
			return err
		},
		"inspect/merchant-shape": func() error {
			_, err := c.Inspect(ctx, wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs", Merchant: "m 1"})
			return err
		},
		"inspect/merchant-long": func() error {
			_, err := c.Inspect(ctx, wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs", Merchant: strings.Repeat("m", 65)})
			return err
		},
		"inspect/cvc-too-large": func() error {
			_, err := c.Inspect(ctx, wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs", Merchant: "m_1", CVCJWE: strings.Repeat("x", 1<<20)})
			return err
		},
		"rewrap/no-merchant": func() error { _, err := c.Rewrap(ctx, wire.RewrapRequest{JWE: "a.b.c.d.e"}); return err },
		"reveal/short-reason": func() error {
			_, err := c.Reveal(ctx, wire.RevealRequest{JWE: "x", Actor: "a", Reason: "no"})
			return err
		},
		"reveal/card-number-in-reason": func() error {
			_, err := c.Reveal(ctx, wire.RevealRequest{JWE: "x", Actor: "a", Reason: "card 4242-4242-4242-4242 disputed"})
			if !errors.Is(err, wire.ErrPANInText) {
				return fmt.Errorf("want ErrPANInText: %w", err)
			}
			return err
		},
		"reveal/no-actor": func() error { _, err := c.Reveal(ctx, wire.RevealRequest{JWE: "x", Reason: "because"}); return err },
		"reveal/no-browser-key": func() error {
			r := validReveal()
			r.BrowserKey = wire.BrowserKey{}
			_, err := c.Reveal(ctx, r)
			return err
		},
		"reveal/no-nonce": func() error {
			r := validReveal()
			r.Nonce = ""
			_, err := c.Reveal(ctx, r)
			return err
		},
		"register/reveal-nonce": func() error {
			_, err := c.RegisterPasskey(ctx, wire.PasskeyRegisterRequest{Actor: "op_1", Username: "u", Nonce: testNonce, Attestation: []byte(`{}`)})
			return err
		},
		"challenge/no-token": func() error {
			_, err := c.RevealChallenge(ctx, wire.RevealChallengeRequest{Actor: "op_1"})
			return err
		},
		"audit/limit":   func() error { _, err := c.AuditQuery(ctx, wire.AuditQueryRequest{Limit: -1}); return err },
		"audit/outcome": func() error { _, err := c.AuditQuery(ctx, wire.AuditQueryRequest{Outcome: "maybe"}); return err },
	} {
		t.Run("400/"+name, func(t *testing.T) {
			if err := call(); !errors.Is(err, wire.ErrInvalidRequest) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	if hit {
		t.Fatal("an invalid request reached the server")
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.jwk")
	kid, pub, err := client.GenerateKeyFile(path, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(kid, "gateway-") {
		t.Fatalf("kid %q", kid)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	kid2, key, err := client.LoadKeyFile(path)
	if err != nil || kid2 != kid || !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Fatalf("load: %q %v", kid2, err)
	}
	if _, _, err := client.GenerateKeyFile(path, "gateway"); err == nil {
		t.Fatal("overwrote an existing key file")
	}
	// The loaded key signs requests the allow-list accepts.
	al := &sigauth.AllowList{}
	if err := al.AddClient("gateway", []string{wire.OpInspect}, kid, pub); err != nil {
		t.Fatal(err)
	}
	s := &client.Signer{ClientID: "gateway", Kid: kid, Audience: "ks", Key: key}
	auth, err := s.Authorization("POST", "http://ks/v1/inspect", nil)
	if err != nil {
		t.Fatal(err)
	}
	v := &sigauth.Verifier{Audience: "ks", Origins: []string{"http://ks"}, Clients: al, Replay: &memReplay{}}
	if _, err := v.Verify(context.Background(), auth, "POST", "/v1/inspect", nil); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateKey(t *testing.T) {
	for _, alg := range []string{"", client.AlgEdDSA, client.AlgES256} {
		if _, err := client.GenerateKey(alg); err != nil {
			t.Fatalf("%q: %v", alg, err)
		}
	}
	if _, err := client.GenerateKey("RS256"); err == nil {
		t.Fatal("RS256 accepted")
	}
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

const testNonce = "rvn_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// testBrowserKey is the P-256 base point: a valid public key.
var testBrowserKey = wire.BrowserKey{Kty: "EC", Crv: "P-256", X: "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY", Y: "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"}

func validReveal() wire.RevealRequest {
	return wire.RevealRequest{JWE: "a.b.c.d.e", Actor: "op_1", Reason: "chargeback 123", Token: "tok_1", Nonce: testNonce,
		BrowserKey: testBrowserKey, Assertion: []byte(`{"id":"AAAA"}`)}
}

type clientMaker func(base string, s *client.Signer, hc *http.Client) *client.Client

// bothSenders runs a test with clients that send with net/http and with
// fasthttp (WithFastHTTP, as the gateway's): the same answers either way.
func bothSenders(t *testing.T, test func(t *testing.T, newClient clientMaker)) {
	t.Run("net-http", func(t *testing.T) { test(t, client.New) })
	t.Run("fasthttp", func(t *testing.T) {
		test(t, func(base string, s *client.Signer, hc *http.Client) *client.Client {
			c := client.New(base, s, hc).WithFastHTTP()
			if !client.SendsFast(c) {
				t.Fatal("WithFastHTTP kept net/http")
			}
			return c
		})
	})
}

// TestWithFastHTTP: fasthttp has no proxy, so a client any of whose
// replicas is reached through one keeps net/http; the copies WithClock and
// WithHTTPTimeout make keep the sender.
func TestWithFastHTTP(t *testing.T) {
	const replicas = "http://ks-1:8443, http://ks-2:8443"
	proxied := func(host string) *http.Client {
		hc := client.HTTPClient(false)
		hc.Transport.(*http.Transport).Proxy = func(r *http.Request) (*url.URL, error) {
			if r.URL.Host == host {
				return url.Parse("http://proxy:3128")
			}
			return nil, nil
		}
		return hc
	}
	for _, tc := range []struct {
		name string
		hc   *http.Client
		fast bool
	}{
		{"fast/no-proxy", client.HTTPClient(false), true},
		{"fast/proxy-for-other-hosts", proxied("elsewhere:80"), true},
		{"net-http/proxy-for-one-replica", proxied("ks-2:8443"), false},
		{"net-http/not-an-http-transport", &http.Client{Transport: roundTripper(nil)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := client.New(replicas, nil, tc.hc).WithFastHTTP()
			if got := client.SendsFast(c); got != tc.fast {
				t.Fatalf("sends with fasthttp: %v, want %v", got, tc.fast)
			}
			if got := client.SendsFast(c.WithClock(nil).WithHTTPTimeout(client.ForwardTimeout)); got != tc.fast {
				t.Fatalf("a copy sends with fasthttp: %v, want %v", got, tc.fast)
			}
		})
	}
	if client.SendsFast(client.New(replicas, nil, nil).WithHTTPTimeout(time.Minute)) {
		t.Fatal("WithHTTPTimeout turned fasthttp on")
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
