package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/blindgate/blindgate/internal/browsertest"
	"github.com/pquerna/otp/totp"

	"github.com/blindgate/blindgate/internal/audit"
)

// TestBackOffice drives the back office in Chromium against the production
// topology: an operator created with `blindgate operators add` logs in with
// the password, enrols TOTP with the secret shown on the enrolment page,
// searches tokens (masked only), reveals card numbers with a reason until the
// key service's per-operator limit answers with the 429 page, and the audit
// chain, checked by `keyservice audit verify`, records every reveal. The key
// service allows 2 reveals a minute here so the limit comes quickly.
func TestBackOffice(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{
		KeyServiceArgs: []string{"-reveal-per-minute", "2"},
		Operators:      []operatorSpec{{"alice", "revealer"}},
	})
	visa, mc := s.mustPay(t, brandCards[0]), s.mustPay(t, brandCards[1])
	alice := s.Operators["alice"]
	tab := newBrowser(t, "backoffice")
	var reveals []revealRecord

	t.Run("login/password-then-totp-enrolment", func(t *testing.T) {
		run(t, tab, 30*time.Second,
			browsertest.Navigate(s.GatewayURL+"/backoffice/login"),
			chromedp.WaitVisible(chromedp.ID("bo-username")),
			chromedp.SendKeys(chromedp.ID("bo-username"), alice.Username),
			chromedp.SendKeys(chromedp.ID("bo-password"), alice.Password),
		)
		submitNav(t, tab, chromedp.CSS(`form[action="/backoffice/login"] button[type="submit"]`), http.StatusOK)
		run(t, tab, 10*time.Second, chromedp.WaitVisible(chromedp.ID("bo-totp-secret")))
		secret := strings.ReplaceAll(text(t, tab, "bo-totp-secret"), " ", "")
		code, err := totp.GenerateCode(secret, time.Now())
		if err != nil {
			t.Fatalf("TOTP secret %q from the enrolment page: %v", secret, err)
		}
		run(t, tab, 30*time.Second, chromedp.SendKeys(chromedp.ID("bo-code"), code))
		submitNav(t, tab, chromedp.CSS(`form[action="/backoffice/enroll"] button[type="submit"]`), http.StatusOK)
		run(t, tab, 10*time.Second, chromedp.WaitVisible(chromedp.ID("bo-search")))
		if loc := location(t, tab); !strings.HasSuffix(loc, "/backoffice/tokens") {
			t.Errorf("after enrolment at %s, want the token list", loc)
		}
	})

	t.Run("search/masked-by-last4-and-token", func(t *testing.T) {
		// Each search is a navigation: wait for its page, not for a table
		// that the unfiltered list already shows.
		run(t, tab, 30*time.Second, chromedp.SendKeys(chromedp.ID("f-last4"), mc.Card.Last4))
		submitNav(t, tab, chromedp.ID("bo-search"), http.StatusOK)
		run(t, tab, 10*time.Second, chromedp.WaitVisible(chromedp.ID("bo-results")))
		if got := resultTokens(t, tab); len(got) != 1 || got[0] != mc.Token {
			t.Errorf("search last4=%s: %v, want [%s]", mc.Card.Last4, got, mc.Token)
		}
		run(t, tab, 30*time.Second,
			browsertest.Navigate(s.GatewayURL+"/backoffice/tokens"),
			chromedp.WaitVisible(chromedp.ID("f-token")),
			chromedp.SendKeys(chromedp.ID("f-token"), visa.Token),
		)
		submitNav(t, tab, chromedp.ID("bo-search"), http.StatusOK)
		run(t, tab, 10*time.Second, chromedp.WaitVisible(chromedp.ID("bo-results")))
		if got := resultTokens(t, tab); len(got) != 1 || got[0] != visa.Token {
			t.Errorf("search token=%s: %v", visa.Token, got)
		}
		page := text(t, tab, "bo-results")
		if !strings.Contains(page, visa.Card.BIN+" •••• "+visa.Card.Last4) || strings.Contains(page, visa.Card.PAN) {
			t.Errorf("result row %q: want the masked card only", page)
		}
	})

	revealIn := func(t *testing.T, p payment, reason string) (int64, string) {
		run(t, tab, 30*time.Second,
			browsertest.Navigate(s.GatewayURL+"/backoffice/tokens/"+p.Token),
			chromedp.WaitVisible(chromedp.ID("bo-reason")),
			chromedp.SendKeys(chromedp.ID("bo-reason"), reason),
		)
		return submitNav(t, tab, chromedp.ID("bo-reveal-btn"), 0), bodyText(t, tab)
	}

	t.Run("reveal/with-reason", func(t *testing.T) {
		for i, p := range []payment{mc, visa} {
			reason := "E2E chargeback ticket #" + string(rune('1'+i))
			status, _ := revealIn(t, p, reason)
			if status != http.StatusOK {
				t.Fatalf("reveal %s: HTTP %d", p.Token, status)
			}
			if got := strings.ReplaceAll(text(t, tab, "bo-pan"), " ", ""); got != p.Card.PAN {
				t.Errorf("revealed %q, want %s's number", got, p.Card.Brand)
			}
			reveals = append(reveals, revealRecord{Token: p.Token, Actor: alice.ID, Reason: reason})
		}
	})

	t.Run("429/reveal-limit-reached", func(t *testing.T) {
		status, body := revealIn(t, mc, "E2E one reveal too many")
		if status != http.StatusTooManyRequests {
			t.Fatalf("third reveal within a minute: HTTP %d, want 429", status)
		}
		info, err := evalString(tab, `JSON.stringify({status: (document.querySelector("[data-status]") || {dataset: {}}).dataset.status,
			heading: (document.querySelector("h1") || {}).textContent, retry: !!document.getElementById("bo-retry"),
			pan: !!document.getElementById("bo-pan")})`)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Status, Heading string
			Retry, PAN      bool
		}
		_ = json.Unmarshal([]byte(info), &page)
		if page.Status != "429" || page.Heading != "Limit reached" || !page.Retry || page.PAN {
			t.Errorf("limit page: %+v\n%s", page, tail([]byte(body), 1000))
		}
		if strings.Contains(body, mc.Card.PAN) {
			t.Error("the limit page shows the card number")
		}
	})

	t.Run("audit/chain-verifies-with-every-reveal", func(t *testing.T) {
		events := s.auditTrail(t)
		checkReveals(t, events, reveals)
		denied := false
		for _, e := range events {
			if e.Event == audit.EventRevealDenied && e.Resource == mc.Token && e.Actor == alice.ID && e.Outcome == audit.OutcomeDenied {
				denied = true
			}
		}
		if !denied {
			t.Error("the refused (limited) reveal is not in the audit log as reveal.denied")
		}
	})
}

// submitNav clicks a submit button and waits for the page the form leads
// to (redirects followed); it returns that page's HTTP status, failing t if
// want is not 0 and differs.
func submitNav[S chromedp.Selectable](t *testing.T, tab context.Context, sel S, want int64) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(sel))
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	if want != 0 && resp.Status != want {
		t.Fatalf("submit: %s answered %d, want %d", resp.URL, resp.Status, want)
	}
	return resp.Status
}

// text is the visible text of the element with id.
func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("text of #%s: %v", id, err)
	}
	return strings.TrimSpace(v)
}

func bodyText(t *testing.T, ctx context.Context) string {
	t.Helper()
	v, err := evalString(ctx, `document.body ? document.body.innerText : ""`)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// resultTokens lists the token ids of the back office's search results.
func resultTokens(t *testing.T, ctx context.Context) []string {
	t.Helper()
	raw, err := evalString(ctx, `JSON.stringify(Array.from(document.querySelectorAll("#bo-results a.bo-tok")).map(function (a) { return a.textContent.trim(); }))`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	_ = json.Unmarshal([]byte(raw), &ids)
	return ids
}
