package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/deploy/images"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// The gateway inside its container, and where its signing keys are put.
const (
	gwPort   = "8080/tcp"
	gwKeyDir = "/run/blindgate"
)

// operatorSpec is a back-office operator the stack creates with
// `blindgate operators add` (TOTP is enrolled at first login).
type operatorSpec struct{ Username, Role string }

// operatorAccount is a created operator and its one-time password output.
type operatorAccount struct{ ID, Username, Password, Role string }

type stackOptions struct {
	KeyServiceArgs  []string // extra `keyservice serve` flags
	KeyServiceBinds []string // host:container bind mounts for the key service
	GatewayArgs     []string // extra gateway flags
	Operators       []operatorSpec
	// Forward enrolls the gateway's forward identity (op forward) and has
	// the key service send forwards through the egress proxy at
	// http://egress:3128 (newForwardPath starts it).
	Forward bool
	// Redis starts the key zone's Redis (nil: one node); KeyServices and
	// Gateways are replica counts (0 or 1: one). Every gateway lists every
	// key service in -keyservice-url and shares one -login-name-key.
	Redis       redisTopology
	KeyServices int
	Gateways    int
}

// stack is the whole product as it runs in production: the key zone (Redis
// with AOF and the key service on an internal network), the gateway in both
// zones with the only published port, the gateway's two signed identities
// enrolled in the key service (checkout: inspect+rewrap; back office:
// reveal+audit), one merchant and its page on another origin (served by
// this process), and operators, all created with the admin image as an
// operator would.
type stack struct {
	*topology
	GatewayURL string // http://127.0.0.1:<port>, a secure context
	// BackofficeURL is the same listener at http://localhost:<port>: the
	// back office's origin, whose host is the passkeys' relying party id
	// (WebAuthn has none for an IP address).
	BackofficeURL string
	Page          *merchantPage
	MerchantID    string
	SecretKey     string // the merchant's secret API key (sk_...)
	Operators     map[string]operatorAccount

	adminImage string
	hc         *http.Client
	// gateways are every gateway replica (the first is Gateway, GatewayURL).
	gateways []gatewayReplica
}

// gatewayReplica is one running gateway and its URL.
type gatewayReplica struct {
	C   testcontainers.Container
	URL string
	BO  string // its back office, http://localhost:<port>
}

func newStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	start := time.Now()
	// All at once: the builds run concurrently, once per run.
	refs := needImages(t, images.KeyService, images.Redis, images.Gateway, images.Admin)
	clients := []clientSpec{
		{ID: "gateway", Ops: []string{wire.OpInspect, wire.OpRewrap}},
		{ID: "backoffice", Ops: []string{wire.OpReveal, wire.OpAudit}},
	}
	// Each gateway's port, chosen first: its back office is at
	// http://localhost:<port> (WebAuthn has no relying party for an IP
	// address), and the key service approves reveals for all of them.
	ports := make([]int, max(1, opts.Gateways))
	origins := make([]string, len(ports))
	for i := range ports {
		ports[i] = testenv.FreePort(t)
		origins[i] = fmt.Sprintf("http://localhost:%d", ports[i])
	}
	ksArgs := append([]string{"-webauthn-origins", strings.Join(origins, ",")}, opts.KeyServiceArgs...)
	if opts.Forward {
		clients = append(clients, clientSpec{ID: "forward", Ops: []string{wire.OpForward}})
		ksArgs = append(slices.Clone(ksArgs), "-egress-proxy", "http://"+egressAlias+":3128")
	}
	tp := newTopology(t, zoneOptions{Clients: clients, ServeArgs: ksArgs, Binds: opts.KeyServiceBinds, Redis: opts.Redis, KeyServices: opts.KeyServices})
	s := &stack{
		topology: tp, Page: newMerchantPage(t), Operators: map[string]operatorAccount{},
		adminImage: refs[images.Admin], hc: &http.Client{Timeout: 15 * time.Second},
	}
	// Fresh readers for each gateway: a container consumes its files.
	keyFiles := func() []testcontainers.ContainerFile {
		files := []testcontainers.ContainerFile{
			tp.signingKeyFile(t, "gateway", gwKeyDir+"/gateway.jwk"),
			tp.signingKeyFile(t, "backoffice", gwKeyDir+"/backoffice.jwk"),
		}
		if opts.Forward {
			files = append(files, tp.signingKeyFile(t, "forward", gwKeyDir+"/forward.jwk"))
		}
		return files
	}
	var env map[string]string
	var shared []string
	if opts.Gateways > 1 {
		// Replicas hash unknown login names with one key, so a lockout
		// holds on every one of them.
		var key [32]byte
		_, _ = rand.Read(key[:])
		env = map[string]string{"BLINDGATE_E2E_LOGIN_NAME_KEY": hex.EncodeToString(key[:])}
		shared = []string{"-login-name-key", "env:BLINDGATE_E2E_LOGIN_NAME_KEY"}
	}
	for n := 1; n <= len(ports); n++ {
		port := ports[n-1]
		want := fmt.Sprintf("http://127.0.0.1:%d", port)
		args := append(append(append([]string{
			"-addr", "0.0.0.0:8080", "-public-url", want, "-backoffice-url", origins[n-1], "-store", "redis",
			"-keyservice-url", strings.Join(ksURLs(opts.KeyServices), ","), "-keyservice-audience", ksAudience,
			"-checkout-client-id", "gateway", "-checkout-key", gwKeyDir + "/gateway.jwk",
			"-backoffice-client-id", "backoffice", "-backoffice-key", gwKeyDir + "/backoffice.jwk",
			"-audit-log", gwAuditLog,
		}, tp.RedisDeploy.Flags()...), shared...), opts.GatewayArgs...)
		if opts.Forward {
			args = append(args, "-forward-client-id", "forward", "-forward-key", gwKeyDir+"/forward.jwk")
		}
		role := gwAlias
		if n > 1 {
			role = gwAlias + "-" + strconv.Itoa(n)
		}
		c, url := tp.runGateway(t, gatewaySpec{
			Args: args, Env: env, Port: gwPort, HostPort: port, Ready: "/readyz", Files: keyFiles(), Role: role,
		})
		if url != want {
			t.Fatalf("%s published at %s, want %s", role, url, want)
		}
		s.gateways = append(s.gateways, gatewayReplica{C: c, URL: url, BO: origins[n-1]})
	}
	tp.Gateway, s.GatewayURL, s.BackofficeURL = s.gateways[0].C, s.gateways[0].URL, origins[0]
	s.Page.setGateway(s.GatewayURL, s.embedSRI(t))

	out := s.admin(t, "merchants", "add", "-name", "E2E Shop", "-origin", s.Page.Origin)
	s.MerchantID = firstMatch(t, out, `merchant (m_[A-Za-z0-9]+)`)
	s.SecretKey = firstMatch(t, out, `(?m)^\s+(sk_\S+)\s*$`)
	for _, o := range opts.Operators {
		out := s.admin(t, "operators", "add", "-username", o.Username, "-role", o.Role)
		s.Operators[o.Username] = operatorAccount{
			ID:       firstMatch(t, out, `\((op_[A-Za-z0-9]+)\)`),
			Username: o.Username, Role: o.Role,
			Password: firstMatch(t, out, `(?m)password \(shown once\):\s*\n\s+(\S+)`),
		}
	}
	t.Logf("stack up in %s: gateway %s, merchant page %s", time.Since(start).Round(100*time.Millisecond), s.GatewayURL, s.Page.Origin)
	return s
}

