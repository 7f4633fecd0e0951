package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/internal/apierr"
)

// failingCreate is a session store whose Create fails with err.
type failingCreate struct {
	sessions.Store
	err error
}

func (f failingCreate) Create(context.Context, sessions.Session) (sessions.Session, error) {
	return sessions.Session{}, f.err
}

// TestCreateSessionPublicReason: an invalid_field answer shows the rule the
// store declared (its FieldError) and nothing else of the error, even when
// the error's text carries an internal cause.
func TestCreateSessionPublicReason(t *testing.T) {
	const secret = "dial tcp 10.9.8.7:6379: AUTH hunter2"
	tests := []struct {
		name, message string
		err           error
	}{
		{"400/typed-reason-shown-cause-hidden", "Invalid field: return_url must be https",
			fmt.Errorf("store: %w: %s", &sessions.FieldError{Field: "return_url", Reason: "must be https"}, secret)},
		{"400/untyped-invalid-generic", apierr.InvalidField.Message,
			fmt.Errorf("%w: return_url: %s", sessions.ErrInvalid, secret)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := boltStores(t)
			s.sessions = failingCreate{Store: s.sessions, err: tt.err}
			f := newTestServer(t, fixtureOpt{stores: &s})
			a := f.do(t, http.MethodPost, "/v1/checkout/sessions", f.secret, map[string]any{})
			if a.status != http.StatusBadRequest || a.code() != "invalid_field" {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if strings.Contains(string(a.body), "hunter2") || strings.Contains(string(a.body), "10.9.8.7") {
				t.Fatalf("internal cause reached the answer: %s", a.body)
			}
			if msg := a.json["error"].(map[string]any)["message"]; msg != tt.message {
				t.Fatalf("message %q, want %q", msg, tt.message)
			}
		})
	}
}
