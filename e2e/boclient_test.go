package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	tcexec "github.com/testcontainers/testcontainers-go/exec"

	"github.com/blindgate/blindgate/internal/passkey/passkeytest"
	"github.com/blindgate/blindgate/keyservice/kstest"
)

// boClient is an operator's back-office session driven over plain HTTP
// (forms, cookies, redirects, and the JSON calls of the pages' script), for
// scenarios where the browser adds nothing but time: rotation and restarts
// reveal through it, with a software passkey standing in for the operator's
// device and the card opened with a Go-side browser key, as the page would.
// TestBackOffice drives the same pages in Chromium.
type boClient struct {
	base    string
	op      operatorAccount
	hc      *http.Client
	secret  string // TOTP
	passkey *passkeytest.Authenticator
}

var (
	reCSRF   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	reSecret = regexp.MustCompile(`id="bo-totp-secret" data-secret="([A-Z2-7]+)"`)
	reKid    = regexp.MustCompile(`<dt>Key version</dt><dd><code>([^<]+)</code>`)
)

// boLogin logs the operator in for the first time over HTTP: password, then
// TOTP enrolment with the secret from the enrolment page, as an
// authenticator app would; then it enrols a (software) passkey through the
// passkeys page's calls and has it approved in the key zone
// (s.approvePasskey). The session is then fresh enough to reveal for five
// minutes.
func (s *stack) boLogin(t *testing.T, username string) *boClient {
	t.Helper()
	op, ok := s.Operators[username]
	if !ok {
		t.Fatalf("no operator %q in the stack", username)
	}
	jar, _ := cookiejar.New(nil)
	b := &boClient{base: s.BackofficeURL, op: op, hc: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
	_, page := b.get(t, "/backoffice/login")
	st, page, final := b.post(t, "/backoffice/login", url.Values{
		"csrf": {firstMatch(t, page, reCSRF.String())}, "username": {op.Username}, "password": {op.Password}, "code": {""},
	})
	if st != http.StatusOK || !strings.HasSuffix(final, "/backoffice/enroll") {
		t.Fatalf("first login: %d at %s, want the TOTP enrolment page\n%s", st, final, tail([]byte(page), 1500))
	}
	b.secret = strings.ReplaceAll(firstMatch(t, page, reSecret.String()), " ", "")
	st, page, final = b.post(t, "/backoffice/enroll", url.Values{"csrf": {firstMatch(t, page, reCSRF.String())}, "code": {b.code(t, 0)}})
	if st != http.StatusOK || !strings.HasSuffix(final, "/backoffice/tokens") {
		t.Fatalf("TOTP enrolment: %d at %s\n%s", st, final, tail([]byte(page), 1500))
	}
	fp := b.enrolPasskey(t)
	s.approvePasskey(t, fp)
	return b
}

// code is the TOTP code steps periods of 30 s from now (the server accepts
// the step before and after its own, and each step once).
func (b *boClient) code(t *testing.T, steps int) string {
	t.Helper()
	c, err := totp.GenerateCode(b.secret, time.Now().Add(time.Duration(steps)*30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolPasskey registers a new software passkey for the operator (password
// and the next TOTP step) and returns its fingerprint; it is pending at the
// key service until approved.
func (b *boClient) enrolPasskey(t *testing.T) string {
	t.Helper()
	csrf := b.csrf(t, "/backoffice/passkeys")
	st, body := b.postJSON(t, "/backoffice/passkeys/challenge", csrf, map[string]any{})
	var ch struct {
		Nonce, Challenge string
		RP               struct{ ID string }
		User             struct{ ID string }
	}
	if err := json.Unmarshal([]byte(body), &ch); st != http.StatusOK || err != nil {
		t.Fatalf("passkey challenge: %d %s", st, body)
	}
	a, err := passkeytest.New(ch.RP.ID, b.base)
	if err != nil {
		t.Fatal(err)
	}
	challenge, _ := base64.RawURLEncoding.DecodeString(ch.Challenge)
	handle, _ := base64.RawURLEncoding.DecodeString(ch.User.ID)
	att, err := a.Create(challenge, handle)
	if err != nil {
		t.Fatal(err)
	}
	st, body = b.postJSON(t, "/backoffice/passkeys", csrf, map[string]any{
		"nonce": ch.Nonce, "attestation": json.RawMessage(att), "password": b.op.Password, "code": b.code(t, 1),
	})
	var res struct{ Fingerprint, Status string }
	if err := json.Unmarshal([]byte(body), &res); st != http.StatusCreated || err != nil || res.Status != "pending" {
		t.Fatalf("passkey enrolment: %d %s", st, body)
	}
	b.passkey = a
	return res.Fingerprint
}

// approvePasskey runs `keyservice passkeys approve <fingerprint>` in the key
// service's own container (docker exec of its binary: the image has no
// shell), as a key-zone admin does after comparing the fingerprint.
func (s *stack) approvePasskey(t *testing.T, fingerprint string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, r, err := s.KeyService.Exec(ctx, []string{"/usr/local/bin/keyservice", "passkeys", "approve", fingerprint}, tcexec.Multiplexed())
	var out []byte
	if r != nil {
		out, _ = io.ReadAll(r)
	}
	if err != nil || code != 0 {
		t.Fatalf("docker exec keyservice passkeys approve %s: exit %d, %v\n%s", fingerprint, code, err, tail(out, 2000))
	}
	return string(out)
}

// tokenKid reads the KEK version of a token from its back-office page.
func (b *boClient) tokenKid(t *testing.T, id string) string {
	t.Helper()
	st, page := b.get(t, "/backoffice/tokens/"+id)
	if st != http.StatusOK {
		t.Fatalf("token page %s: %d", id, st)
	}
	return html.UnescapeString(firstMatch(t, page, reKid.String()))
}

// reveal asks for a token's card with a reason, as the token page's script
// does: a browser key, the challenge, the passkey's assertion over this
// reveal, the reveal; then it opens the JWE with the browser key and checks
// its token and nonce. It returns the last HTTP status and, on success, the
// number. The gateway's answers must hold no digits of it.
func (b *boClient) reveal(t *testing.T, id, reason string) (int, string) {
	t.Helper()
	csrf := b.csrf(t, "/backoffice/tokens/"+id)
	key, priv := kstest.BrowserKey(t)
	st, body := b.postJSON(t, "/backoffice/tokens/"+id+"/reveal/challenge", csrf, map[string]any{"reason": reason, "browser_key": key})
	if st != http.StatusOK {
		return st, ""
	}
	var ch struct{ Nonce string }
	if err := json.Unmarshal([]byte(body), &ch); err != nil {
		t.Fatal(err)
	}
	st, body = b.postJSON(t, "/backoffice/tokens/"+id+"/reveal", csrf, map[string]any{
		"reason": reason, "browser_key": key, "nonce": ch.Nonce, "assertion": kstest.Assertion(t, b.passkey, ch.Nonce, id, reason, key),
	})
	if st != http.StatusOK {
		return st, ""
	}
	var ans struct{ JWE string }
	if err := json.Unmarshal([]byte(body), &ans); err != nil || ans.JWE == "" {
		t.Fatalf("reveal %s: 200 without a JWE\n%s", id, tail([]byte(body), 1500))
	}
	card := kstest.OpenReveal(t, ans.JWE, priv, id, ch.Nonce)
	if strings.Contains(body, card.PAN) || strings.Contains(body, card.PAN[6:12]) {
		t.Fatalf("the gateway's reveal answer holds the card number")
	}
	return st, card.PAN
}

// csrf reads the session's CSRF token from a signed-in page.
func (b *boClient) csrf(t *testing.T, path string) string {
	t.Helper()
	st, page := b.get(t, path)
	if st != http.StatusOK {
		t.Fatalf("%s: %d", path, st)
	}
	return firstMatch(t, page, reCSRF.String())
}

func (b *boClient) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := b.hc.Get(b.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body)
}

// post submits a form and follows redirects; it returns the final status,
// page and path.
func (b *boClient) post(t *testing.T, path string, form url.Values) (int, string, string) {
	t.Helper()
	resp, err := b.hc.PostForm(b.base+path, form)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), resp.Request.URL.Path
}

// postJSON is one of the pages' script calls: JSON, CSRF in X-CSRF-Token.
func (b *boClient) postJSON(t *testing.T, path, csrf string, v any) (int, string) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, b.base+path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body)
}
