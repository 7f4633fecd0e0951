package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/blindgate/blindgate/internal/atomicfile"
	"github.com/blindgate/blindgate/internal/panshape"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// retireAllowed decides whether kid may be retired, and returns what the
// audit record says about it. The key zone cannot see the token store, so
// it asks for the gateway's count (`blindgate tokens count-by-kid -out`):
// retiring a version that still opens tokens makes them unusable (the key
// stays in the sealed archive, but no command returns it to service).
// -force retires without a count, or despite one, for a reason that is
// audited: a compromised key is retired at once (PCI DSS 3.7.5), whatever
// it still opens.
func retireAllowed(kr *keyring.Keyring, kid, countsPath, force string, now time.Time) (string, error) {
	if panshape.Contains(force) {
		return "", errors.New("keys retire: the -force reason holds something shaped like a card number")
	}
	vs := kr.Versions()
	i := -1
	for j, v := range vs {
		if v.Kid == kid {
			i = j
		}
	}
	switch {
	case i < 0:
		return "", keyring.ErrUnknownKid
	case vs[i].State == keyring.StateActive:
		return "", keyring.ErrLastActive
	case vs[i].State == keyring.StateRetired:
		return "already retired", nil
	case i == len(vs)-1:
		return "", fmt.Errorf("keys retire: %s has no successor in the keyring", kid)
	}
	// Versions are oldest first: the next one replaced this one.
	inactiveSince := vs[i+1].Created
	if countsPath == "" {
		if force == "" {
			return "", fmt.Errorf("keys retire: give -token-counts <file> (from `blindgate tokens count-by-kid -out <file>`, taken at least %s after %s; it must show no token under %s), or -force <reason> to retire regardless", wire.RetireGrace, inactiveSince.UTC().Format(time.RFC3339), kid)
		}
		return truncate("forced without a token count: "+force, 1000), nil
	}
	b, err := atomicfile.ReadCapped(countsPath, 1<<20)
	if err != nil {
		return "", fmt.Errorf("keys retire: token counts: %w", err)
	}
	c, err := wire.ParseTokenCounts(b)
	if err == nil {
		err = c.AllowsRetire(kid, kr.Deployment(), inactiveSince, now)
	}
	switch {
	case err != nil && force == "":
		return "", fmt.Errorf("keys retire: refused: %w", err)
	case err != nil:
		return truncate(fmt.Sprintf("forced despite the token count (%v): %s", err, force), 1000), nil
	}
	return fmt.Sprintf("token count of %s: none of %d tokens under it", c.GeneratedAt.UTC().Format(time.RFC3339), c.Total), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
