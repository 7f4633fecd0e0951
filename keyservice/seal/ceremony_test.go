package seal

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/keyring"
)

func newCeremony(t *testing.T, shares int, limits CeremonyLimits) (*Ceremony, [][]byte, string) {
	t.Helper()
	h, parts, _ := newSealed(t, shares)
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	clock := time.Unix(1_700_000_000, 0)
	lim := ratelimit.NewMemoryWith(ratelimit.MemoryOptions{Now: func() time.Time { return clock }})
	return NewCeremony(h, l, lim, limits, nil), parts, path
}

func unsealEvents(t *testing.T, path string) []audit.Event {
	t.Helper()
	evs, _, err := audit.FileTrail(path).Query(context.Background(), audit.Filter{Event: audit.EventUnseal})
	if err != nil {
		t.Fatal(err)
	}
	return evs // newest first
}

// TestCeremonyAuditsOutcomes: a wrong share is a failure, a share after
// unseal is denied without effect, never a success.
func TestCeremonyAuditsOutcomes(t *testing.T) {
	ctx := context.Background()
	c, parts, path := newCeremony(t, 2, DefaultCeremonyLimits())
	wrong, _ := keyring.GenerateMasterKey()
	enc := keyring.EncodeMasterKey

	p, err := c.Submit(ctx, "10.0.0.1", "", enc(parts[0]))
	if err != nil || p.Nonce == "" {
		t.Fatalf("first share: %+v %v", p, err)
	}
	if _, err := c.Submit(ctx, "10.0.0.2", p.Nonce, enc(wrong)); !errors.Is(err, ErrBadShare) {
		t.Fatalf("wrong share: %v", err)
	}
	if _, err := c.Submit(ctx, "10.0.0.2", "", "not base64!"); !errors.Is(err, ErrInvalidShare) {
		t.Fatalf("garbage share: %v", err)
	}
	p, _ = c.Submit(ctx, "10.0.0.1", "", enc(parts[0]))
	if p, err = c.Submit(ctx, "10.0.0.3", p.Nonce, enc(parts[1])); err != nil || p.Sealed {
		t.Fatalf("second share: %+v %v", p, err)
	}
	if _, err := c.Submit(ctx, "10.0.0.4", "", enc(wrong)); !errors.Is(err, ErrAlreadyUnsealed) {
		t.Fatalf("share after unseal: %v", err)
	}

	evs := unsealEvents(t, path)
	want := []struct{ outcome, code string }{
		{audit.OutcomeDenied, "already_unsealed"},
		{audit.OutcomeSuccess, ""},
		{audit.OutcomeSuccess, ""},
		{audit.OutcomeFailure, "invalid_field"},
		{audit.OutcomeFailure, "unseal_failed"},
		{audit.OutcomeSuccess, ""},
	}
	if len(evs) != len(want) {
		t.Fatalf("%d unseal events, want %d: %+v", len(evs), len(want), evs)
	}
	for i, w := range want {
		if evs[i].Outcome != w.outcome || evs[i].Code != w.code || evs[i].Origin == "" {
			t.Errorf("event %d (newest first): %s/%s from %q, want %s/%s", i, evs[i].Outcome, evs[i].Code, evs[i].Origin, w.outcome, w.code)
		}
	}
}

func TestCeremonyRateLimits(t *testing.T) {
	ctx := context.Background()
	limits := CeremonyLimits{
		PerIP:  ratelimit.Limit{Name: "unseal-ip", Rate: 2, Period: time.Minute, Burst: 2},
		Global: ratelimit.Limit{Name: "unseal-all", Rate: 3, Period: time.Minute, Burst: 3},
	}
	c, parts, path := newCeremony(t, 2, limits)
	junk := keyring.EncodeMasterKey(make([]byte, 32))
	for i := range 2 {
		if _, err := c.Submit(ctx, "10.0.0.9", "ffff", junk); !errors.Is(err, ErrNonceMismatch) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	var rl *ratelimit.Refused
	if _, err := c.Submit(ctx, "10.0.0.9", "ffff", junk); !errors.As(err, &rl) || rl.RetryAfter <= 0 {
		t.Fatalf("3rd attempt from one address: %v", err)
	}
	if _, err := c.Reset(ctx, "10.0.0.9", "ffff"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("reset from a limited address: %v", err)
	}
	if _, err := c.Submit(ctx, "10.0.0.10", "", keyring.EncodeMasterKey(parts[0])); err != nil {
		t.Fatalf("another address: %v", err)
	}
	if _, err := c.Submit(ctx, "10.0.0.11", "", junk); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("global limit: %v", err)
	}
	if p := c.holder.Progress(); p.Have != 1 {
		t.Fatalf("refused attempts changed the round: %+v", p)
	}
	denied := 0
	for _, e := range unsealEvents(t, path) {
		if e.Code == "rate_limited" && e.Outcome == audit.OutcomeDenied {
			denied++
		}
	}
	if denied != 3 {
		t.Fatalf("%d refused attempts audited, want 3", denied)
	}
}

type downLimiter struct{}

func (downLimiter) Allow(context.Context, string, ratelimit.Limit) (ratelimit.Result, error) {
	return ratelimit.Result{}, fmt.Errorf("%w: connection refused", ratelimit.ErrUnavailable)
}

// TestCeremonyLimiterDownRefuses: a limiter that cannot answer refuses the
// attempt as rate limited (fail closed), with a minute to wait.
func TestCeremonyLimiterDownRefuses(t *testing.T) {
	c, parts, _ := newCeremony(t, 2, DefaultCeremonyLimits())
	c.limiter.Limiter = downLimiter{}
	_, err := c.Submit(context.Background(), "10.0.0.9", "", keyring.EncodeMasterKey(parts[0]))
	var rl *ratelimit.Refused
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &rl) || rl.RetryAfter != time.Minute {
		t.Fatalf("Submit with the limiter down = %v, want ErrRateLimited with a 1m retry", err)
	}
	if p := c.holder.Progress(); p.Have != 0 {
		t.Fatalf("a refused share counted: %+v", p)
	}
}
