package backofficehttp_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/wire"
)

const loginFailedText = "Invalid username, password or code."

func TestBackofficeLogin(t *testing.T) {
	f := newFixture(t, fixtureOpts{noKS: true})
	f.addOperator(t, "alice", operators.RoleViewer, "", true)

	tests := []struct {
		name       string
		user, pass string
		code       func() string
		noCSRF     bool
		badCSRF    bool
		crossSite  bool
		wantStatus int
		wantText   string
		wantAudit  string // gateway audit code of the failure
	}{
		{name: "303/ok", user: "alice", pass: testPassword, code: func() string { return f.code(t, "alice") }, wantStatus: 303},
		{name: "303/username-case-folded", user: " Alice ", pass: testPassword, code: func() string { return f.code(t, "alice") }, wantStatus: 303},
		{name: "401/wrong-password", user: "alice", pass: "not the password at all", code: func() string { return f.code(t, "alice") }, wantStatus: 401, wantText: loginFailedText, wantAudit: "bad_credentials"},
		{name: "401/unknown-user-same-message", user: "mallory", pass: testPassword, code: func() string { return "123456" }, wantStatus: 401, wantText: loginFailedText, wantAudit: "bad_credentials"},
		{name: "401/totp-required", user: "alice", pass: testPassword, code: func() string { return "" }, wantStatus: 401, wantText: loginFailedText, wantAudit: "bad_credentials"}, // no password oracle
		{name: "400/pan-as-username", user: "4242 4242 4242 4242", pass: testPassword, code: func() string { return "123456" }, wantStatus: 400, wantText: "pan_in_text"},           // refused unread: not audited, not counted
		{name: "401/wrong-totp", user: "alice", pass: testPassword, code: func() string { return "000000" }, wantStatus: 401, wantText: loginFailedText, wantAudit: "bad_credentials"},
		{name: "403/csrf-missing", user: "alice", pass: testPassword, code: func() string { return f.code(t, "alice") }, noCSRF: true, wantStatus: 403, wantText: "csrf_failed"},
		{name: "403/csrf-mismatch", user: "alice", pass: testPassword, code: func() string { return f.code(t, "alice") }, badCSRF: true, wantStatus: 403, wantText: "csrf_failed"},
		{name: "403/cross-site", user: "alice", pass: testPassword, code: func() string { return f.code(t, "alice") }, crossSite: true, wantStatus: 403, wantText: "csrf_failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Advance(31 * time.Second) // a fresh TOTP step for every case
			c := f.client()
			page := c.get(t, "/backoffice/login")
			tok := csrfOf(t, page.body)
			switch {
			case tc.noCSRF:
				tok = ""
			case tc.badCSRF:
				tok = strings.Repeat("A", 43)
			}
			if tc.crossSite {
				c.header["Sec-Fetch-Site"] = "cross-site"
			}
			before := len(f.gwEvents(t, audit.Filter{Event: audit.EventLogin}))
			r := c.post(t, "/backoffice/login", url.Values{"csrf": {tok}, "username": {tc.user}, "password": {tc.pass}, "code": {tc.code()}})
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d\n%.600s", r.status, tc.wantStatus, r.body)
			}
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") && r.status != 303 {
				t.Errorf("content type %q: back-office errors are HTML pages", r.header.Get("Content-Type"))
			}
			if tc.wantText != "" && !strings.Contains(r.body, tc.wantText) {
				t.Errorf("page lacks %q", tc.wantText)
			}
			evs := f.gwEvents(t, audit.Filter{Event: audit.EventLogin})
			switch {
			case tc.wantStatus == 303:
				if c.jar["bg_session"] == "" || r.header.Get("Location") != "/backoffice/tokens" {
					t.Errorf("no session cookie or wrong redirect %q", r.header.Get("Location"))
				}
				if evs[0].Outcome != audit.OutcomeSuccess || evs[0].Actor != f.operators["alice"].ID {
					t.Errorf("login not audited as success: %+v", evs[0])
				}
			case tc.wantAudit != "":
				if len(evs) != before+1 || evs[0].Outcome != audit.OutcomeFailure || evs[0].Code != tc.wantAudit {
					t.Errorf("failure not audited with code %s: %+v", tc.wantAudit, evs[0])
				}
				if c.jar["bg_session"] != "" {
					t.Error("a failed login got a session")
				}
			default:
				if len(evs) != before {
					t.Error("a CSRF refusal reached Authenticate")
				}
			}
		})
	}
}

// TestBackofficeLoginNameNotStored: a name that is no operator's (often a
// password typed in the wrong field) reaches the audit trail and the lockout
// store only as a keyed hash; a card number is refused before either.
func TestBackofficeLoginNameNotStored(t *testing.T) {
	f := newFixture(t, fixtureOpts{noKS: true})
	op := f.addOperator(t, "alice", operators.RoleViewer, "", true)
	c := f.client()
	typed := "Tr0ub4dor&3-Secret"
	if r := c.loginWith(t, typed, "whatever password", "123456"); r.status != 401 {
		t.Fatalf("unknown name: %d", r.status)
	}
	if r := c.loginWith(t, "ALICE", "wrong password here", "123456"); r.status != 401 {
		t.Fatalf("wrong password: %d", r.status)
	}
	if r := c.loginWith(t, "5555-5555-5555-4444", "whatever password", "123456"); r.status != 400 || !strings.Contains(r.body, "pan_in_text") {
		t.Fatalf("card number as name: %d", r.status)
	}
	raw, err := os.ReadFile(f.gwAudit)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{typed, strings.ToLower(typed), "5555-5555-5555-4444", "5555555555554444"} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("gateway audit holds %q", leak)
		}
	}
	evs := f.gwEvents(t, audit.Filter{Event: audit.EventLogin, Outcome: audit.OutcomeFailure})
	if len(evs) != 2 {
		t.Fatalf("%d failed logins audited, want 2", len(evs))
	}
	actors := map[string]bool{}
	for _, e := range evs {
		actors[e.Actor] = true
	}
	if !actors[op.ID] || !actors[f.ops.NameTag(strings.ToLower(typed))] && !actors[f.ops.NameTag(typed)] {
		t.Errorf("actors %v: want alice's id and the unknown name's tag", actors)
	}
}

func TestBackofficeCookies(t *testing.T) {
	for _, tc := range []struct {
		name, cookie string
		tls          bool
	}{
		{"plain-http", "bg_session", false},
		{"tls", "__Host-bg_session", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{noKS: true, tls: tc.tls})
			f.addOperator(t, "alice", operators.RoleViewer, "", true)
			c := f.client()
			page := c.get(t, "/backoffice/login")
			r := c.post(t, "/backoffice/login", url.Values{"csrf": {csrfOf(t, page.body)}, "username": {"alice"}, "password": {testPassword}, "code": {f.code(t, "alice")}})
			if r.status != 303 {
				t.Fatalf("login: %d", r.status)
			}
			var set string
			for _, v := range r.header.Values("Set-Cookie") {
				if strings.HasPrefix(v, tc.cookie+"=") {
					set = strings.ToLower(v)
				}
			}
			if set == "" {
				t.Fatalf("no %s cookie in %v", tc.cookie, r.header.Values("Set-Cookie"))
			}
			for _, want := range []string{"httponly", "samesite=strict", "path=/"} {
				if !strings.Contains(set, want) {
					t.Errorf("cookie lacks %s: %s", want, set)
				}
			}
			if strings.Contains(set, "secure") != tc.tls {
				t.Errorf("Secure flag = %v, want %v: %s", strings.Contains(set, "secure"), tc.tls, set)
			}
			if strings.Contains(set, "domain=") {
				t.Errorf("session cookie must be host-only: %s", set)
			}
		})
	}
}

func TestBackofficeLockout(t *testing.T) {
	for _, backend := range []string{"bolt", "redis"} {
		t.Run(backend, func(t *testing.T) {
			testLockout(t, fixtureOpts{noKS: true, limiter: noLimit{}, redis: backend == "redis"})
		})
	}
}

