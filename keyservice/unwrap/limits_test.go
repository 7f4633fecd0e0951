package unwrap

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/passkeys"
)

// roomy is a limit no test here reaches.
func roomy(name string) ratelimit.Limit {
	return ratelimit.Limit{Name: name, Rate: 1000, Period: time.Hour, Burst: 1000}
}

// tight allows two events and then refuses for an hour.
func tight(name string) ratelimit.Limit {
	return ratelimit.Limit{Name: name, Rate: 2, Period: time.Hour, Burst: 2}
}

func roomyLimits() Limits {
	return Limits{
		InspectPerClient: roomy("ic"), InspectClientDaily: roomy("icd"), InspectMerchantDaily: roomy("imd"),
		RevealActorShort: roomy("ras"), RevealActorDaily: roomy("rad"),
		RevealClientShort: roomy("rcs"), RevealClientDaily: roomy("rcd"),
		RewrapPerClient: roomy("rw"), AlarmDailyFraction: 0.8,
	}
}

// TestRevealLimitsEachRefuse: each of the four reveal limits refuses on its
// own, keyed as documented: per actor (another actor of the same client
// goes on), per client (a third actor of the same client is refused too,
// another client goes on). Each case tightens one limit and leaves the
// others roomy, so removing that one check lets the third reveal through.
func TestRevealLimitsEachRefuse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tighten  func(*Limits)
		limit    string
		perActor bool
	}{
		{"429/actor-short", func(l *Limits) { l.RevealActorShort = tight("ras") }, "ras", true},
		{"429/actor-daily", func(l *Limits) { l.RevealActorDaily = tight("rad") }, "rad", true},
		{"429/client-short", func(l *Limits) { l.RevealClientShort = tight("rcs") }, "rcs", false},
		{"429/client-daily", func(l *Limits) { l.RevealClientDaily = tight("rcd") }, "rcd", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) {
				c.Limits = roomyLimits()
				tc.tighten(&c.Limits)
			})
			jwe := f.encrypt(t, testPAN, f.now, "cs_1")
			reveal := func(client, actor string) error {
				_, err := reveal(t, f.svc, Meta{Client: client}, jwe, actor, "refund check", "")
				return err
			}
			// Two reveals, by one actor or (for a client limit) by two.
			first, second := "op_a", "op_a"
			if !tc.perActor {
				second = "op_b"
			}
			for _, actor := range []string{first, second} {
				if err := reveal("bo", actor); err != nil {
					t.Fatalf("reveal by %s within the limit: %v", actor, err)
				}
			}
			var rf *ratelimit.Refused
			if err := reveal("bo", first); !errors.As(err, &rf) || rf.Limit != tc.limit || rf.RetryAfter <= 0 {
				t.Fatalf("third reveal: %v, want refused by %s with a retry delay", err, tc.limit)
			}
			if tc.perActor {
				if err := reveal("bo", "op_c"); err != nil {
					t.Fatalf("another actor of the same client: %v, want allowed (the limit is per actor)", err)
				}
			} else if err := reveal("bo", "op_c"); !errors.As(err, &rf) || rf.Limit != tc.limit {
				t.Fatalf("a third actor of the same client: %v, want refused by %s (the limit is per client)", err, tc.limit)
			}
			if err := reveal("bo2", first); err != nil {
				t.Fatalf("another client: %v, want allowed", err)
			}
			var reached bool
			for _, e := range f.events(t) {
				if e.Event == audit.EventAlarm && e.Reason == "limit "+tc.limit+" reached" {
					reached = true
				}
			}
			if !reached {
				t.Fatalf("no alarm %q in the trail", "limit "+tc.limit+" reached")
			}
		})
	}
}

