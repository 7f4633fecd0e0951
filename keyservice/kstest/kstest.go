// Package kstest starts a real key service in process for tests: a fresh
// keyring sealed in t.TempDir() and unsealed, an allow-list of signing
// clients, a durable audit log, the unwrap service and the HTTP API. Tests of
// the key service drive it through app.Test; tests of the gateway reach it
// over loopback through keyservice/client, so a reveal or an inspect they
// claim went through really did.
//
// The zone keeps everything its key service logs, DEBUG included (Zone.Logs),
// and fails the test when it ends if a test card number reached those logs,
// unbroken or grouped: the cards of internal/logtest and every one Encrypt
// was given.
//
// Only tests import this package: it links the key service's card and key
// code, which the gateway's own (non-test) imports must never reach.
package kstest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/logtest"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/passkey/passkeytest"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/admit"
	"github.com/blindgate/blindgate/keyservice/api"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/destinations"
	"github.com/blindgate/blindgate/keyservice/forward"
	"github.com/blindgate/blindgate/keyservice/guard"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/nonce"
	"github.com/blindgate/blindgate/keyservice/passkeys"
	"github.com/blindgate/blindgate/keyservice/replay"
	"github.com/blindgate/blindgate/keyservice/seal"
	"github.com/blindgate/blindgate/keyservice/sigauth"
	"github.com/blindgate/blindgate/keyservice/unwrap"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Audience is the audience every zone's verifier and signers use.
const Audience = "blindgate-keyservice"

// PublicURL is the origin the zone's verifier accepts in htu besides its
// listener's URL: tests that drive app.Test sign for it.
const PublicURL = "https://keyservice.internal"

// The zone's default WebAuthn relying party: the back office every reveal
// approval and passkey registration is checked for (Options.RP, SetRP).
const (
	RPID     = "localhost"
	RPOrigin = "https://localhost"
)

// Client is a signing identity of a zone. Its key id is ID+"-1".
type Client struct {
	ID  string
	Ops []string
	// Alg is the signing algorithm, client.AlgEdDSA when empty.
	Alg string
	// TTL of its signatures; zero means the client package's default.
	TTL time.Duration
	// Unlisted leaves it out of the allow-list: a stranger with a key.
	Unlisted bool
}

// Options configure NewZone; the zero value is a memory-backed zone with
// default limits and no clients.
type Options struct {
	// Alg of the keyring's first version; keyring.DefaultAlg when empty.
	Alg     string
	Clients []Client
	// Replay and Limiter default to the in-memory implementations.
	Replay  sigauth.ReplayCache
	Limiter ratelimit.Limiter
	// Redis is the readiness probe of /readyz; nil means none.
	Redis api.Pinger
	// Limits adjusts unwrap.DefaultLimits() when set.
	Limits func(*unwrap.Limits)
	// Guard is the enumeration guard's store; nil is in-memory.
	Guard guard.Counter
	// Log also receives the key service's logs, which Zone.Logs keeps
	// anyway.
	Log *slog.Logger
	// Audit wraps the auditor of the unwrap domain (inspect, reveal,
	// rewrap), for tests that make its appends fail; nil is the zone's
	// audit log itself.
	Audit func(unwrap.Auditor) unwrap.Auditor
	// Destinations are the forward destinations; nil is an empty list (every
	// forward refused). Tests point one at an httptest TLS server on
	// loopback, named in its allow_private.
	Destinations *destinations.List
	// Sender sends forwards; nil is forward.NewSender() (the real one).
	Sender forward.Sending
	// Idempotency is the forward's idempotency store; nil is in-memory.
	Idempotency forward.Store
	// ForwardLimits adjusts forward.DefaultLimits() when set.
	ForwardLimits func(*forward.Limits)
	// BindLegacy runs the key service with -bind-legacy.
	BindLegacy bool
	// RevealApproval is -reveal-approval: passkeys.ModePasskey (the
	// default) or passkeys.ModeNone.
	RevealApproval string
	// RP is the WebAuthn relying party; zero means RPID and RPOrigin.
	RP passkey.RP
	// Nonces holds reveal and registration nonces; nil is in-memory.
	Nonces nonce.Store
	// ChallengeLimit, when set, is each client's budget of reveal and
	// registration challenges, counted on Limiter as the app counts them;
	// zero counts none.
	ChallengeLimit ratelimit.Limit
	// Listen serves the API on a loopback listener (Zone.URL, Zone.Client);
	// without it the tests call Zone.Server.App().Test.
	Listen bool
	// AuditFile wraps the audit log's file (audit.Options.WrapFile): a test
	// injects a full or failing disk.
	AuditFile func(audit.File) audit.File
}

