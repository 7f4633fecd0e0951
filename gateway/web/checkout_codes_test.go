package web

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/gateway/ingest"
	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/httpapi"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/client"
)

// TestSubmitAnswersOnlyCheckoutCodes: whatever ingest or the key service
// reports, the page gets a code from checkoutCodes, so that list is the true
// set of codes the page can receive.
func TestSubmitAnswersOnlyCheckoutCodes(t *testing.T) {
	listed := map[string]*apierr.Error{}
	for _, e := range checkoutCodes() {
		listed[e.Code] = e
	}
	causes := []error{
		&ratelimit.Refused{Limit: "ip", RetryAfter: time.Second},
		ingest.ErrInvalid, ingest.ErrUnavailable, ingest.ErrLimited,
		sessions.ErrNotFound, sessions.ErrExpired, sessions.ErrCompleted, sessions.ErrTooManyAttempts, sessions.ErrInvalid,
		errors.New("dial tcp: connection refused"),
	}
	// Every code the key service could send, with its status, and one it
	// might send one day.
	for _, e := range apierr.Codes() {
		causes = append(causes, fmt.Errorf("inspect: %w", &client.Error{Status: e.Status, Code: e.Code, Message: e.Message}))
	}
	causes = append(causes, &client.Error{Status: 422, Code: "card_new_verdict"})
	for _, cause := range causes {
		ae := httpapi.From(submitError(cause))
		want, ok := listed[ae.Code]
		if !ok {
			t.Errorf("%v answers %q, which checkoutCodes lacks", cause, ae.Code)
			continue
		}
		if ae.Status != want.Status {
			t.Errorf("%v answers %q with %d, the table says %d", cause, ae.Code, ae.Status, want.Status)
		}
	}
	// A key-service outage, sealed or limited, is ours: retry later.
	for _, e := range []*apierr.Error{apierr.Sealed, apierr.RateLimited, apierr.Unauthenticated, apierr.Replay, apierr.AuditFailed} {
		if got := httpapi.From(submitError(&client.Error{Status: e.Status, Code: e.Code})); got.Code != apierr.KeyServiceDown.Code {
			t.Errorf("key service %s reached the page as %s", e.Code, got.Code)
		}
	}
}

// TestPageHasMessageForEveryCheckoutCode: checkout.js maps every code the
// page can receive to a message, and the message exists in every language.
func TestPageHasMessageForEveryCheckoutCode(t *testing.T) {
	a, err := checkout.NewAssets()
	if err != nil {
		t.Fatal(err)
	}
	messages := a.CodeMessages()
	for _, e := range checkoutCodes() {
		key, ok := messages[e.Code]
		if !ok {
			t.Errorf("checkout.js has no message for %q", e.Code)
			continue
		}
		for _, lang := range checkout.Languages() {
			if _, s := a.Strings(lang); s[key] == "" {
				t.Errorf("%s: %q maps to %s, which is empty", lang, e.Code, key)
			}
		}
	}
}