// TestPerClientLimitsOfInspectAndRewrap: the per-second limits of inspect
// and rewrap refuse a client past its burst, before anything is decrypted,
// and leave another client alone.
func TestPerClientLimitsOfInspectAndRewrap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tighten func(*Limits)
		limit   string
		call    func(f *fixture, svc *Service, client string) error
	}{
		{"429/inspect-per-client", func(l *Limits) { l.InspectPerClient = tight("ic") }, "ic", func(f *fixture, svc *Service, client string) error {
			_, err := svc.Inspect(context.Background(), Meta{Client: client}, InspectInput{JWE: f.encrypt(t, testPAN, f.now, "cs_1"), Session: "cs_1", Merchant: "m_1"})
			return err
		}},
		{"429/rewrap-per-client", func(l *Limits) { l.RewrapPerClient = tight("rw") }, "rw", func(f *fixture, svc *Service, client string) error {
			_, err := svc.Rewrap(context.Background(), Meta{Client: client}, RewrapInput{JWE: f.encrypt(t, testPAN, f.now, "cs_1"), Merchant: "m_1"})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			svc, _, tr := f.watched(t)
			svc.cfg.Limits = roomyLimits()
			tc.tighten(&svc.cfg.Limits)
			for i := range 2 {
				if err := tc.call(f, svc, "gateway"); err != nil {
					t.Fatalf("call %d within the limit: %v", i+1, err)
				}
			}
			before := tr.decrypts()
			var rf *ratelimit.Refused
			if err := tc.call(f, svc, "gateway"); !errors.As(err, &rf) || rf.Limit != tc.limit || rf.RetryAfter <= 0 {
				t.Fatalf("third call: %v, want refused by %s with a retry delay", err, tc.limit)
			}
			if n := tr.decrypts() - before; n != 0 {
				t.Fatalf("the refused call decrypted %d times, want none", n)
			}
			if err := tc.call(f, svc, "gateway-2"); err != nil {
				t.Fatalf("another client: %v, want allowed", err)
			}
		})
	}
}

// TestRevealDailyAlarmAt80Percent: the actor's daily reveal allowance
// raises an alarm, with its reason, from the reveal that uses 80% of it,
// and not before; the limit-reached alarm is a different one. A count of
// alarms would not tell them apart. On either store.
func TestRevealDailyAlarmAt80Percent(t *testing.T) {
	for _, store := range limitStores() {
		t.Run(store.name, func(t *testing.T) {
			f := newFixture(t, nil)
			svc, _ := f.limitedBy(t, store.new(t), func(c *Config) {
				c.Limits = roomyLimits()
				c.Limits.RevealActorDaily = lasting("rad", 10)
			})
			jwe := f.encrypt(t, testPAN, f.now, "cs_1")
			for i := 1; i <= 9; i++ {
				if _, err := reveal(t, svc, Meta{Client: "bo"}, jwe, "op_dana", "refund check", ""); err != nil {
					t.Fatalf("reveal %d: %v", i, err)
				}
				var want []string // newest first, as the trail reads
				for n := i; n >= 8; n-- {
					want = append(want, fmt.Sprintf("actor used %d%% of the daily reveal limit", n*10))
				}
				if got := alarmReasons(t, f); !slices.Equal(got, want) {
					t.Fatalf("after reveal %d of 10: alarms %q, want %q", i, got, want)
				}
			}
		})
	}
}