// Zone is a running key service and what a test needs to look inside it.
type Zone struct {
	Server    *api.Server
	Service   *unwrap.Service
	Forward   *forward.Service
	Keyring   *keyring.Keyring // as unsealed by Holder
	Holder    *seal.Holder
	Master    []byte // unseals Holder again after a test seals it
	Clients   *sigauth.AllowList
	Audit     *audit.Log
	AuditPath string
	// Logs is everything the key service logged, at every level; checked
	// for card numbers when the test ends.
	Logs *logtest.Sink
	URL  string // the listener's base URL with Options.Listen, else ""
	// Passkeys approves reveals and registers passkeys; Registry is its
	// file (PasskeysPath), which kstest's helpers approve in as an admin.
	Passkeys     *passkeys.Service
	Registry     *passkeys.Registry
	PasskeysPath string
	signers      map[string]*client.Signer
	rp           passkey.RP
}

// NewZone starts a key service; everything it opens is closed by t.Cleanup.
func NewZone(t testing.TB, o Options) *Zone {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if o.Alg == "" {
		o.Alg = keyring.DefaultAlg
	}
	if o.Replay == nil {
		o.Replay = replay.NewMemory()
	}
	if o.Limiter == nil {
		o.Limiter = ratelimit.NewMemory()
	}
	logs := logtest.NewSink(t)
	keep := slog.NewJSONHandler(logs, logtest.Debug)
	if o.Log == nil {
		o.Log = slog.New(keep)
	} else {
		o.Log = slog.New(slog.NewMultiHandler(keep, o.Log.Handler()))
	}
	dir := t.TempDir()
	kr, err := keyring.New(o.Alg)
	must(err)
	master, err := keyring.GenerateMasterKey()
	must(err)
	krPath := filepath.Join(dir, "keyring.sealed")
	must(keyring.Save(krPath, kr, master))
	z := &Zone{
		Holder: seal.New(krPath, 1), Master: master, Clients: &sigauth.AllowList{},
		AuditPath: filepath.Join(dir, "audit.log"), signers: map[string]*client.Signer{}, Logs: logs,
	}
	must(z.Holder.UnsealWithKey(master))
	z.Keyring, err = z.Holder.Keyring()
	must(err)

	for _, c := range o.Clients {
		if c.Alg == "" {
			c.Alg = client.AlgEdDSA
		}
		key, err := client.GenerateKey(c.Alg)
		must(err)
		kid := c.ID + "-1"
		if !c.Unlisted {
			must(z.Clients.AddClient(c.ID, c.Ops, kid, key.Public()))
		}
		z.signers[c.ID] = &client.Signer{ClientID: c.ID, Kid: kid, Audience: Audience, Key: key, TTL: c.TTL}
	}

	z.Audit, err = audit.Open(z.AuditPath, audit.Options{WrapFile: o.AuditFile})
	must(err)
	t.Cleanup(func() { _ = z.Audit.Close() })
	limits := unwrap.DefaultLimits()
	if o.Limits != nil {
		o.Limits(&limits)
	}
	if o.RP.ID == "" {
		o.RP = passkey.RP{ID: RPID, Origins: []string{RPOrigin}}
	}
	if o.Nonces == nil {
		o.Nonces = nonce.NewMemory(nil, 0)
	}
	rp, err := passkey.New(o.RP)
	must(err)
	z.rp = o.RP
	z.PasskeysPath = filepath.Join(dir, "passkeys.json")
	z.Registry, err = passkeys.Open(z.PasskeysPath)
	must(err)
	adm := admit.New(o.Replay, o.Limiter)
	pc := passkeys.Config{Mode: o.RevealApproval, Registry: z.Registry, Nonces: o.Nonces, Verifier: rp, Audit: z.Audit, Log: o.Log, Admit: adm}
	if o.ChallengeLimit != (ratelimit.Limit{}) {
		pc.Limiter, pc.ChallengeLimit = o.Limiter, o.ChallengeLimit
	}
	z.Passkeys, err = passkeys.New(pc)
	must(err)
	var unwrapAudit unwrap.Auditor = z.Audit
	if o.Audit != nil {
		unwrapAudit = o.Audit(z.Audit)
	}
	z.Service = unwrap.New(z.Holder, unwrapAudit, o.Limiter, o.Log, unwrap.Config{Limits: limits, Guard: unwrap.Guard{Counter: o.Guard}, BindLegacy: o.BindLegacy, Approver: z.Passkeys, Admit: adm})
	if o.Destinations == nil {
		o.Destinations = destinations.New(dir)
	}
	if o.Sender == nil {
		o.Sender = forward.NewSender()
	}
	if o.Idempotency == nil {
		o.Idempotency = forward.NewMemory(0, nil)
	}
	fl := forward.DefaultLimits()
	if o.ForwardLimits != nil {
		o.ForwardLimits(&fl)
	}
	z.Forward, err = forward.New(forward.Config{
		Destinations: o.Destinations, Opener: z.Service, Sender: o.Sender, Audit: z.Audit,
		Limiter: o.Limiter, Limits: fl, Idempotency: o.Idempotency, Log: o.Log, PollInterval: 10 * time.Millisecond,
	})
	must(err)
	verifier := &sigauth.Verifier{Audience: Audience, Origins: []string{PublicURL}, Clients: z.Clients, Replay: o.Replay}
	z.Server = api.New(api.Deps{
		Unwrap: z.Service, Forward: z.Forward, Passkeys: z.Passkeys, Verifier: verifier,
		Seal: z.Holder, Audit: z.Audit, Unseal: seal.NewCeremony(z.Holder, z.Audit, ratelimit.NewMemory(), seal.DefaultCeremonyLimits(), o.Log),
		Trail: audit.FileTrail(z.AuditPath), Redis: o.Redis, Log: o.Log,
	})
	if o.Listen {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		must(err)
		z.URL = "http://" + ln.Addr().String()
		verifier.Origins = append(verifier.Origins, z.URL) // before the first request
		go func() { _ = z.Server.App().Listener(ln) }()
		t.Cleanup(func() { _ = z.Server.App().Shutdown() })
	}
	return z
}