// via is the stack as seen through gateway replica i: the same zone,
// merchant, page and operators, another gateway.
func (s *stack) via(i int) *stack {
	v := *s
	tp := *s.topology
	tp.Gateway = s.gateways[i].C
	v.topology, v.GatewayURL, v.BackofficeURL = &tp, s.gateways[i].URL, s.gateways[i].BO
	return &v
}

// admin runs `blindgate <args...>` in a one-shot admin container on the key
// zone, with the gateway's store settings: how an operator administers the
// gateway's Redis, which no host port exposes.
func (s *stack) admin(t *testing.T, args ...string) string {
	t.Helper()
	return s.adminWith(t, nil, args...)
}

// adminWith is admin with files copied into the container first.
func (s *stack) adminWith(t *testing.T, files []testcontainers.ContainerFile, args ...string) string {
	t.Helper()
	req := testcontainers.ContainerRequest{
		Image: s.adminImage,
		Cmd:   args,
		Files: files,
		Env:   s.RedisDeploy.AdminEnv(),
	}
	onNetworks(&req, "", s.Net)
	code, out := runOnce(t, "admin-"+args[0], req)
	if code != 0 {
		t.Fatalf("blindgate %s: exit %d\n%s", strings.Join(args, " "), code, tail([]byte(out), 4000))
	}
	return out
}

// ksAdmin runs `keyservice <args...>` beside the key service (its volume, no
// network), failing t on a non-zero exit.
func (s *stack) ksAdmin(t *testing.T, args ...string) string {
	t.Helper()
	return s.keyZone.admin(t, nil, args...)
}

// embedSRI is the Subresource Integrity value of the gateway's /embed.js as
// the gateway serves it. It must equal the hash of this source tree's copy:
// the image serves the script the merchant pinned.
func (s *stack) embedSRI(t *testing.T) string {
	t.Helper()
	st, body := get(t, s.GatewayURL+"/embed.js")
	if st != http.StatusOK {
		t.Fatalf("GET /embed.js: %d", st)
	}
	sum := sha512.Sum384(body)
	sri := "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
	assets, err := checkout.NewAssets()
	if err != nil {
		t.Fatal(err)
	}
	if want := assets.SRI(checkout.ScriptEmbed); sri != want {
		t.Errorf("the gateway image serves an embed.js with SRI %s, the source tree's is %s (stale image?)", sri, want)
	}
	return sri
}

// ---- merchant API ----

// tokenView is the masked card of the merchant API (Contract 4).
type tokenView struct {
	ID          string    `json:"id"`
	Brand       string    `json:"brand"`
	BIN         string    `json:"bin"`
	Last4       string    `json:"last4"`
	ExpMonth    int       `json:"exp_month"`
	ExpYear     int       `json:"exp_year"`
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
}

// apiError is a non-2xx answer: its status and error code.
type apiError struct {
	Status int
	Code   string
	Body   string // the start of a body that is not an error object, to diagnose
}

func (e *apiError) Error() string {
	if e.Code == "" && e.Body != "" {
		return fmt.Sprintf("HTTP %d (no error code; body %q)", e.Status, e.Body)
	}
	return fmt.Sprintf("HTTP %d %s", e.Status, e.Code)
}