// TestRevealAlarmsInOrder: a reveal that takes the actor's day past 80%
// and is then refused by a client limit raises both alarms, the actor's
// first, as when the limits were checked one after another.
func TestRevealAlarmsInOrder(t *testing.T) {
	for _, store := range limitStores() {
		t.Run(store.name, func(t *testing.T) {
			f := newFixture(t, nil)
			svc, _ := f.limitedBy(t, store.new(t), func(c *Config) {
				c.Limits = roomyLimits()
				c.Limits.RevealActorDaily = lasting("rad", 2)
				c.Limits.RevealClientShort = lasting("rcs", 1)
			})
			jwe := f.encrypt(t, testPAN, f.now, "cs_1")
			if _, err := reveal(t, svc, Meta{Client: "bo"}, jwe, "op_a", "refund check", ""); err != nil {
				t.Fatal(err)
			}
			var rf *ratelimit.Refused
			if _, err := reveal(t, svc, Meta{Client: "bo"}, jwe, "op_a", "refund check", ""); !errors.As(err, &rf) || rf.Limit != "rcs" {
				t.Fatalf("second reveal: %v, want refused by rcs", err)
			}
			want := []string{"limit rcs reached", "actor used 100% of the daily reveal limit"} // newest first
			if got := alarmReasons(t, f); !slices.Equal(got, want) {
				t.Fatalf("alarms %q, want %q", got, want)
			}
		})
	}
}

// alarmReasons are the reasons of the alarms in f's trail, newest first.
func alarmReasons(t *testing.T, f *fixture) []string {
	t.Helper()
	var out []string
	for _, e := range f.events(t) {
		if e.Event == audit.EventAlarm {
			out = append(out, e.Reason)
		}
	}
	return out
}

// limitStores are the two limiters a reveal's limits are counted on: in
// memory (one Allow after another) and on Redis (ratelimit's batch script,
// one round trip for the four).
func limitStores() []struct {
	name string
	new  func(t *testing.T) ratelimit.Limiter
} {
	return []struct {
		name string
		new  func(t *testing.T) ratelimit.Limiter
	}{
		{"memory", func(*testing.T) ratelimit.Limiter { return ratelimit.NewMemory() }},
		{"redis", func(t *testing.T) ratelimit.Limiter { return ratelimit.NewRedis(testenv.Redis(t), "bg:ks:rl:") }},
	}
}

// limitedBy is a service like f.svc (f.cfg, then edit) counting its limits
// on lim, its audit appends, decrypts and limiter calls in one trace.
func (f *fixture) limitedBy(t *testing.T, lim ratelimit.Limiter, edit func(*Config)) (*Service, *trace) {
	t.Helper()
	tr := &trace{}
	cfg := f.cfg
	if edit != nil {
		edit(&cfg)
	}
	svc := New(staticKeys{kr: f.kr}, &recordingAudit{tr: tr, next: f.log}, tracedLimiter{lim, tr}, f.logger(t), cfg)
	svc.decrypt = func(j *jose.JWE, key crypto.PrivateKey) ([]byte, error) {
		tr.add(stepDecrypt)
		return j.Decrypt(key)
	}
	return svc, tr
}

const stepLimits = "limits"

// tracedLimiter notes each call to its limiter in the trace, a batch as
// one step, and keeps its limiter's batch (a Batcher stays one).
type tracedLimiter struct {
	l  ratelimit.Limiter
	tr *trace
}

func (l tracedLimiter) Allow(ctx context.Context, key string, lim ratelimit.Limit) (ratelimit.Result, error) {
	l.tr.add(stepLimits)
	return l.l.Allow(ctx, key, lim)
}

func (l tracedLimiter) AllowBatch(ctx context.Context, takes []ratelimit.Take) ([]ratelimit.Result, error) {
	l.tr.add(stepLimits)
	return ratelimit.AllowBatch(ctx, l.l, takes)
}

// tracedApprover notes the approval in the trace.
type tracedApprover struct {
	approver
	tr *trace
}

const stepApprove = "approve"

func (a *tracedApprover) Approve(ctx context.Context, client string, ap passkeys.Approval) (string, error) {
	a.tr.add(stepApprove)
	return a.approver.Approve(ctx, client, ap)
}

// lasting allows burst events and refills one a day: no test here sees a
// refill, so what is left tells exactly how many reveals a limit counted.
func lasting(name string, burst int) ratelimit.Limit {
	return ratelimit.Limit{Name: name, Rate: 1, Period: 24 * time.Hour, Burst: burst}
}

