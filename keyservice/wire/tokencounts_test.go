package wire

import (
	"strings"
	"testing"
	"time"
)

// TestTokenCountsAllowRetire: a count lets a version be retired only when
// it is this deployment's, fresh, late enough after the rotation, and shows
// no token under the version.
func TestTokenCountsAllowRetire(t *testing.T) {
	rotated := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // when kek-old stopped being active
	now := rotated.Add(3 * time.Hour)
	good := TokenCounts{Audience: "ks_prod", GeneratedAt: now.Add(-30 * time.Minute), Total: 5, Kids: map[string]int{"kek-new": 5}}
	cases := []struct {
		name string
		edit func(c *TokenCounts)
		aud  string
		want string // "" = allowed
	}{
		{"ok/none-left", func(*TokenCounts) {}, "ks_prod", ""},
		{"ok/zero-listed", func(c *TokenCounts) { c.Kids["kek-old"] = 0 }, "ks_prod", ""},
		{"ok/keyring-without-deployment", func(*TokenCounts) {}, "", ""},
		{"refused/tokens-left", func(c *TokenCounts) { c.Kids["kek-old"], c.Total = 2, 7 }, "ks_prod", "2 tokens are still under kek-old"},
		{"refused/other-deployment", func(*TokenCounts) {}, "ks_staging", "is for key service"},
		{"refused/too-soon-after-rotation", func(c *TokenCounts) { c.GeneratedAt = rotated.Add(RetireGrace - time.Minute) }, "ks_prod", "less than"},
		{"refused/stale", func(c *TokenCounts) { c.GeneratedAt = now.Add(-CountMaxAge - time.Minute) }, "ks_prod", "count again"},
		{"refused/future", func(c *TokenCounts) { c.GeneratedAt = now.Add(time.Hour) }, "ks_prod", "future"},
		{"refused/total-mismatch", func(c *TokenCounts) { c.Total = 4 }, "ks_prod", "add up"},
		{"refused/negative", func(c *TokenCounts) { c.Kids["kek-x"], c.Total = -1, 4 }, "ks_prod", "bad entry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.Kids = map[string]int{}
			for k, v := range good.Kids {
				c.Kids[k] = v
			}
			tc.edit(&c)
			err := c.AllowsRetire("kek-old", tc.aud, rotated, now)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("AllowsRetire = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseTokenCountsStrict(t *testing.T) {
	for _, bad := range []string{
		`{"audience":"ks_a","generated_at":"2030-01-01T00:00:00Z","total":0,"kids":{},"extra":1}`,
		`{"audience":"ks_a","generated_at":"2030-01-01T00:00:00Z","total":0,"kids":{}} {}`,
		`{"audience":"ks_a","total":0,"kids":{}}`,
	} {
		if _, err := ParseTokenCounts([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	if _, err := ParseTokenCounts([]byte(`{"audience":"ks_a","generated_at":"2030-01-01T00:00:00Z","total":3,"kids":{"k":3}}`)); err != nil {
		t.Fatal(err)
	}
}
