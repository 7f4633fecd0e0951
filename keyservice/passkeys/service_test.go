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
	"github.com/blindgate/blindgate/keyservice/admit"
	"github.com/blindgate/blindgate/keyservice/nonce"
	"github.com/blindgate/blindgate/keyservice/replay"
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

// TestApproveClaimsFirst: Approve claims the request's jti before it takes
// the nonce (Config.Admit): a replay is admit's refusal and leaves the
// nonce untouched, a service with no replay cache refuses any claim, and
// a nonce refused after the claim is a nonce refusal with the jti used.
func TestApproveClaimsFirst(t *testing.T) {
	ctx := context.Background()
	reg := openRegistry(t, filepath.Join(t.TempDir(), "passkeys.json"))
	until := time.Now().Add(time.Minute)
	for _, tc := range []struct {
		name    string
		noCache bool
		claimed bool   // the jti was claimed before
		client  string // the client that asks; the nonce is backoffice's
		want    error
		spent   bool // the nonce is gone after
	}{
		{"200/claimed-then-taken", false, false, "backoffice", nil, true},
		{"409/replay-takes-nothing", false, true, "backoffice", admit.ErrReplay, false},
		{"503/no-replay-cache-takes-nothing", true, false, "backoffice", admit.ErrUnavailable, false},
		{"403/nonce-of-another-client-after-the-claim", false, false, "other", ErrNonce, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, store := replay.NewMemory(), nonce.NewMemory(nil, 0)
			cfg := Config{Mode: ModeNone, Registry: reg, Nonces: store, Audit: nopAudit{}, Admit: admit.New(rc, nil)}
			if tc.noCache {
				cfg.Admit = nil
			}
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ch, err := s.RevealChallenge(ctx, "backoffice", "", "op_1", "tok_1")
			if err != nil {
				t.Fatal(err)
			}
			if tc.claimed {
				if fresh, err := rc.Claim(ctx, "c:jti-approve-0000001", until); err != nil || !fresh {
					t.Fatal(fresh, err)
				}
			}
			_, err = s.Approve(ctx, tc.client, Approval{Actor: "op_1", Token: "tok_1", Nonce: ch.Nonce, Claim: admit.Claim{JTI: "c:jti-approve-0000001", Until: until}})
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("Approve: %v, want %v", err, tc.want)
			}
			if _, err := store.Take(ctx, ch.Nonce); errors.Is(err, nonce.ErrUnknown) != tc.spent {
				t.Fatalf("the nonce after: %v, want spent %v", err, tc.spent)
			}
			if fresh, _ := rc.Claim(ctx, "c:jti-approve-0000001", until); fresh != tc.noCache {
				t.Fatalf("the jti free after the approval: %v, want %v", fresh, tc.noCache)
			}
		})
	}
}