// TestRevealLimitsBatched: the four limits, counted together (one round
// trip on Redis), answer as four checks one after another, on either
// store. Each case leaves one reveal to one limit; the second reveal is
// refused by that limit (its name, a Retry-After, "limit ... reached"
// alarmed, reveal.denied with rate_limited, nothing decrypted), and the
// limits before it counted both reveals while those after it counted only
// the first: the refusal stops the count where it is.
func TestRevealLimitsBatched(t *testing.T) {
	names := []string{"ras", "rad", "rcs", "rcd"}
	for _, store := range limitStores() {
		for refusing, name := range names {
			t.Run(store.name+"/429/"+name, func(t *testing.T) {
				f := newFixture(t, nil)
				lim := store.new(t)
				svc, tr := f.limitedBy(t, lim, func(c *Config) {
					c.Limits = roomyLimits()
					c.Limits.AlarmDailyFraction = 0
					for i, l := range []*ratelimit.Limit{&c.Limits.RevealActorShort, &c.Limits.RevealActorDaily, &c.Limits.RevealClientShort, &c.Limits.RevealClientDaily} {
						*l = lasting(names[i], 1000)
						if i == refusing {
							*l = lasting(names[i], 1)
						}
					}
				})
				jwe := f.encrypt(t, testPAN, f.now, "cs_1")
				if _, err := reveal(t, svc, Meta{Client: "bo"}, jwe, "op_a", "refund check", "tok_1"); err != nil {
					t.Fatalf("first reveal: %v", err)
				}
				before := tr.decrypts()
				var rf *ratelimit.Refused
				_, err := reveal(t, svc, Meta{Client: "bo"}, jwe, "op_a", "refund check", "tok_1")
				if !errors.As(err, &rf) || rf.Limit != name || rf.RetryAfter <= 0 || !errors.Is(err, ErrLimited) {
					t.Fatalf("second reveal: %v, want refused by %s with a retry delay", err, name)
				}
				if n := tr.decrypts() - before; n != 0 {
					t.Fatalf("the refused reveal decrypted %d times", n)
				}
				evs := f.events(t) // newest first
				if len(evs) < 2 || evs[1].Event != audit.EventAlarm || evs[1].Reason != "limit "+name+" reached" || evs[1].Actor != "op_a" {
					t.Fatalf("alarm %+v, want \"limit %s reached\" for op_a", evs[1], name)
				}
				if d := evs[0]; d.Event != audit.EventRevealDenied || d.Code != "rate_limited" || d.Outcome != audit.OutcomeDenied || d.Actor != "op_a" || d.Resource != "tok_1" || d.Credential != "cred_1" {
					t.Fatalf("denial %+v", d)
				}
				for i, n := range names {
					if i == refusing {
						continue
					}
					key := "bo"
					if i < 2 {
						key = "bo/op_a"
					}
					counted := 1
					if i < refusing {
						counted = 2
					}
					r, err := lim.Allow(context.Background(), key, lasting(n, 1000))
					if err != nil || r.Remaining != 1000-counted-1 {
						t.Fatalf("limit %s: %d left after one more (%v), want %d: it counted %d reveals, want %d",
							n, r.Remaining, err, 1000-counted-1, 1000-1-r.Remaining-1, counted)
					}
				}
			})
		}
	}
}