func testLockout(t *testing.T, o fixtureOpts) {
	f := newFixture(t, o)
	f.addOperator(t, "bob", operators.RoleViewer, "", true)

	lockText := "Too many failed attempts"
	for _, user := range []string{"bob", "nobody"} {
		t.Run("403/locked-after-10/"+user, func(t *testing.T) {
			c := f.client()
			for i := 1; i <= 10; i++ {
				r := c.loginWith(t, user, "wrong password number", "123456")
				want := http.StatusUnauthorized
				if i == 10 {
					want = http.StatusForbidden
				}
				if r.status != want {
					t.Fatalf("attempt %d: %d, want %d", i, r.status, want)
				}
				if i < 10 && !strings.Contains(r.body, loginFailedText) {
					t.Fatalf("attempt %d: not the generic failure message", i)
				}
				if i == 10 && !strings.Contains(r.body, lockText) {
					t.Fatalf("10th failure: no lockout message")
				}
			}
			// Even the right password (and code) is refused while locked.
			f.clock.Advance(31 * time.Second)
			code := "123456"
			if user == "bob" {
				code = f.code(t, "bob")
			}
			r := c.loginWith(t, user, testPassword, code)
			if r.status != http.StatusForbidden || !strings.Contains(r.body, lockText) {
				t.Fatalf("locked login: %d", r.status)
			}
			locks := f.gwEvents(t, audit.Filter{Event: audit.EventLogin, Outcome: audit.OutcomeDenied})
			if len(locks) == 0 || locks[0].Code != "locked" {
				t.Errorf("lockout not audited: %+v", locks)
			}
		})
	}
	t.Run("same-lock-page-for-known-and-unknown", func(t *testing.T) {
		c := f.client()
		a := c.loginWith(t, "bob", "x-wrong-password", "123456")
		b := c.loginWith(t, "nobody", "x-wrong-password", "123456")
		// Tokens and the minutes left differ by when each lock began; nothing else may.
		norm := regexp.MustCompile(`value="[^"]*"|\d+ minutes`)
		if a.status != b.status || norm.ReplaceAllString(a.body, "") != norm.ReplaceAllString(b.body, "") {
			t.Errorf("the lockout page differs between an existing and a missing user:\n%s\n----\n%s", a.body, b.body)
		}
	})
	t.Run("303/unlocked-after-30-minutes", func(t *testing.T) {
		f.clock.Advance(31 * time.Minute)
		f.client().login(t, "bob")
	})
}

func TestBackofficeLoginRateLimit(t *testing.T) {
	f := newFixture(t, fixtureOpts{noKS: true})
	c := f.client()
	var last response
	for i := 0; i < 21; i++ {
		// Different names, so no account lockout interferes.
		last = c.loginWith(t, "user"+string(rune('a'+i)), "some wrong password", "123456")
	}
	if last.status != http.StatusTooManyRequests || !strings.Contains(last.body, "Too many login attempts") || last.header.Get("Retry-After") == "" {
		t.Fatalf("21st attempt from one IP: %d", last.status)
	}
}

func TestBackofficeTOTPEnrolment(t *testing.T) {
	f := newFixture(t, fixtureOpts{noKS: true})
	op := f.addOperator(t, "carol", operators.RoleViewer, "", false)
	c := f.client()

	r := c.loginWith(t, "carol", testPassword, "")
	if r.status != 303 || r.header.Get("Location") != "/backoffice/enroll" {
		t.Fatalf("first login: %d %s", r.status, r.header.Get("Location"))
	}
	// Nothing but enrolment until a second factor exists.
	if r := c.get(t, "/backoffice/tokens"); r.status != 303 || r.header.Get("Location") != "/backoffice/enroll" {
		t.Fatalf("tokens before enrolment: %d %s", r.status, r.header.Get("Location"))
	}
	page := c.get(t, "/backoffice/enroll")
	if page.status != 200 || !strings.Contains(page.body, `src="data:image/png;base64,`) {
		t.Fatalf("enrol page: %d, no QR data URL\n%.500s", page.status, page.body)
	}
	m := regexp.MustCompile(`id="bo-totp-secret" data-secret="([A-Z2-7]+)"`).FindStringSubmatch(page.body)
	if m == nil {
		t.Fatal("enrol page shows no secret")
	}
	secret := strings.ReplaceAll(m[1], " ", "")
	// A reload shows the same pending secret (a scanned code stays valid).
	if again := c.get(t, "/backoffice/enroll"); !strings.Contains(again.body, m[1]) {
		t.Error("reloading the enrol page changed the secret")
	}
	tok := csrfOf(t, page.body)
	if r := c.post(t, "/backoffice/enroll", url.Values{"csrf": {tok}, "code": {"000000"}}); r.status != 401 {
		t.Fatalf("wrong code: %d", r.status)
	}
	if r := c.post(t, "/backoffice/enroll", url.Values{"code": {f.codeAt(t, secret, f.clock.Now())}}); r.status != 403 {
		t.Fatalf("enrol without csrf: %d", r.status)
	}
	r = c.post(t, "/backoffice/enroll", url.Values{"csrf": {tok}, "code": {f.codeAt(t, secret, f.clock.Now())}})
	if r.status != 303 || r.header.Get("Location") != "/backoffice/tokens" {
		t.Fatalf("confirm: %d %s", r.status, r.header.Get("Location"))
	}
	if r := c.get(t, "/backoffice/tokens"); r.status != 200 {
		t.Fatalf("tokens after enrolment: %d", r.status)
	}
	if evs := f.gwEvents(t, audit.Filter{Event: audit.EventMFAEnroll}); len(evs) != 1 || evs[0].Actor != op.ID {
		t.Errorf("enrolment not audited: %+v", evs)
	}
	// From now on a code is required.
	f.clock.Advance(31 * time.Second)
	if r := f.client().loginWith(t, "carol", testPassword, ""); r.status != 401 {
		t.Fatalf("login without code after enrolment: %d", r.status)
	}
	f.secrets["carol"] = secret
	f.client().login(t, "carol")
}

