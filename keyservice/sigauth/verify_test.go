package sigauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// fakeReplay is an in-memory ReplayCache that records what it was asked
// and can be told to fail like a Redis outage.
type fakeReplay struct {
	mu     sync.Mutex
	seen   map[string]time.Time
	down   bool
	claims int
}

func newFakeReplay() *fakeReplay { return &fakeReplay{seen: map[string]time.Time{}} }

func (f *fakeReplay) Claim(_ context.Context, jti string, until time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims++
	if f.down {
		return false, errors.New("dial tcp 127.0.0.1:6379: connection refused")
	}
	if _, ok := f.seen[jti]; ok {
		return false, nil
	}
	f.seen[jti] = until
	return true, nil
}

var (
	now     = time.Unix(1_700_000_000, 0)
	testURL = "https://keyservice.internal:8443/v1/inspect"
	body    = []byte(`{"jwe":"a.b.c.d.e","session":"cs_1"}`)
)

type keys struct {
	gwOld, gwNew, bo, revoked, stranger crypto.Signer
}

func mustEd(t testing.TB) crypto.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustP256(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newTestList enrols a gateway with a previous (Ed25519) and a current
// (P-256) key plus a revoked one, and a back office with its own key.
func newTestList(t testing.TB) (*AllowList, keys) {
	t.Helper()
	k := keys{gwOld: mustEd(t), gwNew: mustP256(t), bo: mustEd(t), revoked: mustEd(t), stranger: mustEd(t)}
	al := &AllowList{}
	for _, e := range []struct {
		id, kid string
		ops     []string
		key     crypto.Signer
	}{
		{"gateway", "gw-old", []string{wire.OpInspect, wire.OpRewrap}, k.gwOld},
		{"gateway", "gw-new", nil, k.gwNew},
		{"gateway", "gw-revoked", nil, k.revoked},
		{"backoffice", "bo-1", []string{wire.OpReveal}, k.bo},
	} {
		if err := al.AddClient(e.id, e.ops, e.kid, e.key.Public()); err != nil {
			t.Fatal(err)
		}
	}
	if err := al.Revoke("gw-revoked"); err != nil {
		t.Fatal(err)
	}
	return al, k
}

func goodClaims() wire.Claims {
	return wire.Claims{
		Iss: "gateway", Aud: "keyservice", Iat: now.Unix(), Exp: now.Unix() + 30,
		Jti: "AAAAAAAAAAAAAAAAAAAAAA", Htm: "POST", Htu: testURL, Bh: wire.BodyHash(body),
	}
}

func sign(t testing.TB, c any, key crypto.Signer, kid string) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.Sign(payload, key, kid)
	if err != nil {
		t.Fatal(err)
	}
	return wire.AuthScheme + " " + s
}