// TestRevealLimitsAfterApproval: the limits are counted after the approval
// and only for an approved reveal, on either store: a reveal whose
// approval fails (a bad assertion, a spent nonce) uses none of the
// operator's budget. The trace holds the approval, the limiter's calls
// (one, the batch), the audit records and the decrypt, in order.
func TestRevealLimitsAfterApproval(t *testing.T) {
	for _, store := range limitStores() {
		for _, tc := range []struct {
			name  string
			err   error
			want  error
			steps []string
		}{
			{"200/approved-then-limited", nil, nil,
				[]string{stepApprove, stepLimits, auditStep(audit.EventReveal, audit.OutcomeSuccess), stepDecrypt}},
			{"403/passkey-invalid-counts-nothing", fmt.Errorf("%w: signature", passkeys.ErrInvalid), passkeys.ErrInvalid,
				[]string{stepApprove, auditStep(audit.EventRevealDenied, audit.OutcomeDenied)}},
			{"403/nonce-spent-counts-nothing", fmt.Errorf("%w: spent", passkeys.ErrNonce), passkeys.ErrNonce,
				[]string{stepApprove, auditStep(audit.EventRevealDenied, audit.OutcomeDenied)}},
		} {
			t.Run(store.name+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t, nil)
				lim := store.new(t)
				ap := &tracedApprover{approver: approver{cred: "cred_1", err: tc.err}}
				svc, tr := f.limitedBy(t, lim, func(c *Config) {
					c.Approver = ap
					c.Limits = roomyLimits()
					c.Limits.RevealActorShort = lasting("ras", 1)
				})
				ap.tr = tr // the service's trace, before its first reveal
				jwe := f.encrypt(t, testPAN, f.now, "cs_1")
				if _, err := reveal(t, svc, Meta{Client: "bo"}, jwe, "op_a", "refund check", "tok_1"); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if got := tr.get(); !slices.Equal(got, tc.steps) {
					t.Fatalf("steps %q, want %q", got, tc.steps)
				}
				// The actor's one reveal of the short window is still there
				// after a refused approval, gone after an approved reveal.
				r, err := lim.Allow(context.Background(), "bo/op_a", lasting("ras", 1))
				if err != nil || r.Allowed != (tc.want != nil) {
					t.Fatalf("the actor's budget after the reveal: allowed %v (%v), want %v", r.Allowed, err, tc.want != nil)
				}
			})
		}
	}
}

// TestRevealLimiterDown: a limiter that cannot answer (Redis down, on
// either path of the batch) refuses the approved reveal with
// ErrUnavailable, audited as reveal.denied (unavailable, outcome failure),
// and nothing is decrypted: not even the keyring is looked at.
func TestRevealLimiterDown(t *testing.T) {
	for _, tc := range []struct {
		name string
		lim  func(t *testing.T) ratelimit.Limiter
	}{
		{"503/redis-closed", func(t *testing.T) ratelimit.Limiter {
			rdb := testenv.Redis(t)
			l := ratelimit.NewRedis(rdb, "bg:ks:rl:")
			_ = rdb.Close()
			return l
		}},
		{"503/one-check-at-a-time-fails", func(*testing.T) ratelimit.Limiter { return downLimiter{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			keys := &countingKeys{kr: f.kr}
			tr := &trace{}
			svc := New(keys, &recordingAudit{tr: tr, next: f.log}, tc.lim(t), f.logger(t), f.cfg)
			svc.decrypt = func(j *jose.JWE, key crypto.PrivateKey) ([]byte, error) {
				tr.add(stepDecrypt)
				return j.Decrypt(key)
			}
			jwe := f.encrypt(t, testPAN, f.now, "cs_1")
			_, err := reveal(t, svc, Meta{Client: "bo"}, jwe, "op_a", "refund check", "tok_1")
			var rf *ratelimit.Refused
			if !errors.Is(err, ErrUnavailable) || errors.As(err, &rf) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if keys.n.Load() != 0 || tr.decrypts() != 0 {
				t.Fatalf("with the limiter down: %d keyring looks, %d decrypts", keys.n.Load(), tr.decrypts())
			}
			if got, want := tr.get(), []string{auditStep(audit.EventRevealDenied, audit.OutcomeFailure)}; !slices.Equal(got, want) {
				t.Fatalf("steps %q, want %q", got, want)
			}
			if evs := f.events(t); evs[0].Code != "unavailable" || evs[0].Actor != "op_a" {
				t.Fatalf("denial %+v", evs[0])
			}
		})
	}
}