func TestBackofficeCSRF(t *testing.T) {
	f := newFixture(t, fixtureOpts{noKS: true})
	f.addOperator(t, "rita", operators.RoleRevealer, "", true)
	c := f.client()
	c.login(t, "rita")
	good := c.csrf(t)

	tests := []struct {
		name, path string
		form       url.Values
		crossSite  bool
	}{
		{"403/logout-no-token", "/backoffice/logout", url.Values{}, false},
		{"403/logout-wrong-token", "/backoffice/logout", url.Values{"csrf": {good + "x"}}, false},
		// A token in the URL leaks (logs, history, Referer): only the body or a header count.
		{"403/logout-token-in-query", "/backoffice/logout?csrf=" + url.QueryEscape(good), url.Values{}, false},
		{"403/reveal-token-in-query", "/backoffice/tokens/" + f.tokA.ID + "/reveal?csrf=" + url.QueryEscape(good), url.Values{"reason": {"ticket 42"}}, false},
		{"403/reveal-no-token", "/backoffice/tokens/" + f.tokA.ID + "/reveal", url.Values{"reason": {"ticket 42"}}, false},
		{"403/reveal-other-token", "/backoffice/tokens/" + f.tokA.ID + "/reveal", url.Values{"reason": {"ticket 42"}, "csrf": {strings.Repeat("x", len(good))}}, false},
		{"403/reveal-cross-site", "/backoffice/tokens/" + f.tokA.ID + "/reveal", url.Values{"reason": {"ticket 42"}, "csrf": {good}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.crossSite {
				c.header["Sec-Fetch-Site"] = "cross-site"
				defer delete(c.header, "Sec-Fetch-Site")
			}
			r := c.post(t, tc.path, tc.form)
			if r.status != http.StatusForbidden || !strings.Contains(r.body, `data-code="csrf_failed"`) {
				t.Fatalf("status %d\n%.500s", r.status, r.body)
			}
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Errorf("CSRF refusal is not an HTML page")
			}
		})
	}
	// The script's JSON calls: the token only in X-CSRF-Token.
	for _, tc := range []struct{ name, path, token string }{
		{"403/reveal-challenge-no-token", "/backoffice/tokens/" + f.tokA.ID + "/reveal/challenge", ""},
		{"403/reveal-challenge-other-token", "/backoffice/tokens/" + f.tokA.ID + "/reveal/challenge", strings.Repeat("x", len(good))},
		{"403/reveal-json-no-token", "/backoffice/tokens/" + f.tokA.ID + "/reveal", ""},
		{"403/passkey-challenge-no-token", "/backoffice/passkeys/challenge", ""},
		{"403/passkey-register-no-token", "/backoffice/passkeys", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.postJSON(t, tc.path, tc.token, map[string]any{"reason": "ticket 42"})
			if r.status != http.StatusForbidden || errCode(r) != "csrf_failed" {
				t.Fatalf("status %d %s", r.status, r.body)
			}
		})
	}
	if n, _ := f.fake.calls(); n != 0 || f.fake.challenges != 0 {
		t.Errorf("key service called %d times (%d challenges) by refused requests", n, f.fake.challenges)
	}
	// The session survived every refused logout.
	if r := c.get(t, "/backoffice/tokens"); r.status != 200 {
		t.Fatalf("session ended by a forged logout: %d", r.status)
	}
	// The header is accepted (scripts), and a real logout works and ends it.
	c.header["X-CSRF-Token"] = good
	r := c.post(t, "/backoffice/logout", url.Values{})
	delete(c.header, "X-CSRF-Token")
	if r.status != 303 {
		t.Fatalf("logout: %d", r.status)
	}
	if r := c.get(t, "/backoffice/tokens"); r.status != 303 || !strings.HasPrefix(r.header.Get("Location"), "/backoffice/login") {
		t.Fatalf("after logout: %d %s", r.status, r.header.Get("Location"))
	}
	if evs := f.gwEvents(t, audit.Filter{Event: audit.EventLogout}); len(evs) != 1 {
		t.Errorf("logout audited %d times", len(evs))
	}
}

func TestBackofficeSessionIdleExpiry(t *testing.T) {
	for _, backend := range []string{"bolt", "redis"} {
		t.Run(backend, func(t *testing.T) { testSessionIdleExpiry(t, fixtureOpts{noKS: true, redis: backend == "redis"}) })
	}
}

func testSessionIdleExpiry(t *testing.T, o fixtureOpts) {
	f := newFixture(t, o)
	f.addOperator(t, "vic", operators.RoleViewer, "", true)
	c := f.client()
	c.login(t, "vic")
	tok := c.csrf(t)

	f.clock.Advance(14 * time.Minute) // activity slides the idle timeout
	if r := c.get(t, "/backoffice/tokens"); r.status != 200 {
		t.Fatalf("after 14 min: %d", r.status)
	}
	f.clock.Advance(14 * time.Minute)
	if r := c.get(t, "/backoffice/tokens"); r.status != 200 {
		t.Fatalf("after 14 more min: %d", r.status)
	}
	f.clock.Advance(15*time.Minute + time.Second)
	cookie := c.jar["bg_session"]
	r := c.get(t, "/backoffice/tokens")
	if r.status != 303 || r.header.Get("Location") != "/backoffice/login?expired=1" {
		t.Fatalf("after 15 min idle: %d %s", r.status, r.header.Get("Location"))
	}
	if !strings.Contains(c.get(t, "/backoffice/login?expired=1").body, "session expired") {
		t.Error("login page does not say the session expired")
	}
	// The old cookie is dead for POSTs too, with an HTML 401 page.
	c.jar["bg_session"] = cookie
	r = c.post(t, "/backoffice/logout", url.Values{"csrf": {tok}})
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "login_required") {
		t.Fatalf("POST with an expired session: %d", r.status)
	}
}

func TestBackofficeMerchantScope(t *testing.T) {
	for _, backend := range []string{"bolt", "redis"} {
		t.Run(backend, func(t *testing.T) { testMerchantScope(t, fixtureOpts{noKS: true, redis: backend == "redis"}) })
	}
}

func testMerchantScope(t *testing.T, o fixtureOpts) {
	f := newFixture(t, o)
	f.addOperator(t, "anna", operators.RoleRevealer, merchA, true)
	f.addOperator(t, "paul", operators.RoleViewer, "", true)
	anna, paul := f.client(), f.client()
	anna.login(t, "anna")
	paul.login(t, "paul")

	tests := []struct {
		name       string
		c          *webClient
		path       string
		wantStatus int
		want, not  []string
	}{
		{"200/merchant-sees-own", anna, "/backoffice/tokens", 200, []string{f.tokA.ID, f.tokA2.ID, merchAName}, []string{f.tokB.ID, merchBName}},
		{"200/merchant-named-in-the-header", anna, "/backoffice/tokens", 200, []string{`<span class="bo-scope" title="` + merchA + `">` + merchAName + `</span>`}, nil},
		{"200/merchant-searches-own-reference", anna, "/backoffice/tokens?reference=" + url.QueryEscape(strings.ToLower(testRef)), 200, []string{f.tokA.ID}, []string{f.tokA2.ID, f.tokB.ID}},
		{"404/merchant-A-cannot-see-B", anna, "/backoffice/tokens/" + f.tokB.ID, 404, nil, []string{f.tokB.ID, "55555555"}},
		{"200/merchant-A-search-by-B-id-finds-nothing", anna, "/backoffice/tokens?token=" + f.tokB.ID, 200, []string{"No tokens found"}, []string{"/backoffice/tokens/" + f.tokB.ID}},
		{"400/merchant-A-dupes-of-B", anna, "/backoffice/tokens?dupes=" + f.tokB.ID, 400, []string{"is visible to you"}, nil},
		{"200/merchant-sees-own-detail", anna, "/backoffice/tokens/" + f.tokA.ID, 200, []string{"42424242 •••• 4242", "/assets/brands/visa.svg"}, nil},
		{"200/platform-sees-all", paul, "/backoffice/tokens", 200, []string{f.tokA.ID, f.tokA2.ID, f.tokB.ID, merchAName, merchBName}, nil},
		{"200/platform-sees-B-detail", paul, "/backoffice/tokens/" + f.tokB.ID, 200, []string{"55555555 •••• 4444"}, nil},
		{"404/unknown-token", paul, "/backoffice/tokens/tok_aaaaaaaaaaaaaaaaaaaaaaaaaa", 404, nil, nil},
		{"404/malformed-token", paul, "/backoffice/tokens/..%2f..%2fetc", 404, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.get(t, tc.path)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d", r.status, tc.wantStatus)
			}
			for _, s := range tc.want {
				if !strings.Contains(r.body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(r.body, s) {
					t.Errorf("page shows %q", s)
				}
			}
		})
	}
	t.Run("404/merchant-A-cannot-reveal-B", func(t *testing.T) {
		if r := anna.reveal(t, f.tokB.ID, "ticket 42"); r.status != 404 || r.code != "not_found" {
			t.Fatalf("status %d", r.status)
		}
		if n, _ := f.fake.calls(); n != 0 || f.fake.challenges != 0 {
			t.Error("key service called for another merchant's token")
		}
	})
}

