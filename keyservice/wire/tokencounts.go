package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// TokenCounts is the gateway's count of its stored tokens by KEK version,
// written by `blindgate tokens count-by-kid -out` and read by `keyservice
// keys retire -token-counts` before it retires a version: the key zone
// cannot see the token store, so the count crosses on a file the operator
// carries. It is a guard against retiring a version that still opens
// tokens (a mistake that leaves them unusable), not against the operator:
// whoever can retire holds the master key.
type TokenCounts struct {
	// Audience is the key service the gateway is configured for (its
	// -keyservice-audience): a count of staging's tokens does not let
	// production retire a version.
	Audience    string         `json:"audience"`
	GeneratedAt time.Time      `json:"generated_at"`
	Total       int            `json:"total"`
	Kids        map[string]int `json:"kids"`
}

// Retirement rules. A version that stopped being active can still receive
// new ciphertexts for a while: the checkout page reads the public keys at
// each payment, browsers cache them for 60 s, the gateway refreshes them
// at least every 10 minutes but serves a set it cannot refresh for up to an
// hour, and the key service inspects cards under a decrypt-only version. A
// count taken within RetireGrace of the rotation may miss tokens made after
// it. A count older than CountMaxAge is stale (a restored backup, a
// forgotten file).
const (
	RetireGrace = 2 * time.Hour
	CountMaxAge = 24 * time.Hour
	// countSkew tolerates clocks that disagree a little.
	countSkew = 5 * time.Minute
)

// ParseTokenCounts reads a count file strictly.
func ParseTokenCounts(b []byte) (TokenCounts, error) {
	var c TokenCounts
	if err := decodeStrict(b, &c); err != nil {
		return c, fmt.Errorf("token counts: %w", err)
	}
	return c, c.Validate()
}

func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

// Validate checks the count's shape.
func (c TokenCounts) Validate() error {
	if c.GeneratedAt.IsZero() || c.Kids == nil {
		return errors.New("token counts: generated_at and kids are required")
	}
	sum := 0
	for kid, n := range c.Kids {
		if kid == "" || len(kid) > 128 || n < 0 {
			return fmt.Errorf("token counts: bad entry %q: %d", kid, n)
		}
		sum += n
	}
	if sum != c.Total {
		return fmt.Errorf("token counts: the counts add up to %d, total says %d", sum, c.Total)
	}
	return nil
}

// AllowsRetire says whether this count lets kid be retired now by the key
// service whose deployment id is audience ("" for a keyring made before
// deployment ids): the count is this deployment's, fresh, taken at least
// RetireGrace after kid stopped being active (inactiveSince, the creation
// of the version that replaced it), and no token is under kid.
func (c TokenCounts) AllowsRetire(kid, audience string, inactiveSince, now time.Time) error {
	if err := c.Validate(); err != nil {
		return err
	}
	switch {
	case audience != "" && c.Audience != audience:
		return fmt.Errorf("the token count is for key service %q, this keyring is %q", c.Audience, audience)
	case c.GeneratedAt.After(now.Add(countSkew)):
		return fmt.Errorf("the token count is dated %s, in the future", c.GeneratedAt.UTC().Format(time.RFC3339))
	case now.Sub(c.GeneratedAt) > CountMaxAge:
		return fmt.Errorf("the token count is from %s, more than %s ago: count again", c.GeneratedAt.UTC().Format(time.RFC3339), CountMaxAge)
	case c.Kids[kid] > 0:
		return fmt.Errorf("%d tokens are still under %s: rewrap them first (the gateway's background rewrap, or blindgate rewrap -kid %s), then count again", c.Kids[kid], kid, kid)
	case c.GeneratedAt.Before(inactiveSince.Add(RetireGrace)):
		return fmt.Errorf("the token count (%s) was taken less than %s after %s stopped being active (%s): tokens may still have been made under it; count again after %s",
			c.GeneratedAt.UTC().Format(time.RFC3339), RetireGrace, kid, inactiveSince.UTC().Format(time.RFC3339), inactiveSince.Add(RetireGrace).UTC().Format(time.RFC3339))
	}
	return nil
}
