package httpapi

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

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
		// encoding/json matches names by Unicode simple folding
		// (bytes.EqualFold): U+017F LATIN SMALL LETTER LONG S binds as "s",
		// U+212A KELVIN SIGN as "k". Lower-casing sees neither.
		{"400/folded-long-s", `{"a":"x","ſ":"y","s":"z"}`, "duplicate_key"},
		{"400/folded-kelvin", `{"k":"x","\u212a":"y"}`, "duplicate_key"},
		{"400/folded-nested", `{"inner":{"ſ":1,"S":2}}`, "duplicate_key"},
		{"200/distinct-non-ascii", `{"inner":{"é":1,"e":2,"ß":3,"ss":4}}`, ""},
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

// TestFoldNameIsEqualFold: two one-rune names fold alike exactly when
// strings.EqualFold (encoding/json's rule) says they are equal, over the
// whole Basic Multilingual Plane and each rune's folding orbit.
func TestFoldNameIsEqualFold(t *testing.T) {
	for r := rune(0); r < 0x10000; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		a := string(r)
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if foldName(a) != foldName(string(f)) {
				t.Fatalf("%U and %U are EqualFold but fold to %q and %q", r, f, foldName(a), foldName(string(f)))
			}
		}
		if b := string(r + 1); strings.EqualFold(a, b) != (foldName(a) == foldName(b)) {
			t.Fatalf("%U, %U: EqualFold %v, foldName equal %v", r, r+1, strings.EqualFold(a, b), foldName(a) == foldName(b))
		}
	}
	if foldName("Session") != foldName("ſeſſion") || foldName("kid") != foldName("\u212aID") {
		t.Fatal("multi-rune names do not fold as EqualFold")
	}
}
