package e2e

import (
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
)

// boClient is an operator's back-office session driven over plain HTTP
// (forms, cookies, redirects), for scenarios where the browser adds nothing
// but time: rotation and restarts reveal through it. TestBackOffice drives
// the same pages in Chromium.
type boClient struct {
	base string
	op   operatorAccount
	hc   *http.Client
}

var (
	reCSRF     = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	reSecret   = regexp.MustCompile(`id="bo-totp-secret">([A-Z2-7 ]+)<`)
	reKid      = regexp.MustCompile(`<dt>Key version</dt><dd><code>([^<]+)</code>`)
	rePAN      = regexp.MustCompile(`id="bo-pan"[^>]*>([0-9 ]+)<`)
	reBoStatus = regexp.MustCompile(`data-status="(\d+)"`)
)

// boLogin logs the operator in for the first time over HTTP: password, then
// TOTP enrolment with the secret from the enrolment page, as an
// authenticator app would. The session is then fresh enough to reveal for
// five minutes.
func (s *stack) boLogin(t *testing.T, username string) *boClient {
	t.Helper()
	op, ok := s.Operators[username]
	if !ok {
		t.Fatalf("no operator %q in the stack", username)
	}
	jar, _ := cookiejar.New(nil)
	b := &boClient{base: s.GatewayURL, op: op, hc: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
	_, page := b.get(t, "/backoffice/login")
	st, page, final := b.post(t, "/backoffice/login", url.Values{
		"csrf": {firstMatch(t, page, reCSRF.String())}, "username": {op.Username}, "password": {op.Password}, "code": {""},
	})
	if st != http.StatusOK || !strings.HasSuffix(final, "/backoffice/enroll") {
		t.Fatalf("first login: %d at %s, want the TOTP enrolment page\n%s", st, final, tail([]byte(page), 1500))
	}
	secret := strings.ReplaceAll(firstMatch(t, page, reSecret.String()), " ", "")
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st, page, final = b.post(t, "/backoffice/enroll", url.Values{"csrf": {firstMatch(t, page, reCSRF.String())}, "code": {code}})
	if st != http.StatusOK || !strings.HasSuffix(final, "/backoffice/tokens") {
		t.Fatalf("TOTP enrolment: %d at %s\n%s", st, final, tail([]byte(page), 1500))
	}
	return b
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

// reveal asks for a token's card number with a reason. It returns the HTTP
// status and, on success, the number without spaces.
func (b *boClient) reveal(t *testing.T, id, reason string) (int, string) {
	t.Helper()
	st, page := b.get(t, "/backoffice/tokens/"+id)
	if st != http.StatusOK {
		t.Fatalf("token page %s: %d", id, st)
	}
	st, page, _ = b.post(t, "/backoffice/tokens/"+id+"/reveal", url.Values{
		"csrf": {firstMatch(t, page, reCSRF.String())}, "reason": {reason},
	})
	if st != http.StatusOK {
		return st, ""
	}
	m := rePAN.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("reveal %s: 200 without a number\n%s", id, tail([]byte(page), 1500))
	}
	return st, strings.ReplaceAll(m[1], " ", "")
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
