package backofficehttp_test

import (
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/blindgate/blindgate/internal/audit"
)

// cardTraces are the forms a revealed card could leave behind: the number
// as digits, grouped, its middle digits (never shown masked), and the
// cardholder's name as the fixture stored it.
func cardTraces() []string {
	return []string{testPAN, testPANShown, testPAN[6:12], `"name":"T"`}
}

// TestRevealLeavesNoCardAtTheGateway: after reveals through the gateway
// (approved, and refused), the gateway's answers, its logs (at debug
// level), its metrics and its own audit log hold no card number: the card
// crossed it only as a JWE to the operator's browser key. The key service
// did decrypt (the test opens the JWE with the browser key), so the
// absence is not for want of a reveal.
func TestRevealLeavesNoCardAtTheGateway(t *testing.T) {
	var captured strings.Builder
	f := newFixture(t, fixtureOpts{reveals: 3, log: &captured})
	c := f.addRevealer(t, "rita", "")

	var answers []string
	for _, reason := range []string{"leak check one", "leak check two"} {
		r := c.reveal(t, f.tokA.ID, reason)
		if r.status != 200 || r.card.PAN != testPAN {
			t.Fatalf("reveal: %d %s", r.status, r.body)
		}
		answers = append(answers, r.body, r.challenge.body)
	}
	r := c.reveal(t, f.tokA.ID, "leak check refused", revealOpts{signReason: "another reason"})
	if r.code != "passkey_invalid" {
		t.Fatalf("refused reveal: %d %s", r.status, r.body)
	}
	answers = append(answers, r.body)

	rec := httptest.NewRecorder()
	promhttp.HandlerFor(f.metrics.Registry(), promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	metrics := rec.Body.String()
	if !strings.Contains(metrics, `/backoffice/tokens/:id/reveal`) {
		t.Fatalf("the metrics do not show the reveals, so their absence of card data proves nothing:\n%.2000s", metrics)
	}
	gwAudit, err := os.ReadFile(f.gwAudit)
	if err != nil {
		t.Fatal(err)
	}
	// Three asked for (recorded before the key service is asked), one refused.
	if evs := f.gwEvents(t, audit.Filter{Event: audit.EventReveal}); len(evs) != 3 {
		t.Fatalf("gateway audit has %d reveals", len(evs))
	}
	if evs := f.gwEvents(t, audit.Filter{Event: audit.EventRevealDenied}); len(evs) != 1 || evs[0].Code != "passkey_invalid" {
		t.Fatalf("gateway audit refusals: %+v", evs)
	}
	if !strings.Contains(captured.String(), "request refused") {
		t.Fatalf("the log capture saw nothing of the refused reveal:\n%s", captured.String())
	}

	for what, text := range map[string]string{
		"answers": strings.Join(answers, "\n"), "logs": captured.String(), "metrics": metrics, "audit log": string(gwAudit),
	} {
		for _, trace := range cardTraces() {
			if strings.Contains(text, trace) {
				t.Errorf("the gateway's %s hold %q", what, trace)
			}
		}
	}
}
