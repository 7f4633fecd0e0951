package checkout_test

import (
	"testing"

	"github.com/blindgate/blindgate/internal/apierr"
)

// TestPageCodesAreDeclared: every code the page maps is a code of the one
// table, internal/apierr/codes.go, so the page never waits for a code that no
// server sends. (gateway/web checks the other way: every code its checkout
// endpoints can answer has a message here.)
func TestPageCodesAreDeclared(t *testing.T) {
	a := newAssets(t)
	declared := map[string]bool{}
	for _, e := range apierr.Codes() {
		declared[e.Code] = true
	}
	codes := a.CodeMessages()
	if len(codes) < 10 {
		t.Fatalf("checkout.js maps only %d codes", len(codes))
	}
	for code, key := range codes {
		if !declared[code] {
			t.Errorf("checkout.js maps %q (to %s), which internal/apierr/codes.go does not declare", code, key)
		}
		for _, lang := range a.Languages() {
			if _, s := a.Strings(lang); s[key] == "" {
				t.Errorf("%s: no %s message for %q", lang, key, code)
			}
		}
	}
}
