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
// enrols a passkey (a DevTools virtual authenticator) which a key-zone admin
// approves with `docker exec <keyservice> keyservice passkeys approve
// <fingerprint>`, searches tokens (masked only), reveals card numbers with a
// reason, each approved by the passkey and decrypted in the page from a JWE,
// until the key service's per-operator limit refuses one, and the audit
// chain, checked by `keyservice audit verify`, records every reveal with the
// approving passkey. The key service allows 2 reveals a minute here so the
// limit comes quickly.
func TestBackOffice(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{
		KeyServiceArgs: []string{"-reveal-per-minute", "2"},
		Operators:      []operatorSpec{{"alice", "revealer"}},
	})
	visa, mc := s.mustPay(t, brandCards[0]), s.mustPay(t, brandCards[1])
	alice := s.Operators["alice"]
	tab := newBrowser(t, "backoffice")
	if _, err := browsertest.AddVirtualAuthenticator(tab); err != nil {
		t.Fatal(err)
	}
	bo := s.BackofficeURL
	var reveals []revealRecord
	var secret, credential string

	t.Run("login/password-then-totp-enrolment", func(t *testing.T) {
		run(t, tab, 30*time.Second,
			browsertest.Navigate(bo+"/backoffice/login"),
			chromedp.WaitVisible(chromedp.ID("bo-username")),
			chromedp.SendKeys(chromedp.ID("bo-username"), alice.Username),
			chromedp.SendKeys(chromedp.ID("bo-password"), alice.Password),
		)
		submitNav(t, tab, chromedp.CSS(`form[action="/backoffice/login"] button[type="submit"]`), http.StatusOK)
		run(t, tab, 10*time.Second, chromedp.WaitVisible(chromedp.ID("bo-totp-secret")))
		secret = strings.ReplaceAll(text(t, tab, "bo-totp-secret"), " ", "")
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

	t.Run("passkey/enrolled-then-approved-in-the-key-zone", func(t *testing.T) {
		// The next TOTP step (the server accepts one step either side, each once).
		code, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		run(t, tab, 30*time.Second,
			browsertest.Navigate(bo+"/backoffice/passkeys"),
			chromedp.WaitVisible(chromedp.ID("bo-pk-password")),
			chromedp.SendKeys(chromedp.ID("bo-pk-password"), alice.Password),
			chromedp.SendKeys(chromedp.ID("bo-pk-code"), code),
			chromedp.Click(chromedp.ID("bo-passkey-btn")),
		)
		waitJS(t, tab, `!document.getElementById("bo-passkey-result").hidden || !document.getElementById("bo-passkey-error").hidden`, 20*time.Second)
		fp := text(t, tab, "bo-pk-fingerprint")
		if fp == "" {
			t.Fatalf("enrolment failed in the page: %s", bodyText(t, tab))
		}
		out := s.approvePasskey(t, fp)
		if !strings.Contains(out, fp) {
			t.Errorf("approve printed %q, want the fingerprint %s", out, fp)
		}
		run(t, tab, 30*time.Second, browsertest.Navigate(bo+"/backoffice/passkeys"), chromedp.WaitVisible(chromedp.ID("bo-passkeys")))
		if row := text(t, tab, "bo-passkeys"); !strings.Contains(row, fp) || !strings.Contains(row, "approved") {
			t.Errorf("passkeys list after approval: %q", row)
		}
	})

	t.Run("search/masked-by-last4-and-token", func(t *testing.T) {
		// Each search is a navigation: wait for its page, not for a table
		// that the unfiltered list already shows.
		run(t, tab, 30*time.Second,
			browsertest.Navigate(bo+"/backoffice/tokens"),
			chromedp.WaitVisible(chromedp.ID("f-last4")),
			chromedp.SendKeys(chromedp.ID("f-last4"), mc.Card.Last4))
		submitNav(t, tab, chromedp.ID("bo-search"), http.StatusOK)
		run(t, tab, 10*time.Second, chromedp.WaitVisible(chromedp.ID("bo-results")))
		if got := resultTokens(t, tab); len(got) != 1 || got[0] != mc.Token {
			t.Errorf("search last4=%s: %v, want [%s]", mc.Card.Last4, got, mc.Token)
		}
		run(t, tab, 30*time.Second,
			browsertest.Navigate(bo+"/backoffice/tokens"),
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

	// revealIn reveals p's card in the page (the passkey approves by itself)
	// and returns the number shown ("" when refused) and the page's error.
	revealIn := func(t *testing.T, p payment, reason string) (string, string) {
		run(t, tab, 30*time.Second,
			browsertest.Navigate(bo+"/backoffice/tokens/"+p.Token),
			chromedp.WaitVisible(chromedp.ID("bo-reason")),
			chromedp.SendKeys(chromedp.ID("bo-reason"), reason),
			chromedp.Click(chromedp.ID("bo-reveal-btn")),
		)
		waitJS(t, tab, `document.getElementById("bo-reveal").dataset.state === "shown" || !document.getElementById("bo-reveal-error").hidden`, 30*time.Second)
		shown, err := evalString(tab, `document.getElementById("bo-pan").textContent`)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := evalString(tab, `document.getElementById("bo-reveal-error").hidden ? "" : document.getElementById("bo-reveal-error").textContent`)
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(shown, " ", ""), msg
	}

	t.Run("reveal/approved-by-passkey-decrypted-in-the-page", func(t *testing.T) {
		for i, p := range []payment{mc, visa} {
			reason := "E2E chargeback ticket #" + string(rune('1'+i))
			got, msg := revealIn(t, p, reason)
			if got != p.Card.PAN {
				t.Fatalf("revealed %q, want %s's number (page says %q)", got, p.Card.Brand, msg)
			}
			credential = text(t, tab, "bo-reveal-cred")
			reveals = append(reveals, revealRecord{Token: p.Token, Actor: alice.ID, Reason: reason})
		}
	})

	t.Run("429/reveal-limit-reached", func(t *testing.T) {
		got, msg := revealIn(t, mc, "E2E one reveal too many")
		if got != "" || !strings.Contains(msg, "Reveal limit reached") {
			t.Fatalf("third reveal within a minute: shown %q, message %q", got, msg)
		}
		if body := bodyText(t, tab); strings.Contains(body, mc.Card.PAN) {
			t.Error("the refused reveal's page shows the card number")
		}
	})

	t.Run("audit/chain-verifies-with-every-reveal", func(t *testing.T) {
		events := s.auditTrail(t)
		checkReveals(t, events, reveals)
		denied, approved := false, 0
		for _, e := range events {
			if e.Event == audit.EventRevealDenied && e.Resource == mc.Token && e.Actor == alice.ID && e.Outcome == audit.OutcomeDenied {
				denied = true
			}
			if e.Event == audit.EventReveal && e.Outcome == audit.OutcomeSuccess && e.Credential == credential && credential != "" {
				approved++
			}
			if e.Event == audit.EventPasskeyApprove && e.Credential != credential {
				t.Errorf("approval of another passkey than the one that revealed: %+v", e)
			}
		}
		if !denied {
			t.Error("the refused (limited) reveal is not in the audit log as reveal.denied")
		}
		if approved != len(reveals) {
			t.Errorf("%d reveals audited with the approving passkey %s, want %d", approved, credential, len(reveals))
		}
	})
}

// waitJS waits until the page's expression is true, polling from Go (the
// pages forbid the eval chromedp.Poll needs).
func waitJS(t *testing.T, ctx context.Context, expr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v, err := evalString(ctx, `String(Boolean(`+expr+`))`)
		if err == nil && v == "true" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error: %v)", expr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