// do sends a JSON request to the gateway (with the merchant's key when
// merchant is set) and decodes a 2xx answer into out.
func (s *stack) do(ctx context.Context, merchant bool, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.GatewayURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if merchant {
		req.Header.Set("Authorization", "Bearer "+s.SecretKey)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	return readAnswer(resp, out, method, path)
}

// readAnswer reads a gateway's answer into out, or returns its error as
// *apiError.
func readAnswer(resp *http.Response, out any, method, path string) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		var eb wire.ErrorBody
		_ = json.Unmarshal(b, &eb)
		ae := &apiError{Status: resp.StatusCode, Code: eb.Error.Code}
		if ae.Code == "" {
			ae.Body = string(b[:min(len(b), 200)])
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// fromGateway reports whether an error answer came from a gateway (it
// carries an error object). This machine's network answers for a port
// nobody listens on with a page of its own: that counts as no answer.
func fromGateway(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Code != ""
}

// createSession is the merchant's POST /v1/checkout/sessions for its page.
func (s *stack) createSession(ctx context.Context) (string, error) {
	var out struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	}
	err := s.do(ctx, true, http.MethodPost, "/v1/checkout/sessions", map[string]any{
		"allowed_origins": []string{s.Page.Origin}, "locale": "en", "max_attempts": 20,
	}, &out)
	if err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	if !strings.HasPrefix(out.ID, "cs_") || out.URL != s.GatewayURL+"/checkout/"+out.ID {
		return "", fmt.Errorf("create session: id %q url %q", out.ID, out.URL)
	}
	return out.ID, nil
}

func (s *stack) mustSession(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	id, err := s.createSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// token is the merchant API's GET /v1/tokens/{id}.
func (s *stack) token(t *testing.T, id string) tokenView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var v tokenView
	if err := s.do(ctx, true, http.MethodGet, "/v1/tokens/"+id, nil, &v); err != nil {
		t.Fatalf("GET /v1/tokens/%s: %v", id, err)
	}
	return v
}

// tokens lists every token of the merchant, following the cursor.
func (s *stack) tokens(t *testing.T) []tokenView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var all []tokenView
	cursor := ""
	for range 100 {
		var page struct {
			Data       []tokenView `json:"data"`
			NextCursor string      `json:"next_cursor"`
		}
		path := "/v1/tokens?limit=100"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if err := s.do(ctx, true, http.MethodGet, path, nil, &page); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		all = append(all, page.Data...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
	t.Fatal("token list does not end")
	return nil
}

// ---- paying without a browser ----

// testCard is a test card number and what the merchant API must show for it.
type testCard struct {
	Brand, PAN, BIN, Last4 string
}

// The brand test cards of the issue; BIN is the first 6 digits for every
// length (the key service's default truncation; -mask-bin8 is opt-in).
var brandCards = []testCard{
	{"visa", "4242424242424242", "424242", "4242"},
	{"mastercard", "5555555555554444", "555555", "4444"},
	{"amex", "378282246310005", "378282", "0005"},
	{"discover", "6011111111111117", "601111", "1117"},
	{"diners", "36227206271667", "362272", "1667"},
	{"jcb", "3566002020360505", "356600", "0505"},
	{"unionpay", "6200000000000005", "620000", "0005"},
	{"maestro", "6759649826438453", "675964", "8453"},
}

func expYear() int { return time.Now().Year() + 3 }

// payment is what a direct (scripted) payment produced.
type payment struct {
	Session, Token string
	Kid            string // the KEK version the card was encrypted to
	Card           testCard
	At             time.Time // when the answer came (traffic only)
}

// pay does in Go what the checkout page does in the browser, over the same
// public endpoints: create a session (as the merchant), fetch the public
// KEKs from /v1/keys, encrypt the card as a compact JWE bound to the session
// and submit it. Used for traffic and setup; the browser path is proven by
// TestCheckoutEveryBrand. Safe for concurrent use (no t).
func (s *stack) pay(ctx context.Context, c testCard) (payment, error) {
	sid, err := s.createSession(ctx)
	if err != nil {
		return payment{}, err
	}
	return s.payInto(ctx, sid, c)
}

func (s *stack) payInto(ctx context.Context, sid string, c testCard) (payment, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.GatewayURL+"/v1/keys", nil)
	if err != nil {
		return payment{Session: sid, Card: c}, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return payment{Session: sid, Card: c}, err
	}
	jwks, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return payment{Session: sid, Card: c}, &apiError{Status: resp.StatusCode, Code: "keys"}
	}
	keys, err := jose.ParseJWKS(jwks)
	if err != nil || len(keys) == 0 {
		return payment{Session: sid, Card: c}, fmt.Errorf("/v1/keys: %d keys, %v", len(keys), err)
	}
	return s.payWithKey(ctx, sid, c, keys[0])
}