func TestBackofficeSearch(t *testing.T) {
	f := newFixture(t, fixtureOpts{noKS: true})
	f.addOperator(t, "paul", operators.RoleViewer, "", true)
	c := f.client()
	c.login(t, "paul")
	day := func(d time.Duration) string { return f.clock.Now().Add(d).Format("2006-01-02") }
	// Fingerprints are per merchant: an equal value at another merchant is
	// not the same card, so "duplicates of" stays within the token's merchant.
	lookalike, _, err := f.toks.Put(context.Background(), tokens.Token{MerchantID: merchB, JWE: "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.a.b.c.d", Kid: "kek-1", Brand: "visa",
		BIN: "424242", Last4: "4242", ExpMonth: 11, ExpYear: 2031, Fingerprint: "fp_same", CreatedAt: f.clock.Now().Add(-3 * time.Hour)}, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		query      string
		wantStatus int
		want, not  []string
	}{
		{"200/last4", "last4=4444", 200, []string{f.tokB.ID}, []string{f.tokA.ID}},
		{"200/bin-prefix", "bin=424242", 200, []string{f.tokA.ID, f.tokA2.ID}, []string{f.tokB.ID}},
		{"200/brand", "brand=visa", 200, []string{f.tokA.ID, f.tokB.ID}, nil},
		{"200/fingerprint", "fingerprint=fp_other", 200, []string{f.tokB.ID}, []string{f.tokA.ID}},
		{"200/duplicates-of-a-token", "dupes=" + f.tokA.ID, 200, []string{f.tokA.ID, f.tokA2.ID}, []string{f.tokB.ID, lookalike.ID}},
		{"200/token-id", "token=" + f.tokA2.ID, 200, []string{f.tokA2.ID}, []string{f.tokB.ID, "/backoffice/tokens/" + f.tokA.ID + `"`}},
		{"200/date-range", "from=" + day(-24*time.Hour) + "&to=" + day(0), 200, []string{f.tokA2.ID, f.tokB.ID}, []string{"/backoffice/tokens/" + f.tokA.ID + `"`}},
		// A support agent pastes the merchant's order reference, in any case.
		{"200/reference", "reference=" + url.QueryEscape(" "+strings.ToLower(testRef)+" "), 200,
			[]string{"/backoffice/tokens/" + f.tokA.ID + `"`, `<td class="bo-text">` + testRef + `</td>`, `value="` + strings.ToLower(testRef) + `"`},
			[]string{"/backoffice/tokens/" + f.tokA2.ID + `"`, "/backoffice/tokens/" + f.tokB.ID + `"`}},
		{"200/reference-whole-not-prefix", "reference=ORD-2026", 200, []string{"No tokens found"}, nil},
		{"200/merchant-names-not-ids", "", 200, []string{`title="` + merchA + `">` + merchAName + `<`, `title="` + merchB + `">` + merchBName + `<`}, []string{"<td>" + merchA + "</td>"}},
		{"400/reference-too-long", "reference=" + strings.Repeat("r", 129), 400, []string{"at most 128 characters"}, nil},
		{"400/last4-not-digits", "last4=12a4", 400, []string{"four digits"}, nil},
		{"400/bin-too-long", "bin=123456789", 400, []string{"eight digits"}, nil},
		{"400/bad-token-id", "token=hello", 400, []string{"tok_"}, nil},
		{"400/bad-date", "from=yesterday", 400, []string{"YYYY-MM-DD"}, nil},
		{"400/reversed-dates", "from=" + day(0) + "&to=" + day(-48*time.Hour), 400, []string{"not be after"}, nil},
		{"400/unknown-brand", "brand=acme", 400, []string{"Unknown brand"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := c.get(t, "/backoffice/tokens?"+tc.query)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d\n%.400s", r.status, tc.wantStatus, r.body)
			}
			for _, s := range tc.want {
				if !strings.Contains(r.body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(r.body, s) {
					t.Errorf("page shows %q", s)
				}
			}
		})
	}
	evs := f.gwEvents(t, audit.Filter{Event: audit.EventTokenSearch})
	if len(evs) == 0 {
		t.Fatal("searches not audited")
	}
	for _, e := range evs {
		if strings.Contains(e.Reason, "4444") || strings.Contains(e.Reason, "424242") || strings.Contains(strings.ToUpper(e.Reason), testRef) {
			t.Errorf("search audit holds what was searched for: %q", e.Reason)
		}
	}
}

// TestBackofficeTokenPageShowsMerchantData: the token page names the
// merchant (its id beside the name), and shows the merchant's order
// reference, linked to the search for it, and its metadata, escaped.
func TestBackofficeTokenPageShowsMerchantData(t *testing.T) {
	f := newFixture(t, fixtureOpts{noKS: true})
	f.addOperator(t, "paul", operators.RoleViewer, "", true)
	tricky, _, err := f.toks.Put(context.Background(), tokens.Token{MerchantID: "m_gone", JWE: "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.a.b.c.d", Kid: "kek-1", Brand: "visa",
		BIN: "424242", Last4: "4242", ExpMonth: 11, ExpYear: 2031, Fingerprint: "fp_x", CreatedAt: f.clock.Now().Add(-time.Hour),
		Reference: `<b>R&D</b>`, Metadata: map[string]string{"note": `"><script>x</script>`}}, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	c := f.client()
	c.login(t, "paul")
	r := c.get(t, "/backoffice/tokens/"+f.tokA.ID)
	for _, want := range []string{
		`<dd id="bo-merchant">` + merchAName + ` <span class="bo-meta">` + merchA + `</span></dd>`,
		`<a href="/backoffice/tokens?reference=` + testRef + `" title="Tokens with this reference">` + testRef + `</a>`,
		`<dt><code>channel</code></dt><dd class="bo-text">web shop</dd>`,
		`<dt><code>customer</code></dt><dd class="bo-text">c_1077</dd>`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("token page lacks %s", want)
		}
	}
	if strings.Index(r.body, "<code>channel</code>") > strings.Index(r.body, "<code>customer</code>") {
		t.Error("metadata not in key order")
	}
	// A merchant the store does not know is shown by its id; the
	// merchant's text is escaped.
	r = c.get(t, "/backoffice/tokens/"+tricky.ID)
	if !strings.Contains(r.body, `<dd id="bo-merchant">m_gone</dd>`) || strings.Contains(r.body, "<b>R&D</b>") || strings.Contains(r.body, "<script>x") ||
		!strings.Contains(r.body, "&lt;b&gt;R&amp;D&lt;/b&gt;") {
		t.Errorf("unknown merchant or unescaped merchant text:\n%.3000s", r.body)
	}
	// The reveal button waits for the page's script: without it, Enter in
	// the reason box posts no form (which Back and Forward would resubmit).
	f.addOperator(t, "rita", operators.RoleRevealer, "", true)
	rc := f.client()
	rc.login(t, "rita")
	if r := rc.get(t, "/backoffice/tokens/"+f.tokA.ID); !strings.Contains(r.body, `id="bo-reveal-btn" disabled>`) {
		t.Errorf("the reveal button is enabled before the script runs:\n%.3000s", r.body)
	}
}

// TestBackofficeLoginPageWhenSignedIn: the login page of an operator who is
// signed in (the browser's Back after a login lands there) goes on to the
// tokens, or to enrolment before the second factor; signed out, or with a
// dead session, it is the form.
func TestBackofficeLoginPageWhenSignedIn(t *testing.T) {
	f := newFixture(t, fixtureOpts{noKS: true})
	f.addOperator(t, "paul", operators.RoleViewer, "", true)
	f.addOperator(t, "nina", operators.RoleViewer, "", false)
	c := f.client()
	if r := c.get(t, "/backoffice/login"); r.status != 200 || !strings.Contains(r.body, `id="bo-username"`) {
		t.Fatalf("signed out: %d", r.status)
	}
	c.login(t, "paul")
	if r := c.get(t, "/backoffice/login"); r.status != 303 || r.header.Get("Location") != "/backoffice/tokens" {
		t.Fatalf("signed in: %d %s", r.status, r.header.Get("Location"))
	}
	n := f.client()
	if r := n.loginWith(t, "nina", testPassword, ""); r.status != 303 || r.header.Get("Location") != "/backoffice/enroll" {
		t.Fatalf("nina's first login: %d %s", r.status, r.header.Get("Location"))
	}
	if r := n.get(t, "/backoffice/login"); r.status != 303 || r.header.Get("Location") != "/backoffice/enroll" {
		t.Fatalf("signed in before enrolment: %d %s", r.status, r.header.Get("Location"))
	}
	f.clock.Advance(16 * time.Minute) // idle: the session is over
	if r := c.get(t, "/backoffice/login"); r.status != 200 || !strings.Contains(r.body, `id="bo-username"`) {
		t.Fatalf("idle session: %d %s", r.status, r.header.Get("Location"))
	}
}