func TestVerify(t *testing.T) {
	al, k := newTestList(t)
	with := func(f func(c *wire.Claims)) wire.Claims {
		c := goodClaims()
		f(&c)
		return c
	}
	good := goodClaims()
	tests := []struct {
		name      string
		auth      string
		body      []byte
		replay    *fakeReplay
		want      error
		wantOps   []string
		wantClaim bool // the replay cache must have been asked
	}{
		{name: "ok/current-key", auth: sign(t, good, k.gwNew, "gw-new"), wantOps: []string{wire.OpInspect, wire.OpRewrap}, wantClaim: true},
		{name: "ok/previous-key", auth: sign(t, good, k.gwOld, "gw-old"), wantOps: []string{wire.OpInspect, wire.OpRewrap}, wantClaim: true},
		{name: "ok/within-skew", auth: sign(t, with(func(c *wire.Claims) { c.Iat, c.Exp = now.Unix()-34, now.Unix()-4 }), k.gwNew, "gw-new"), wantOps: []string{wire.OpInspect, wire.OpRewrap}, wantClaim: true},
		{name: "ok/iat-within-skew", auth: sign(t, with(func(c *wire.Claims) { c.Iat, c.Exp = now.Unix()+4, now.Unix()+34 }), k.gwNew, "gw-new"), wantOps: []string{wire.OpInspect, wire.OpRewrap}, wantClaim: true},
		{name: "ok/backoffice", auth: sign(t, with(func(c *wire.Claims) { c.Iss = "backoffice" }), k.bo, "bo-1"), wantOps: []string{wire.OpReveal}, wantClaim: true},
		{name: "401/missing", auth: "", want: ErrMissing},
		{name: "401/wrong-scheme", auth: "Bearer " + strings.TrimPrefix(sign(t, good, k.gwNew, "gw-new"), wire.AuthScheme+" "), want: ErrMissing},
		{name: "401/scheme-only", auth: wire.AuthScheme + " ", want: ErrMissing},
		{name: "401/bad-signature", auth: sign(t, good, k.stranger, "gw-old"), want: ErrBadSignature},
		{name: "401/alg-confusion", auth: sign(t, good, mustP256(t), "gw-old"), want: ErrBadSignature},
		{name: "401/malformed-token", auth: wire.AuthScheme + " not.a.jws", want: ErrBadSignature},
		{name: "401/expired", auth: sign(t, with(func(c *wire.Claims) { c.Iat, c.Exp = now.Unix()-40, now.Unix()-10 }), k.gwNew, "gw-new"), want: ErrExpired},
		{name: "401/iat-in-future", auth: sign(t, with(func(c *wire.Claims) { c.Iat, c.Exp = now.Unix()+30, now.Unix()+60 }), k.gwNew, "gw-new"), want: ErrClaims},
		{name: "401/ttl-too-long", auth: sign(t, with(func(c *wire.Claims) { c.Exp = c.Iat + 61 }), k.gwNew, "gw-new"), want: ErrClaims},
		{name: "401/exp-before-iat", auth: sign(t, with(func(c *wire.Claims) { c.Exp = c.Iat - 1 }), k.gwNew, "gw-new"), want: ErrClaims},
		{name: "401/wrong-aud", auth: sign(t, with(func(c *wire.Claims) { c.Aud = "other-keyservice" }), k.gwNew, "gw-new"), want: ErrClaims},
		{name: "401/htm", auth: sign(t, with(func(c *wire.Claims) { c.Htm = "GET" }), k.gwNew, "gw-new"), want: ErrClaims},
		{name: "401/htu", auth: sign(t, with(func(c *wire.Claims) { c.Htu = "https://keyservice.internal:8443/v1/reveal" }), k.gwNew, "gw-new"), want: ErrClaims},
		{name: "401/htu-query", auth: sign(t, with(func(c *wire.Claims) { c.Htu = testURL + "?x=1" }), k.gwNew, "gw-new"), want: ErrClaims},
		{name: "401/htu-other-host", auth: sign(t, with(func(c *wire.Claims) { c.Htu = "https://staging-keyservice.internal:8443/v1/inspect" }), k.gwNew, "gw-new"), want: ErrClaims},
		{name: "401/htu-other-port", auth: sign(t, with(func(c *wire.Claims) { c.Htu = "https://keyservice.internal:9443/v1/inspect" }), k.gwNew, "gw-new"), want: ErrClaims},
		{name: "401/htu-other-scheme", auth: sign(t, with(func(c *wire.Claims) { c.Htu = "http://keyservice.internal:8443/v1/inspect" }), k.gwNew, "gw-new"), want: ErrClaims},
		{name: "ok/htu-second-name", auth: sign(t, with(func(c *wire.Claims) { c.Htu = "https://KS.example/v1/inspect" }), k.gwNew, "gw-new"), wantOps: []string{wire.OpInspect, wire.OpRewrap}, wantClaim: true},
		{name: "401/htu-relative", auth: sign(t, with(func(c *wire.Claims) { c.Htu = "/v1/inspect" }), k.gwNew, "gw-new"), want: ErrClaims},
		{name: "401/body-hash", auth: sign(t, good, k.gwNew, "gw-new"), body: []byte(`{"jwe":"other","session":"cs_1"}`), want: ErrBodyHash},
		{name: "401/short-jti", auth: sign(t, with(func(c *wire.Claims) { c.Jti = "1" }), k.gwNew, "gw-new"), want: ErrClaims},
		{name: "401/unknown-claim", auth: sign(t, map[string]any{"iss": "gateway", "aud": "keyservice", "iat": now.Unix(), "exp": now.Unix() + 30, "jti": good.Jti, "htm": "POST", "htu": testURL, "bh": good.Bh, "admin": true}, k.gwNew, "gw-new"), want: ErrClaims},
		{name: "401/unknown-kid", auth: sign(t, good, k.stranger, "who-1"), want: ErrUnknownClient},
		{name: "401/revoked", auth: sign(t, good, k.revoked, "gw-revoked"), want: ErrRevoked},
		{name: "401/iss-not-owner", auth: sign(t, good, k.bo, "bo-1"), want: ErrUnknownClient},
		{name: "409/replay", auth: sign(t, good, k.gwNew, "gw-new"), replay: &fakeReplay{seen: map[string]time.Time{"gateway:" + good.Jti: now}}, want: ErrReplay, wantClaim: true},
		{name: "503/replay-store-down", auth: sign(t, good, k.gwNew, "gw-new"), replay: &fakeReplay{down: true}, want: ErrReplayStore, wantClaim: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			replay := tc.replay
			if replay == nil {
				replay = newFakeReplay()
			}
			b := body
			if tc.body != nil {
				b = tc.body
			}
			v := &Verifier{Audience: "keyservice", Origins: testOrigins(t), Clients: al, Replay: replay, Now: func() time.Time { return now }}
			caller, err := v.Verify(context.Background(), tc.auth, "POST", "/v1/inspect", b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if (replay.claims > 0) != tc.wantClaim {
				// Only an otherwise valid request may consume its jti.
				t.Fatalf("replay cache asked %d times", replay.claims)
			}
			if err != nil {
				if len(caller.Ops) != 0 {
					t.Fatalf("refused caller carries ops %v", caller.Ops)
				}
				for _, secret := range []string{"eyJ", good.Jti, good.Bh} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error text leaks request data: %q", err)
					}
				}
				return
			}
			if strings.Join(caller.Ops, ",") != strings.Join(tc.wantOps, ",") {
				t.Fatalf("ops = %v", caller.Ops)
			}
		})
	}
}