// Signer is the signer of the client named id in Options.Clients.
func (z *Zone) Signer(t testing.TB, id string) *client.Signer {
	t.Helper()
	s, ok := z.signers[id]
	if !ok {
		t.Fatalf("kstest: no client %q in Options.Clients", id)
	}
	return s
}

// Client is a signing HTTP client of the zone for the client named id; the
// zone must listen (Options.Listen).
func (z *Zone) Client(t testing.TB, id string) *client.Client {
	t.Helper()
	if z.URL == "" {
		t.Fatal("kstest: Client needs Options.Listen")
	}
	return client.New(z.URL, z.Signer(t, id), client.HTTPClient(false))
}

// Encrypt makes the compact JWE the checkout page would send: plaintext (a
// Contract 1 card or CVC JSON) to the newest key, bound to session. The
// card's number joins those the zone's logs are checked for.
func (z *Zone) Encrypt(t testing.TB, plaintext, session string) string {
	t.Helper()
	var c struct {
		PAN string `json:"pan"`
	}
	if json.Unmarshal([]byte(plaintext), &c) == nil {
		z.Logs.Watch(c.PAN)
	}
	pub := z.Keyring.PublicKeys()[0]
	out, err := jose.Encrypt([]byte(plaintext), pub.Key, pub.Kid, map[string]string{jose.HeaderSessionID: session})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// Events reads the zone's audit trail, newest first.
func (z *Zone) Events(t testing.TB, f audit.Filter) []audit.Event {
	t.Helper()
	evs, _, err := audit.FileTrail(z.AuditPath).Query(context.Background(), f)
	if err != nil {
		t.Fatalf("key service audit: %v", err)
	}
	return evs
}

var _ api.AuditReader = audit.FileTrail("")

// SetRP makes the zone check passkeys for rp from now on: a test whose back
// office listens on a port chosen after the zone started.
func (z *Zone) SetRP(t testing.TB, rp passkey.RP) {
	t.Helper()
	v, err := passkey.New(rp)
	if err != nil {
		t.Fatal(err)
	}
	z.Passkeys.SetVerifier(v)
	z.rp = rp
}

// NewAuthenticator is a software passkey for the zone's relying party (its
// first origin), as the operator's device would be.
func NewAuthenticator(t testing.TB, rp passkey.RP) *passkeytest.Authenticator {
	t.Helper()
	if rp.ID == "" {
		rp = passkey.RP{ID: RPID, Origins: []string{RPOrigin}}
	}
	a, err := passkeytest.New(rp.ID, rp.Origins[0])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// RegisterPasskey registers a (software) passkey for actor the way the
// gateway forwards one: a registration nonce for client, the authenticator's
// answer over wire.EnrolChallenge, POST /v1/passkeys's domain call. It
// stays pending; it returns the credential id.
func (z *Zone) RegisterPasskey(t testing.TB, client, actor string, a *passkeytest.Authenticator) string {
	t.Helper()
	ctx := context.Background()
	ch, err := z.Passkeys.PasskeyChallenge(ctx, client, actor)
	if err != nil {
		t.Fatalf("kstest: passkey challenge: %v", err)
	}
	att, err := a.Create(wire.EnrolChallenge(ch.Nonce, actor), wire.UserHandle(actor))
	if err != nil {
		t.Fatal(err)
	}
	out, err := z.Passkeys.Register(ctx, client, "127.0.0.1", wire.PasskeyRegisterRequest{Actor: actor, Username: actor, Nonce: ch.Nonce, Attestation: att})
	if err != nil {
		t.Fatalf("kstest: register passkey: %v", err)
	}
	return out.Credential
}

// ApprovePasskey approves a pending passkey (credential id or fingerprint)
// as `keyservice passkeys approve` does in the key zone.
func (z *Zone) ApprovePasskey(t testing.TB, ref string) {
	t.Helper()
	if _, err := z.Registry.Approve(ref, "kstest-admin", time.Now()); err != nil {
		t.Fatalf("kstest: approve passkey %s: %v", ref, err)
	}
}

// ApprovePending approves every pending passkey of actor (one the
// gateway's back office enrolled through its page) and returns their ids.
func (z *Zone) ApprovePending(t testing.TB, actor string) []string {
	t.Helper()
	if _, err := z.Registry.ReloadIfChanged(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range z.Registry.List(actor) {
		if e.Status == wire.PasskeyPending {
			z.ApprovePasskey(t, e.ID())
			ids = append(ids, e.ID())
		}
	}
	return ids
}

// EnrolPasskey registers a new software passkey for actor (via client)
// and approves it: an operator ready to approve reveals. The authenticator
// answers for the zone's relying party in force (Options.RP).
func (z *Zone) EnrolPasskey(t testing.TB, client, actor string) *passkeytest.Authenticator {
	t.Helper()
	a := NewAuthenticator(t, z.rp)
	z.ApprovePasskey(t, z.RegisterPasskey(t, client, actor, a))
	return a
}

// BrowserKey is the key pair the reveal page makes with WebCrypto: the
// public JWK for the request, the private key to open the answer.
func BrowserKey(t testing.TB) (wire.BrowserKey, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return wire.BrowserKey{Kty: "EC", Crv: "P-256", X: base64.RawURLEncoding.EncodeToString(pt[1:33]), Y: base64.RawURLEncoding.EncodeToString(pt[33:])}, k
}

// Assertion is the authenticator's approval of one reveal: its assertion
// over wire.RevealChallenge(nonce, token, reason, thumbprint of key).
func Assertion(t testing.TB, a *passkeytest.Authenticator, nonce, token, reason string, key wire.BrowserKey) json.RawMessage {
	t.Helper()
	jkt, err := wire.JWKThumbprint(key)
	if err != nil {
		t.Fatal(err)
	}
	as, err := a.Get(wire.RevealChallenge(nonce, token, reason, jkt))
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// Card is a revealed card as the reveal page reads it from the answer.
type Card struct {
	PAN      string `json:"pan"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	Name     string `json:"name,omitempty"`
}

// OpenReveal opens a reveal answer with the browser's private key and
// checks what the page checks: the header binds token and nonce, and names
// the card content type.
func OpenReveal(t testing.TB, answer string, priv *ecdsa.PrivateKey, token, nonce string) Card {
	t.Helper()
	hdr, pt, err := jose.DecryptDirect([]byte(answer), priv)
	if err != nil {
		t.Fatalf("kstest: the reveal answer does not open with the browser key: %v", err)
	}
	if hdr[wire.HeaderToken] != token || hdr[wire.HeaderNonce] != nonce || hdr["cty"] != wire.CardContentType {
		t.Fatalf("kstest: reveal answer header %v, want token %s nonce %s", hdr, token, nonce)
	}
	var c Card
	if err := json.Unmarshal(pt, &c); err != nil {
		t.Fatalf("kstest: reveal answer payload: %v", err)
	}
	return c
}

// Reveal runs a whole approved reveal over HTTP as the back office and the
// operator's browser do together: a nonce for (actor, token), a browser
// key, the passkey's assertion (a nil authenticator sends none), the
// reveal, and the answer opened. req needs JWE, Actor, Reason and Token.
func Reveal(t testing.TB, c *client.Client, a *passkeytest.Authenticator, req wire.RevealRequest) (Card, error) {
	t.Helper()
	ctx := context.Background()
	ch, err := c.RevealChallenge(ctx, wire.RevealChallengeRequest{Actor: req.Actor, Token: req.Token})
	if err != nil {
		return Card{}, err
	}
	key, priv := BrowserKey(t)
	req.BrowserKey, req.Nonce = key, ch.Nonce
	if a != nil {
		req.Assertion = Assertion(t, a, ch.Nonce, req.Token, req.Reason, key)
	}
	out, err := c.Reveal(ctx, req)
	if err != nil {
		return Card{}, err
	}
	return OpenReveal(t, out.JWE, priv, req.Token, ch.Nonce), nil
}