func TestBackofficeRevealRoles(t *testing.T) {
	f := newFixture(t, fixtureOpts{noKS: true})
	f.addOperator(t, "vera", operators.RoleViewer, "", true)
	f.addOperator(t, "adam", operators.RoleAdmin, "", true)
	f.addOperator(t, "anna", operators.RoleViewer, merchA, true)
	for _, name := range []string{"vera", "adam", "anna"} {
		t.Run("403/"+name+"-may-not-reveal", func(t *testing.T) {
			c := f.client()
			c.login(t, name)
			detail := c.get(t, "/backoffice/tokens/"+f.tokA.ID)
			if strings.Contains(detail.body, `id="bo-reveal-form"`) {
				t.Error("the detail page offers a reveal form to a non-revealer")
			}
			r := c.reveal(t, f.tokA.ID, "ticket 42")
			if r.status != http.StatusForbidden || r.code != "forbidden" || !strings.Contains(r.body, "may not reveal") {
				t.Fatalf("status %d\n%.400s", r.status, r.body)
			}
			if n, _ := f.fake.calls(); n != 0 || f.fake.challenges != 0 {
				t.Fatal("the gateway called the key service for a role that may not reveal")
			}
			// The second step alone (a hand-made request) is refused too.
			r2 := c.postJSON(t, "/backoffice/tokens/"+f.tokA.ID+"/reveal", c.csrf(t), map[string]any{"reason": "ticket 42"})
			if r2.status != http.StatusForbidden || errCode(r2) != "forbidden" {
				t.Fatalf("reveal without challenge: %d %s", r2.status, r2.body)
			}
			evs := f.gwEvents(t, audit.Filter{Event: audit.EventRevealDenied, Actor: f.operators[name].ID})
			if len(evs) != 2 || evs[0].Outcome != audit.OutcomeDenied || evs[0].Resource != f.tokA.ID || evs[0].Reason != "ticket 42" {
				t.Fatalf("denied reveals not audited: %+v", evs)
			}
			f.noPAN(t, r.response)
		})
	}
}