func TestVerifyReplayWindow(t *testing.T) {
	al, k := newTestList(t)
	replay := newFakeReplay()
	v := &Verifier{Audience: "keyservice", Origins: testOrigins(t), Clients: al, Replay: replay, Skew: 2 * time.Second, Now: func() time.Time { return now }}
	auth := sign(t, goodClaims(), k.gwNew, "gw-new")

	// A refused request does not burn the jti...
	if _, err := v.Verify(context.Background(), auth, "POST", "/v1/inspect", []byte("tampered")); !errors.Is(err, ErrBodyHash) {
		t.Fatal(err)
	}
	// ...so the genuine one still goes through, once.
	caller, err := v.Verify(context.Background(), auth, "POST", "/v1/inspect", body)
	if err != nil || caller.ClientID != "gateway" || caller.Kid != "gw-new" {
		t.Fatalf("%+v %v", caller, err)
	}
	if _, err := v.Verify(context.Background(), auth, "POST", "/v1/inspect", body); !errors.Is(err, ErrReplay) {
		t.Fatalf("second use: %v", err)
	}
	// The jti is held, per client, until the request could no longer be
	// accepted at all: exp plus skew.
	until, ok := replay.seen["gateway:"+goodClaims().Jti]
	if !ok || !until.Equal(time.Unix(goodClaims().Exp, 0).Add(2*time.Second)) {
		t.Fatalf("claimed until %v (%v)", until, ok)
	}
}

func TestVerifyRefusedCallerNamesClaimedClient(t *testing.T) {
	al, k := newTestList(t)
	v := &Verifier{Audience: "keyservice", Origins: testOrigins(t), Clients: al, Replay: newFakeReplay(), Now: func() time.Time { return now }}
	caller, err := v.Verify(context.Background(), sign(t, goodClaims(), k.revoked, "gw-revoked"), "POST", "/v1/inspect", body)
	if !errors.Is(err, ErrRevoked) || caller.ClientID != "gateway" || caller.Kid != "gw-revoked" || caller.May(wire.OpInspect) {
		t.Fatalf("%+v %v", caller, err)
	}
}

func TestVerifyMisconfigured(t *testing.T) {
	al, k := newTestList(t)
	auth := sign(t, goodClaims(), k.gwNew, "gw-new")
	for name, v := range map[string]*Verifier{
		"no-audience": {Origins: testOrigins(t), Clients: al, Replay: newFakeReplay(), Now: func() time.Time { return now }},
		"no-replay":   {Audience: "keyservice", Origins: testOrigins(t), Clients: al, Now: func() time.Time { return now }},
		"no-clients":  {Audience: "keyservice", Origins: testOrigins(t), Replay: newFakeReplay(), Now: func() time.Time { return now }},
		// No public URL: any host would do, so none does.
		"no-origins": {Audience: "keyservice", Clients: al, Replay: newFakeReplay(), Now: func() time.Time { return now }},
	} {
		t.Run("fail-closed/"+name, func(t *testing.T) {
			if _, err := v.Verify(context.Background(), auth, "POST", "/v1/inspect", body); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	al, k := newTestList(f)
	good := sign(f, goodClaims(), k.gwNew, "gw-new")
	f.Add(good)
	f.Add(sign(f, goodClaims(), k.gwOld, "gw-old"))
	f.Add(sign(f, goodClaims(), k.revoked, "gw-revoked"))
	f.Add(wire.AuthScheme + " " + "eyJhbGciOiJub25lIn0.e30.")
	f.Add("Bearer x")
	f.Add(wire.AuthScheme)
	f.Fuzz(func(t *testing.T, auth string) {
		v := &Verifier{Audience: "keyservice", Origins: testOrigins(t), Clients: al, Replay: newFakeReplay(), Now: func() time.Time { return now }}
		caller, err := v.Verify(context.Background(), auth, "POST", "/v1/inspect", body)
		if err != nil {
			if len(caller.Ops) != 0 {
				t.Fatal("refused caller with ops")
			}
			return
		}
		if caller.ClientID != "gateway" || (caller.Kid != "gw-new" && caller.Kid != "gw-old") {
			t.Fatalf("accepted as %+v", caller)
		}
	})
}

func testOrigins(t testing.TB) []string {
	t.Helper()
	o, err := ParseOrigins("https://keyservice.internal:8443, https://ks.example:443/")
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestParseOrigins(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"https://KeyService:8443", "https://keyservice:8443"},
		{"https://ks.example:443/, http://ks.example:80", "https://ks.example,http://ks.example"},
		{"http://[::1]:8443", "http://[::1]:8443"},
		{"https://a, https://a", "https://a"},
	}
	for _, tc := range tests {
		got, err := ParseOrigins(tc.in)
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("ParseOrigins(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", " , ", "ftp://ks", "https://ks/v1", "https://u@ks", "https://ks?x", "keyservice:8443"} {
		if _, err := ParseOrigins(bad); err == nil {
			t.Errorf("ParseOrigins(%q) accepted", bad)
		}
	}
}
