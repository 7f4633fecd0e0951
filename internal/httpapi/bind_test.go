package httpapi

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/internal/apierr"
)

type bindReq struct {
	A     string         `json:"a"`
	Inner map[string]any `json:"inner"`
	List  []any          `json:"list"`
}

func (bindReq) Validate() error { return nil }

func TestBindDuplicateKeys(t *testing.T) {
	tests := []struct {
		name, body, code string
	}{
		{"200/plain", `{"a":"x","inner":{"a":1,"b":{"a":2}},"list":[{"a":1},{"a":2}]}`, ""},
		{"200/same-key-in-sibling-objects", `{"list":[{"k":1},{"k":1}],"inner":{"k":{"k":1}}}`, ""},
		{"400/top-level", `{"a":"x","a":"y"}`, "duplicate_key"},
		{"400/nested", `{"inner":{"b":1,"c":[1,{}],"b":2}}`, "duplicate_key"},
		{"400/in-array", `{"list":[{"x":1},{"x":1,"x":2}]}`, "duplicate_key"},
		{"400/deep", `{"inner":{"p":{"q":{"r":1,"r":1}}}}`, "duplicate_key"},
		{"400/escaped-equal", `{"a":"x","\u0061":"y"}`, "duplicate_key"},
		{"400/case-folded", `{"a":"x","A":"y"}`, "duplicate_key"},
		{"400/broken", `{"a":`, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r bindReq
			err := Bind([]byte(tt.body), &r)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Bind: %v", err)
				}
				return
			}
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Code != tt.code {
				t.Fatalf("Bind = %v, want code %s", err, tt.code)
			}
		})
	}
}

type failingReq struct{ err error }

func (r failingReq) Validate() error { return r.err }

// TestBindShowsOnlyPublicReason: a validation refusal shows the rule its
// field error declares, or the generic message; never the error's text.
func TestBindShowsOnlyPublicReason(t *testing.T) {
	const secret = "10.9.8.7 hunter2"
	tests := []struct {
		name, message string
		err           error
	}{
		{"400/field-error", "Invalid field: card_jwe is required", &FieldError{Field: "card_jwe", Reason: "is required"}},
		{"400/wrapped-field-error-cause-hidden", "Invalid field: card_jwe is required", fmt.Errorf("%w: %s", &FieldError{Field: "card_jwe", Reason: "is required"}, secret)},
		{"400/untyped-generic", apierr.InvalidField.Message, errors.New("card_jwe: " + secret)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ae *apierr.Error
			if err := Bind([]byte(`{}`), &failingReq{tt.err}); !errors.As(err, &ae) || ae.Code != apierr.InvalidField.Code || ae.Status != 400 {
				t.Fatalf("Bind = %v", err)
			}
			if ae.Message != tt.message || strings.Contains(ae.Message, "hunter2") {
				t.Fatalf("message %q, want %q", ae.Message, tt.message)
			}
			if !errors.Is(ae, tt.err) {
				t.Fatal("the cause must stay wrapped for the log")
			}
		})
	}
}