// TestBackofficeRevealRoundTrip: an operator's reveal through the gateway
// with a real key service: the passkey approves this reveal, the answer is a
// JWE that only the browser key opens, and both audit trails name the
// passkey. The gateway's answer holds no card number.
func TestBackofficeRevealRoundTrip(t *testing.T) {
	f := newFixture(t, fixtureOpts{reveals: 2})
	c := f.addRevealer(t, "rita", merchA)
	op := f.operators["rita"]

	t.Run("400/reason-required", func(t *testing.T) {
		r := c.reveal(t, f.tokA.ID, "  ")
		if r.status != 400 || r.code != "invalid_field" || !strings.Contains(r.body, "reason") {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		f.noPAN(t, r.response)
	})
	t.Run("200/revealed-once-no-store", func(t *testing.T) {
		r := c.reveal(t, f.tokA.ID, "chargeback   ticket\n#1234")
		if r.status != 200 || r.card.PAN != testPAN || r.card.ExpMonth != 11 {
			t.Fatalf("status %d, card month %d\n%.600s", r.status, r.card.ExpMonth, r.body)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
		f.noPAN(t, r.response)
		f.noPAN(t, r.challenge)
		cred := c.passkey.ID()
		evs := f.kz.Events(t, audit.Filter{Event: audit.EventReveal})
		if len(evs) != 1 || evs[0].Actor != op.ID || evs[0].Reason != "chargeback ticket #1234" || evs[0].Resource != f.tokA.ID ||
			evs[0].Client != "backoffice" || evs[0].Credential != cred {
			t.Fatalf("key service audit: %+v", evs)
		}
		gw := f.gwEvents(t, audit.Filter{Event: audit.EventReveal})
		if len(gw) != 1 || gw[0].Credential != cred || gw[0].Reason != "chargeback ticket #1234" {
			t.Fatalf("gateway audit: %+v", gw)
		}
		// The detail page carries the production hide delay for the script.
		if page := c.get(t, "/backoffice/tokens/"+f.tokA.ID); !strings.Contains(page.body, `data-hide-after="60"`) {
			t.Error("production hide delay is not 60 s")
		}
	})
	t.Run("429/reveal-limit-reached", func(t *testing.T) {
		if r := c.reveal(t, f.tokA2.ID, "second look"); r.status != 200 {
			t.Fatalf("2nd reveal: %d %s", r.status, r.body)
		}
		r := c.reveal(t, f.tokA.ID, "third look")
		if r.status != http.StatusTooManyRequests || r.code != "rate_limited" || !strings.Contains(r.body, "Reveal limit reached") {
			t.Fatalf("status %d\n%.800s", r.status, r.body)
		}
		if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 60 {
			t.Errorf("Retry-After %q: the limit is per hour", r.header.Get("Retry-After"))
		}
		f.noPAN(t, r.response)
		if evs := f.kz.Events(t, audit.Filter{Event: audit.EventRevealDenied}); len(evs) != 1 || evs[0].Code != "rate_limited" {
			t.Errorf("key service did not record the refusal: %+v", evs)
		}
		if evs := f.gwEvents(t, audit.Filter{Event: audit.EventRevealDenied}); len(evs) != 1 || evs[0].Code != "rate_limited" {
			t.Errorf("gateway did not record the refusal: %+v", evs)
		}
	})
}

// TestBackofficeRevealRefusals: every way to make the key service decrypt
// without this operator's approval of this reveal, sent through the
// gateway, is refused by the key service with its stable code, passed on
// by the gateway, and recorded in both audit trails; nothing is decrypted.
func TestBackofficeRevealRefusals(t *testing.T) {
	f := newFixture(t, fixtureOpts{reveals: 50})
	c := f.addRevealer(t, "rita", "")
	other := f.addRevealer(t, "otto", "")
	f.addOperator(t, "nils", operators.RoleRevealer, "", true)
	newbie := f.client()
	newbie.login(t, "nils")
	otherKey, _ := kstest.BrowserKey(t)
	stranger := kstest.NewAuthenticator(t, f.rp)
	// A second passkey of rita's, enrolled but never approved.
	pendingKey, r := c.enrolPasskey(t, "rita")
	if r.status != http.StatusCreated {
		t.Fatalf("enrol: %d %s", r.status, r.body)
	}
	var spent json.RawMessage
	if r := c.reveal(t, f.tokA.ID, "first look", revealOpts{keep: func(a json.RawMessage) { spent = a }}); r.status != 200 {
		t.Fatalf("first reveal: %d %s", r.status, r.body)
	}

	tests := []struct {
		name string
		c    *webClient
		opts revealOpts
		code string
	}{
		{"403/assertion-for-another-token", c, revealOpts{signToken: f.tokB.ID}, "passkey_invalid"},
		{"403/assertion-for-another-reason", c, revealOpts{signReason: "something else entirely"}, "passkey_invalid"},
		{"403/assertion-for-another-browser-key", c, revealOpts{signKey: &otherKey}, "passkey_invalid"},
		{"403/browser-key-swapped-after-signing", c, revealOpts{sendKey: &otherKey}, "passkey_invalid"},
		{"403/assertion-for-another-nonce", c, revealOpts{signNonce: "rvn_" + strings.Repeat("B", 42) + "A"}, "passkey_invalid"},
		{"403/replayed-assertion", c, revealOpts{replay: spent}, "passkey_invalid"},
		{"403/replayed-nonce", c, revealOpts{nonce: "rvn_" + strings.Repeat("C", 42) + "A"}, "reveal_nonce_invalid"},
		{"403/another-operators-passkey", c, revealOpts{auth: other.passkey}, "passkey_invalid"},
		{"403/unknown-credential", c, revealOpts{auth: stranger}, "passkey_unknown"},
		{"403/pending-credential", c, revealOpts{auth: pendingKey}, "passkey_unknown"},
		{"403/gateway-forged-no-assertion", c, revealOpts{noPasskey: true}, "passkey_required"},
		{"403/operator-without-passkey", newbie, revealOpts{noPasskey: true}, "passkey_required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			beforeKS := len(f.kz.Events(t, audit.Filter{Event: audit.EventRevealDenied}))
			beforeGW := len(f.gwEvents(t, audit.Filter{Event: audit.EventRevealDenied}))
			r := tc.c.reveal(t, f.tokA.ID, "ticket 42", tc.opts)
			if r.status != http.StatusForbidden || r.code != tc.code {
				t.Fatalf("status %d code %q, want 403 %s\n%s", r.status, r.code, tc.code, r.body)
			}
			f.noPAN(t, r.response)
			ks := f.kz.Events(t, audit.Filter{Event: audit.EventRevealDenied})
			if len(ks) != beforeKS+1 || ks[0].Code != tc.code {
				t.Errorf("key service audit: %d records, newest %+v", len(ks)-beforeKS, ks[0])
			}
			gw := f.gwEvents(t, audit.Filter{Event: audit.EventRevealDenied})
			if len(gw) != beforeGW+1 || gw[0].Code != tc.code {
				t.Errorf("gateway audit: %d records, newest %+v", len(gw)-beforeGW, gw[0])
			}
		})
	}
	// One approved reveal in all: the first.
	if evs := f.kz.Events(t, audit.Filter{Event: audit.EventReveal, Outcome: audit.OutcomeSuccess}); len(evs) != 1 {
		t.Errorf("%d reveals went ahead, want 1", len(evs))
	}
}

// TestBackofficeRevealReasonAgreesWithKeyService: the back office and the
// key service apply one reason rule, in characters, and fold white space
// alike (the passkey signs the folded reason). 300 accented letters (600
// bytes) once passed here and failed there, and the operator saw a 502;
// 501 of them are refused here, before the key service is called.
func TestBackofficeRevealReasonAgreesWithKeyService(t *testing.T) {
	f := newFixture(t, fixtureOpts{reveals: 3})
	c := f.addRevealer(t, "rita", merchA)
	accented := strings.Repeat("é", 300)
	t.Run("200/300-accented-characters", func(t *testing.T) {
		r := c.reveal(t, f.tokA.ID, accented)
		if r.status != 200 || r.card.PAN != testPAN {
			t.Fatalf("status %d\n%.600s", r.status, r.body)
		}
		if evs := f.kz.Events(t, audit.Filter{Event: audit.EventReveal}); len(evs) != 1 || evs[0].Reason != accented {
			t.Fatalf("key service audit: %+v", evs)
		}
	})
	t.Run("200/odd-white-space-folded-alike", func(t *testing.T) {
		r := c.reveal(t, f.tokA.ID, "\u00a0ticket\u2003\u0085 #9\ufeff\t")
		if r.status != 200 {
			t.Fatalf("status %d\n%.600s", r.status, r.body)
		}
		if evs := f.kz.Events(t, audit.Filter{Event: audit.EventReveal}); evs[0].Reason != "ticket #9" {
			t.Fatalf("key service audit: %+v", evs[0])
		}
	})
	t.Run("400/too-many-characters", func(t *testing.T) {
		r := c.reveal(t, f.tokA.ID, strings.Repeat("é", wire.MaxReasonLen+1))
		if r.status != 400 || !strings.Contains(r.body, "reason") {
			t.Fatalf("status %d", r.status)
		}
		f.noPAN(t, r.response)
		if evs := f.kz.Events(t, audit.Filter{Event: audit.EventRevealDenied}); len(evs) != 0 {
			t.Fatalf("the key service was called: %+v", evs)
		}
	})
}

// TestBackofficeRevealNeedsFreshAuth: a session older than 5 minutes
// reveals only after a password and code, or, where passkeys may log in,
// with the reveal's own passkey approval standing for it (for that reveal
// only: the session does not become fresh).
func TestBackofficeRevealNeedsFreshAuth(t *testing.T) {
	t.Run("totp-mode-password-and-code", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{mfa: operators.MFATOTP})
		c := f.addRevealer(t, "rita", "")
		f.clock.Advance(5*time.Minute + time.Second)

		r := c.reveal(t, f.tokB.ID, "ticket 77")
		if !strings.Contains(r.challenge.body, `"reauth_required":true`) || r.status != http.StatusUnauthorized || r.code != "reauth_required" {
			t.Fatalf("stale auth: challenge %s, reveal %d %s", r.challenge.body, r.status, r.body)
		}
		if n := len(f.kz.Events(t, audit.Filter{Event: audit.EventReveal})) + len(f.kz.Events(t, audit.Filter{Event: audit.EventRevealDenied})); n != 0 {
			t.Fatalf("key service reached before re-login (%d events)", n)
		}
		r = c.reveal(t, f.tokB.ID, "ticket 77", revealOpts{password: "wrong password here", code: f.code(t, "rita")})
		if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Wrong password") {
			t.Fatalf("wrong re-login: %d", r.status)
		}
		f.noPAN(t, r.response)
		f.clock.Advance(30 * time.Second)
		r = c.reveal(t, f.tokB.ID, "ticket 77", revealOpts{password: testPassword, code: f.code(t, "rita")})
		if r.status != 200 || r.card.PAN != testPAN {
			t.Fatalf("after re-login: %d\n%.600s", r.status, r.body)
		}
		// Fresh now: the next reveal within 5 minutes needs no password.
		f.clock.Advance(4 * time.Minute)
		if r := c.reveal(t, f.tokA.ID, "ticket 78"); r.status != 200 || r.card.PAN != testPAN {
			t.Fatalf("reveal inside the window: %d", r.status)
		}
		if evs := f.gwEvents(t, audit.Filter{Event: audit.EventLogin, Outcome: audit.OutcomeFailure}); len(evs) != 1 || evs[0].Reason != "re-authentication for reveal" {
			t.Errorf("failed re-login not audited: %+v", evs)
		}
	})
	t.Run("any-mode-passkey-stands-for-it", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		c := f.addRevealer(t, "rita", "")
		f.clock.Advance(5*time.Minute + time.Second)
		r := c.reveal(t, f.tokB.ID, "ticket 79")
		if !strings.Contains(r.challenge.body, `"reauth_required":false`) || r.status != 200 || r.card.PAN != testPAN {
			t.Fatalf("passkey as re-authentication: challenge %s, reveal %d %s", r.challenge.body, r.status, r.body)
		}
		// Not a fresh session: without the passkey, the password is asked for.
		r = c.reveal(t, f.tokB.ID, "ticket 80", revealOpts{noPasskey: true})
		if r.status != http.StatusUnauthorized || r.code != "reauth_required" {
			t.Fatalf("session made fresh by a passkey: %d %s", r.status, r.body)
		}
		if evs := f.gwEvents(t, audit.Filter{Event: audit.EventLogin, Outcome: audit.OutcomeSuccess}); evs[0].Reason != "re-authentication for reveal (passkey)" {
			t.Errorf("passkey re-authentication not audited: %+v", evs[0])
		}
	})
}

