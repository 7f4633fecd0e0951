package passkeys

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/nonce"
)

type nopAudit struct{}

func (nopAudit) Append(_ context.Context, e audit.Event) (audit.Event, error) { return e, nil }

type downLimiter struct{}

func (downLimiter) Allow(context.Context, string, ratelimit.Limit) (ratelimit.Result, error) {
	return ratelimit.Result{}, ratelimit.ErrUnavailable
}

// TestChallengeBudget: a client gets nonces (reveal and enrolment
// challenges together) only within its budget, so a compromised gateway
// cannot fill the key zone's nonce store; past it the refusal is a rate
// limit and no nonce is stored, and a limiter that cannot answer issues
// none either.
func TestChallengeBudget(t *testing.T) {
	dir := t.TempDir()
	reg := openRegistry(t, filepath.Join(dir, "passkeys.json"))
	_, e := newCred(t, "op_1")
	if err := reg.AddPending(e); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Approve(e.ID(), "test", t0); err != nil {
		t.Fatal(err)
	}
	v, err := passkey.New(passkey.RP{ID: testRPID, Origins: []string{testOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	newSvc := func(l ratelimit.Limiter, store nonce.Store) *Service {
		s, err := New(Config{Registry: reg, Nonces: store, Verifier: v, Audit: nopAudit{}, Limiter: l,
			ChallengeLimit: ratelimit.Limit{Name: "challenge-client", Rate: 2, Period: time.Hour, Burst: 2}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()

	t.Run("429/past-the-budget-reveal-and-enrolment-together", func(t *testing.T) {
		store := nonce.NewMemory(nil, 0)
		s := newSvc(ratelimit.NewMemory(), store)
		if _, err := s.RevealChallenge(ctx, "backoffice", "", "op_1", "tok_1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PasskeyChallenge(ctx, "backoffice", "op_1"); err != nil {
			t.Fatal(err)
		}
		var refused *ratelimit.Refused
		if _, err := s.RevealChallenge(ctx, "backoffice", "", "op_1", "tok_1"); !errors.As(err, &refused) {
			t.Fatalf("third reveal challenge: %v, want a rate-limit refusal", err)
		}
		if _, err := s.PasskeyChallenge(ctx, "backoffice", "op_1"); !errors.As(err, &refused) {
			t.Fatalf("third challenge (enrolment): %v, want a rate-limit refusal", err)
		}
		// Another client has its own budget.
		if _, err := s.RevealChallenge(ctx, "other", "", "op_1", "tok_1"); err != nil {
			t.Fatalf("another client: %v", err)
		}
	})
	t.Run("503/limiter-down-no-nonce", func(t *testing.T) {
		s := newSvc(downLimiter{}, nonce.NewMemory(nil, 0))
		if _, err := s.RevealChallenge(ctx, "backoffice", "", "op_1", "tok_1"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("reveal challenge with the limiter down: %v, want ErrUnavailable", err)
		}
		if _, err := s.PasskeyChallenge(ctx, "backoffice", "op_1"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("enrolment challenge with the limiter down: %v, want ErrUnavailable", err)
		}
	})
}
