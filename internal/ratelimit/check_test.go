package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

type failing struct{ err error }

func (f failing) Allow(context.Context, string, Limit) (Result, error) { return Result{}, f.err }

func TestGateCheck(t *testing.T) {
	errLimited := errors.New("domain: limited")
	errDown := errors.New("domain: unavailable")
	one := Limit{Name: "one", Rate: 1, Period: time.Hour, Burst: 1}
	tests := []struct {
		name    string
		gate    Gate
		lim     Limit
		calls   int // the last call's error is checked
		want    []error
		notWant []error
		retry   bool
	}{
		{"allowed", Gate{Limiter: NewMemory()}, one, 1, nil, nil, false},
		{"refused/plain", Gate{Limiter: NewMemory()}, one, 2, []error{ErrRefused}, []error{ErrUnavailable}, true},
		{"refused/domain-sentinel", Gate{Limiter: NewMemory(), Limited: errLimited, Unavailable: errDown}, one, 2,
			[]error{ErrRefused, errLimited}, []error{ErrUnavailable, errDown}, true},
		{"unavailable/store-down", Gate{Limiter: failing{fmt.Errorf("%w: connection refused", ErrUnavailable)}, Limited: errLimited, Unavailable: errDown}, one, 1,
			[]error{ErrUnavailable, errDown}, []error{ErrRefused, errLimited}, false},
		{"unavailable/invalid-limit", Gate{Limiter: NewMemory()}, Limit{Name: "bad"}, 1,
			[]error{ErrUnavailable, ErrInvalidLimit}, []error{ErrRefused}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			for range tt.calls {
				err = tt.gate.Check(context.Background(), tt.lim, "k")
			}
			if tt.want == nil && err != nil {
				t.Fatalf("Check = %v, want nil", err)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("Check = %v, want it to match %v", err, w)
				}
			}
			for _, w := range tt.notWant {
				if errors.Is(err, w) {
					t.Errorf("Check = %v, must not match %v", err, w)
				}
			}
			var r *Refused
			if got := errors.As(err, &r); got != tt.retry {
				t.Fatalf("errors.As(*Refused) = %v, want %v", got, tt.retry)
			}
			if tt.retry && (r.Limit != tt.lim.Name || r.RetryAfter <= 0) {
				t.Fatalf("refusal %+v, want limit %q and a positive RetryAfter", r, tt.lim.Name)
			}
		})
	}
}

func TestCheckIsGateWithoutSentinels(t *testing.T) {
	l, lim := NewMemory(), Limit{Name: "one", Rate: 1, Period: time.Hour, Burst: 1}
	if err := Check(context.Background(), l, lim, "k"); err != nil {
		t.Fatal(err)
	}
	var r *Refused
	if err := Check(context.Background(), l, lim, "k"); !errors.As(err, &r) || r.Limit != "one" {
		t.Fatalf("second Check = %v, want a *Refused for limit one", err)
	}
}

func TestGateWatch(t *testing.T) {
	five := Limit{Name: "day", Rate: 5, Period: 24 * time.Hour, Burst: 5}
	tests := []struct {
		name   string
		w      Window
		alarms []string // per event, "" for none; the last event's error is checked
		refuse bool
	}{
		{"alarm-only/80-and-exhausted", Window{Limit: five, AlarmAt: 0.8}, []string{"", "", "", "80% of limit day used", "limit day exhausted", "", ""}, false},
		{"refuse/each-refusal-alarms", Window{Limit: five, AlarmAt: 0.8, Refuse: true}, []string{"", "", "", "80% of limit day used", "limit day exhausted", "limit day reached", "limit day reached"}, true},
		{"no-early-alarm", Window{Limit: five}, []string{"", "", "", "", "limit day exhausted"}, false},
		{"off/no-burst", Window{Limit: Limit{Name: "off"}, Refuse: true}, []string{"", "", ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := Gate{Limiter: NewMemory()}
			var err error
			for i, want := range tt.alarms {
				var got string
				got, err = g.Watch(context.Background(), tt.w, "m_1")
				if got != want {
					t.Fatalf("event %d: alarm %q, want %q", i+1, got, want)
				}
			}
			var r *Refused
			if got := errors.As(err, &r); got != tt.refuse {
				t.Fatalf("last event: %v, want refused=%v", err, tt.refuse)
			}
		})
	}
	t.Run("unavailable/no-alarm-refuses", func(t *testing.T) {
		g := Gate{Limiter: failing{fmt.Errorf("%w: down", ErrUnavailable)}}
		why, err := g.Watch(context.Background(), Window{Limit: five, AlarmAt: 0.8}, "m_1")
		if why != "" || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Watch = %q, %v; want no alarm and ErrUnavailable", why, err)
		}
	})
}