// TestBackofficeKeyServiceErrors: what the key service answers, read by
// code, becomes one stable code and sentence for the page's script.
func TestBackofficeKeyServiceErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		want       []string
	}{
		{"503/sealed", &client.Error{Status: 503, Code: "sealed", Message: "sealed"}, 503, "keyservice_unavailable", []string{"key service is unavailable", "Nothing was revealed"}},
		{"503/unreachable", errors.New("dial tcp 127.0.0.1:1: connection refused"), 503, "keyservice_unavailable", []string{"cannot be reached", "Nothing was revealed"}},
		{"429/limit-with-retry", &client.Error{Status: 429, Code: "rate_limited", RetryAfter: 3 * time.Minute}, 429, "rate_limited", []string{"Reveal limit reached"}},
		{"422/undecryptable", &client.Error{Status: 422, Code: "card_undecryptable"}, 422, "card_undecryptable", []string{"cannot be decrypted"}},
		{"502/refused-signature", &client.Error{Status: 401, Code: "unauthenticated"}, 502, "unavailable", []string{"did not accept"}},
		// Mapped by code, not status: this was a 502 when read by status.
		{"400/key-service-invalid-field", &client.Error{Status: 400, Code: "invalid_field"}, 400, "invalid_field", []string{"found a field of the reveal request invalid", "Nothing was revealed"}},
		{"422/key-unknown-is-undecryptable", &client.Error{Status: 400, Code: "key_unknown"}, 422, "card_undecryptable", []string{"cannot be decrypted"}},
		{"403/passkey-required", &client.Error{Status: 403, Code: "passkey_required"}, 403, "passkey_required", []string{"approved passkey"}},
		{"403/passkey-invalid", &client.Error{Status: 403, Code: "passkey_invalid"}, 403, "passkey_invalid", []string{"does not match this reveal"}},
		{"403/passkey-unknown", &client.Error{Status: 403, Code: "passkey_unknown"}, 403, "passkey_unknown", []string{"not approved for reveals"}},
		{"403/nonce", &client.Error{Status: 403, Code: "reveal_nonce_invalid"}, 403, "reveal_nonce_invalid", []string{"expired or was already used"}},
		{"400/browser-key", &client.Error{Status: 400, Code: "browser_key_invalid"}, 400, "browser_key_invalid", []string{"browser's key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeKS{revealErr: tc.err}
			f := newFixture(t, fixtureOpts{ks: fake})
			f.addOperator(t, "rita", operators.RoleRevealer, "", true)
			c := f.client()
			c.login(t, "rita")
			r := c.reveal(t, f.tokA.ID, "ticket 42")
			if r.status != tc.wantStatus || r.code != tc.wantCode {
				t.Fatalf("status %d %q, want %d %s", r.status, r.code, tc.wantStatus, tc.wantCode)
			}
			for _, s := range tc.want {
				if !strings.Contains(r.body, s) {
					t.Errorf("answer lacks %q\n%.600s", s, r.body)
				}
			}
			if tc.wantStatus == 429 && r.header.Get("Retry-After") != "180" {
				t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
			}
			if n, _ := fake.calls(); n != 1 {
				t.Errorf("key service called %d times", n)
			}
			if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || r.header.Get("Cache-Control") != "no-store" {
				t.Error("error answer is not uncached JSON")
			}
			f.noPAN(t, r.response)
		})
	}
	t.Run("503/real-client-nothing-listening", func(t *testing.T) {
		dead := client.New("http://127.0.0.1:1", &client.Signer{ClientID: "backoffice", Kid: "k", Audience: "a", Key: mustKey(t)}, client.HTTPClient(false))
		f := newFixture(t, fixtureOpts{ks: dead})
		f.addOperator(t, "rita", operators.RoleRevealer, "", true)
		c := f.client()
		c.login(t, "rita")
		r := c.reveal(t, f.tokA.ID, "ticket 42")
		if r.status != 503 || !strings.Contains(r.body, "Nothing was revealed") {
			t.Fatalf("status %d", r.status)
		}
		f.noPAN(t, r.response)
	})
	t.Run("400/form-without-script", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{noKS: true})
		f.addOperator(t, "rita", operators.RoleRevealer, "", true)
		c := f.client()
		c.login(t, "rita")
		r := c.post(t, "/backoffice/tokens/"+f.tokA.ID+"/reveal", url.Values{"csrf": {c.csrf(t)}, "reason": {"ticket 42"}})
		if r.status != 400 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(r.body, "needs JavaScript") {
			t.Fatalf("status %d\n%.400s", r.status, r.body)
		}
		if n, _ := f.fake.calls(); n != 0 || f.fake.challenges != 0 {
			t.Error("key service called for a form post")
		}
	})
}

func mustKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := client.GenerateKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestBackofficeAuditView(t *testing.T) {
	f := newFixture(t, fixtureOpts{reveals: 1})
	rita := f.addRevealer(t, "rita", "")
	f.addOperator(t, "adam", operators.RoleAdmin, "", true)
	f.addOperator(t, "vera", operators.RoleViewer, "", true)
	f.addOperator(t, "mia", operators.RoleAdmin, merchA, true)
	anna := f.addRevealer(t, "anna", merchA)

	// Two reveals by rita against a limit of one: a success, then a refusal
	// and an alarm in the key service's trail; one success by anna.
	if r := rita.reveal(t, f.tokA.ID, "ticket 1"); r.status != 200 {
		t.Fatalf("reveal: %d", r.status)
	}
	if r := rita.reveal(t, f.tokA.ID, "ticket 2"); r.status != 429 {
		t.Fatalf("2nd reveal: %d", r.status)
	}
	if r := anna.reveal(t, f.tokA.ID, "ticket 3"); r.status != 200 {
		t.Fatalf("anna's reveal: %d", r.status)
	}
	admin := f.client()
	admin.login(t, "adam")
	mia := f.client()
	mia.login(t, "mia")
	viewer := f.client()
	viewer.login(t, "vera")
	ritaID, annaID := f.operators["rita"].ID, f.operators["anna"].ID

	tests := []struct {
		name       string
		c          *webClient
		query      string
		wantStatus int
		want, not  []string
	}{
		{"403/viewer", viewer, "", 403, []string{"Only administrators"}, nil},
		{"403/revealer", rita, "", 403, nil, nil},
		{"200/all", admin, "", 200, []string{"Hash chain verified", "bo-row-alarm", "ALARM", "ticket 1", "ticket 3", ritaID, annaID, "reveal.denied", "1 alarm in this view"}, nil},
		{"200/by-actor", admin, "?actor=" + annaID, 200, []string{"ticket 3"}, []string{"ticket 1"}},
		{"200/by-username", admin, "?actor=Anna", 200, []string{"ticket 3", `value="Anna"`, `href="/backoffice/audit?actor=anna"`}, []string{"ticket 1"}},
		{"200/merchant-admin-by-username", mia, "?actor=anna", 200, []string{"ticket 3"}, []string{"ticket 1"}},
		{"400/merchant-admin-other-merchants-username", mia, "?actor=rita", 400, []string{"No operator of your merchant"}, []string{"ticket 1"}},
		{"200/by-outcome", admin, "?outcome=denied", 200, []string{"reveal.denied", "rate_limited"}, []string{"ticket 3"}},
		{"400/bad-outcome", admin, "?outcome=maybe", 400, []string{"outcome"}, nil},
		{"200/merchant-admin-sees-own-operators", mia, "", 200, []string{"ticket 3", "your merchant"}, []string{"ticket 1", ritaID}},
		{"400/merchant-admin-other-actor", mia, "?actor=" + ritaID, 400, nil, []string{"ticket 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.get(t, "/backoffice/audit"+tc.query)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d\n%.600s", r.status, tc.wantStatus, r.body)
			}
			for _, s := range tc.want {
				if !strings.Contains(r.body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(r.body, s) {
					t.Errorf("page shows %q", s)
				}
			}
		})
	}
	if evs := f.gwEvents(t, audit.Filter{Event: audit.EventAuditView}); len(evs) < 4 || evs[0].Actor != f.operators["mia"].ID && evs[0].Actor != f.operators["adam"].ID {
		t.Errorf("audit views not audited: %+v", evs)
	}

	t.Run("200/tampered-chain-flagged", func(t *testing.T) {
		b, err := os.ReadFile(f.kz.AuditPath)
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(b), "ticket 1", "ticket X", 1)
		if err := os.WriteFile(f.kz.AuditPath, []byte(edited), 0o600); err != nil {
			t.Fatal(err)
		}
		r := admin.get(t, "/backoffice/audit")
		if r.status != 200 || !strings.Contains(r.body, "verification FAILED") || !strings.Contains(r.body, "bo-chain-bad") {
			t.Fatalf("tampered trail: %d\n%.800s", r.status, r.body)
		}
	})
	t.Run("503/key-service-down", func(t *testing.T) {
		fake := &fakeKS{queryErr: &client.Error{Status: 503, Code: "unavailable"}}
		g := newFixture(t, fixtureOpts{ks: fake})
		g.addOperator(t, "adam", operators.RoleAdmin, "", true)
		c := g.client()
		c.login(t, "adam")
		if r := c.get(t, "/backoffice/audit"); r.status != 503 || !strings.Contains(r.body, "cannot be read") {
			t.Fatalf("status %d", r.status)
		}
	})
}

