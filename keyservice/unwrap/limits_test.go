package unwrap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/ratelimit"
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
// alarms would not tell them apart.
func TestRevealDailyAlarmAt80Percent(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Limits = roomyLimits()
		c.Limits.RevealActorDaily = ratelimit.Limit{Name: "rad", Rate: 10, Period: 24 * time.Hour, Burst: 10}
	})
	jwe := f.encrypt(t, testPAN, f.now, "cs_1")
	alarms := func() []string {
		var out []string
		for _, e := range f.events(t) {
			if e.Event == audit.EventAlarm {
				out = append(out, e.Reason)
			}
		}
		return out
	}
	for i := 1; i <= 9; i++ {
		if _, err := reveal(t, f.svc, Meta{Client: "bo"}, jwe, "op_dana", "refund check", ""); err != nil {
			t.Fatalf("reveal %d: %v", i, err)
		}
		got := alarms()
		var want []string // newest first, as the trail reads
		for n := i; n >= 8; n-- {
			want = append(want, fmt.Sprintf("actor used %d%% of the daily reveal limit", n*10))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("after reveal %d of 10: alarms %q, want %q", i, got, want)
		}
	}
}
