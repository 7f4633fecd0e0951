package sigauth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/keyservice/wire"
)

// TestClockSkewNamed: a valid signature whose time falls outside the
// window is told apart from other claim errors (the API answers 401
// clock_skew), and the refusal says both times; within the skew it passes.
func TestClockSkewNamed(t *testing.T) {
	al, k := newTestList(t)
	at := func(iat int64) string {
		c := goodClaims()
		c.Iat, c.Exp = iat, iat+30
		return sign(t, c, k.gwNew, "gw-new")
	}
	tests := []struct {
		name string
		auth string
		skew bool
		ok   bool
	}{
		{"401/clock_skew/caller-ahead", at(now.Unix() + 6), true, false},
		{"401/clock_skew/caller-behind", at(now.Unix() - 36), true, false},
		{"ok/caller-ahead-within-skew", at(now.Unix() + 5), false, true},
		{"ok/caller-behind-within-lifetime", at(now.Unix() - 35), false, true},
		{"401/claims/ttl-too-long-not-skew", func() string {
			c := goodClaims()
			c.Exp = c.Iat + 61
			return sign(t, c, k.gwNew, "gw-new")
		}(), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := &Verifier{Audience: "keyservice", Origins: []string{"https://keyservice.internal:8443"}, Skew: 5 * time.Second,
				Clients: al, Replay: newFakeReplay(), Now: func() time.Time { return now }}
			_, err := v.Verify(context.Background(), tc.auth, "POST", "/v1/inspect", body)
			if tc.ok {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if errors.Is(err, ErrClockSkew) != tc.skew {
				t.Fatalf("Verify: %v; ErrClockSkew %v, want %v", err, errors.Is(err, ErrClockSkew), tc.skew)
			}
			if tc.skew && !strings.Contains(err.Error(), now.UTC().Format(time.RFC3339)) {
				t.Errorf("refusal %q does not say the key service's time", err)
			}
		})
	}
	if wire.DefaultSkew != DefaultSkew {
		t.Fatalf("wire.DefaultSkew %s, sigauth.DefaultSkew %s", wire.DefaultSkew, DefaultSkew)
	}
}