var (
	scriptTag = regexp.MustCompile(`(?is)<script\b[^>]*>`)
	eventAttr = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	styleAttr = regexp.MustCompile(`(?i)\sstyle\s*=`)
	formTag   = regexp.MustCompile(`(?is)<form\b[^>]*method="post"[^>]*>.*?</form>`)
)

// TestBackofficePageHygiene renders every page and checks the CSP-related
// rules: no inline script, style or handler; scripts and styles with SRI;
// every POST form has the CSRF field; headers on every answer.
func TestBackofficePageHygiene(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.addOperator(t, "rita", operators.RoleRevealer, "", true)
	f.addOperator(t, "adam", operators.RoleAdmin, "", true)
	f.addOperator(t, "newbie", operators.RoleViewer, "", false)
	rita, adam, newbie, anon := f.client(), f.client(), f.client(), f.client()
	rita.login(t, "rita")
	adam.login(t, "adam")
	if r := newbie.loginWith(t, "newbie", testPassword, ""); r.status != 303 {
		t.Fatal("newbie login")
	}
	// Each page with the status it must have and a text only it shows: the
	// rules below hold for any HTML answer, so without these an error page
	// in place of the page would pass them.
	pages := []struct {
		name   string
		get    func() response
		status int
		shows  string
	}{
		{"login", func() response { return anon.get(t, "/backoffice/login") }, 200, `name="password"`},
		{"enroll", func() response { return newbie.get(t, "/backoffice/enroll") }, 200, `name="code"`},
		{"tokens", func() response { return rita.get(t, "/backoffice/tokens") }, 200, f.tokA.ID},
		{"token", func() response { return rita.get(t, "/backoffice/tokens/"+f.tokA.ID) }, 200, `id="bo-reveal-form"`},
		{"passkeys", func() response { return rita.get(t, "/backoffice/passkeys") }, 200, `id="bo-passkey-form"`},
		{"passkeys-first-factor", func() response { return newbie.get(t, "/backoffice/passkeys") }, 200, `id="bo-passkey-form"`},
		{"reveal-without-script", func() response {
			return rita.post(t, "/backoffice/tokens/"+f.tokA.ID+"/reveal", url.Values{"csrf": {rita.csrf(t)}, "reason": {"hygiene check"}})
		}, 400, "JavaScript"},
		{"audit", func() response { return adam.get(t, "/backoffice/audit") }, 200, "Key service audit trail"},
		{"error-404", func() response { return rita.get(t, "/backoffice/nope") }, 404, "not_found"},
	}
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			r := p.get()
			if r.status != p.status || !strings.Contains(r.body, p.shows) {
				t.Fatalf("status %d, shows %q: %v; want %d and that text\n%.800s", r.status, p.shows, strings.Contains(r.body, p.shows), p.status, r.body)
			}
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Fatalf("%d %s is not HTML", r.status, r.header.Get("Content-Type"))
			}
			csp := r.header.Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
				"form-action 'self'", "frame-ancestors 'none'", "require-trusted-types-for 'script'", "trusted-types 'none'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("CSP lacks %s", d)
				}
			}
			if r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Frame-Options") != "DENY" {
				t.Error("missing no-store or X-Frame-Options")
			}
			tags := scriptTag.FindAllString(r.body, -1)
			if len(tags) != 2 || !strings.Contains(tags[0], `src="/backoffice/assets/bocrypto.js"`) || !strings.Contains(tags[1], `src="/backoffice/assets/backoffice.js"`) {
				t.Errorf("scripts %q, want bocrypto.js then backoffice.js", tags)
			}
			for _, tag := range tags {
				if !strings.Contains(tag, `integrity="sha384-`) || !strings.Contains(tag, `crossorigin="anonymous"`) {
					t.Errorf("script without SRI: %s", tag)
				}
			}
			if strings.Contains(r.body, "<style") || styleAttr.MatchString(r.body) || eventAttr.MatchString(r.body) {
				t.Error("inline style or event handler")
			}
			if !strings.Contains(r.body, `href="/backoffice/assets/backoffice.css" integrity="sha384-`) {
				t.Error("stylesheet without SRI")
			}
			for _, form := range formTag.FindAllString(r.body, -1) {
				if !strings.Contains(form, `name="csrf"`) {
					t.Errorf("POST form without CSRF field: %.200s", form)
				}
			}
		})
	}
	t.Run("assets-match-sri", func(t *testing.T) {
		page := anon.get(t, "/backoffice/login")
		for _, name := range []string{"backoffice.css", "bocrypto.js", "backoffice.js"} {
			r := anon.get(t, "/backoffice/assets/"+name)
			if r.status != 200 {
				t.Fatalf("%s: %d", name, r.status)
			}
			sum := sha512.Sum384([]byte(r.body))
			want := "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
			if !strings.Contains(html.UnescapeString(page.body), want) {
				t.Errorf("%s: page SRI does not match the served bytes", name)
			}
		}
		if r := anon.get(t, "/backoffice/assets/../server.go"); r.status == 200 {
			t.Error("asset route serves outside its set")
		}
	})
}

// TestBackofficePANInText: a card number typed into any back-office text
// field (search boxes, audit filter, reveal reason) is refused before it can
// reach the audit trail, a store, the page or the key service.
func TestBackofficePANInText(t *testing.T) {
	f := newFixture(t, fixtureOpts{noKS: true})
	f.addOperator(t, "rex", operators.RoleRevealer, "", true)
	f.addOperator(t, "ada", operators.RoleAdmin, "", true)
	rex, ada := f.client(), f.client()
	rex.login(t, "rex")
	ada.login(t, "ada")
	const spaced = "5555 5555 5555 4444"
	tests := []struct {
		name string
		do   func() response
	}{
		{"400/search-fingerprint", func() response { return rex.get(t, "/backoffice/tokens?fingerprint="+url.QueryEscape(spaced)) }},
		{"400/search-dupes", func() response { return rex.get(t, "/backoffice/tokens?dupes=5555555555554444") }},
		{"400/audit-actor", func() response { return ada.get(t, "/backoffice/audit?actor=5555-5555-5555-4444") }},
		{"400/reveal-reason", func() response { return rex.reveal(t, f.tokA.ID, "customer said "+spaced).response }},
		{"400/reveal-reason-multipart", func() response {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			_ = mw.WriteField("csrf", rex.csrf(t))
			_ = mw.WriteField("reason", "card "+spaced)
			_ = mw.Close()
			return rex.doBody(t, http.MethodPost, "/backoffice/tokens/"+f.tokA.ID+"/reveal", &buf, mw.FormDataContentType())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.do()
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, "pan_in_text") {
				t.Fatalf("status %d\n%.400s", r.status, r.body)
			}
			if strings.Contains(r.body, spaced) || strings.Contains(r.body, "5555555555554444") {
				t.Error("the page echoes the card number")
			}
		})
	}
	if n, _ := f.fake.calls(); n != 0 {
		t.Error("a reason holding a card number reached the key service")
	}
	raw, err := os.ReadFile(f.gwAudit)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "5555") {
		t.Error("the gateway audit holds the card number")
	}
}