// payWithKey encrypts c to key (a KEK the page would have got from
// /v1/keys) and submits it to session sid.
func (s *stack) payWithKey(ctx context.Context, sid string, c testCard, key jose.PublicKey) (payment, error) {
	p := payment{Session: sid, Card: c, Kid: key.Kid}
	pt, _ := json.Marshal(map[string]any{
		"pan": c.PAN, "exp_month": 12, "exp_year": expYear(), "name": "E2E Shopper", "iat": time.Now().Unix(),
	})
	jwe, err := jose.Encrypt(pt, key.Key, key.Kid, map[string]string{jose.HeaderSessionID: sid})
	if err != nil {
		return p, err
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := s.do(ctx, false, http.MethodPost, "/checkout/"+sid+"/submit", map[string]string{"card_jwe": string(jwe)}, &out); err != nil {
		return p, err
	}
	if !strings.HasPrefix(out.Token, "tok_") {
		return p, fmt.Errorf("submit answered token %q", out.Token)
	}
	p.Token = out.Token
	return p, nil
}

// publicKeys is the gateway's /v1/keys as the page gets it.
func (s *stack) publicKeys(t *testing.T) []jose.PublicKey {
	t.Helper()
	st, body := get(t, s.GatewayURL+"/v1/keys")
	if st != http.StatusOK {
		t.Fatalf("GET /v1/keys: %d %s", st, body)
	}
	keys, err := jose.ParseJWKS(body)
	if err != nil || len(keys) == 0 {
		t.Fatalf("/v1/keys: %d keys, %v", len(keys), err)
	}
	return keys
}

func (s *stack) mustPay(t *testing.T, c testCard) payment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := s.pay(ctx, c)
	if err != nil {
		t.Fatalf("pay with %s: %v", c.Brand, err)
	}
	return p
}

// traffic pays continuously in the background (one payment at a time, with
// a pause) until stopped, recording every outcome.
type traffic struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu     sync.Mutex
	ok     []payment
	failed []error
}

func (s *stack) startTraffic(card testCard, pause time.Duration) *traffic {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			p, err := s.pay(rctx, card)
			rcancel()
			if ctx.Err() != nil {
				return // stopped mid-payment: the outcome is not known
			}
			p.At = time.Now()
			tr.mu.Lock()
			if err != nil {
				tr.failed = append(tr.failed, err)
			} else {
				tr.ok = append(tr.ok, p)
			}
			tr.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
	}()
	return tr
}

// stop ends the traffic and waits for it.
func (tr *traffic) stop() {
	tr.once.Do(func() {
		tr.cancel()
		<-tr.done
	})
}

// waitOK waits until n payments succeeded after since, or fails t.
func (tr *traffic) waitOK(t *testing.T, n int, since time.Time, d time.Duration) {
	t.Helper()
	eventually(t, d, fmt.Sprintf("%d payments after %s", n, since.Format(time.TimeOnly)), func() (bool, string) {
		ok, failed := tr.results()
		c := 0
		for _, p := range ok {
			if p.At.After(since) {
				c++
			}
		}
		last := ""
		if len(failed) > 0 {
			last = failed[len(failed)-1].Error()
		}
		return c >= n, fmt.Sprintf("%d ok since, %d ok, %d failed (last: %s)", c, len(ok), len(failed), last)
	})
}

// results returns copies of the outcomes so far.
func (tr *traffic) results() (ok []payment, failed []error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]payment(nil), tr.ok...), append([]error(nil), tr.failed...)
}

// ---- helpers ----

func firstMatch(t *testing.T, s, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, tail([]byte(s), 2000))
	}
	return m[1]
}

func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

// isCode reports whether err is the gateway's answer with status and code.
func isCode(err error, status int, code string) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status && ae.Code == code
}
