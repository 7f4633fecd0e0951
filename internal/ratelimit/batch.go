package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Take is one event of a batch: one event for Key under Limit. Stop says
// that a refusal of this event ends the batch: the events after it are
// not counted, exactly as if they had never been asked for (a Check that
// refuses, or a Window that refuses). Without Stop a refusal is reported
// and the batch goes on (a Window that only alarms).
type Take struct {
	Limit Limit
	Key   string
	Stop  bool
}

// Batcher is a Limiter that counts several events in one call: on Redis,
// one script and one round trip instead of one per limit. The result for
// takes[i] is res[i]; res is shorter than takes when a Stop take was
// refused (it is the last result). On error nothing may be relied on and
// the caller must deny.
type Batcher interface {
	AllowBatch(ctx context.Context, takes []Take) ([]Result, error)
}

// AllowBatch counts takes with l: in one call if l is a Batcher, one Allow
// after another otherwise. The outcome is the same either way.
func AllowBatch(ctx context.Context, l Limiter, takes []Take) ([]Result, error) {
	if b, ok := l.(Batcher); ok {
		return b.AllowBatch(ctx, takes)
	}
	return allowEach(ctx, l, takes)
}

// Stopped reports whether a refused Stop take ended the batch that gave
// res: the batch was refused, where a refusal without Stop is one answer
// among others.
func Stopped(takes []Take, res []Result) bool {
	n := len(res)
	return n > 0 && !res[n-1].Allowed && takes[n-1].Stop
}

func allowEach(ctx context.Context, l Limiter, takes []Take) ([]Result, error) {
	res := make([]Result, 0, len(takes))
	for _, t := range takes {
		r, err := l.Allow(ctx, t.Key, t.Limit)
		if err != nil {
			return nil, err
		}
		res = append(res, r)
		if !r.Allowed && t.Stop {
			break
		}
	}
	return res, nil
}

func validateTakes(takes []Take) error {
	for _, t := range takes {
		if err := t.Limit.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Step is one check of a batch as a Gate sees it: a Check (CheckStep) or a
// Watch (WatchStep). A batch of steps gives the same answers, alarms and
// counts as the same Check and Watch calls one after another, which stop
// at the first refusal.
type Step struct {
	key   string
	w     Window
	watch bool
}

// CheckStep is Gate.Check of l for key, as a step.
func CheckStep(l Limit, key string) Step { return Step{key: key, w: Window{Limit: l}} }

// WatchStep is Gate.Watch of w for key, as a step.
func WatchStep(w Window, key string) Step { return Step{key: key, w: w, watch: true} }

// off reports a step that counts nothing: a Window without Burst.
func (s Step) off() bool { return s.watch && s.w.Limit.Burst <= 0 }

// Takes is what steps count: one Take per step that is not off.
func Takes(steps []Step) []Take {
	takes := make([]Take, 0, len(steps))
	for _, s := range steps {
		if s.off() {
			continue
		}
		takes = append(takes, Take{Limit: s.w.Limit, Key: s.key, Stop: !s.watch || s.w.Refuse})
	}
	return takes
}

// Batch counts steps in one call to the limiter (see Batcher) and answers
// as Check and Watch would: alarms[i] is step i's alarm ("" for none), and
// err is the first refusal (a *Refused) or the limiter's failure, after
// which nothing was counted.
func (g Gate) Batch(ctx context.Context, steps []Step) (alarms []string, err error) {
	res, err := AllowBatch(ctx, g.Limiter, Takes(steps))
	if err != nil {
		return make([]string, len(steps)), g.Failed(err)
	}
	return g.Judge(steps, res)
}

// Judge reads the results of Takes(steps), counted by any Batcher, the way
// Batch does. Too few results for the steps that should have been counted
// is a limiter failure.
func (g Gate) Judge(steps []Step, res []Result) (alarms []string, err error) {
	alarms = make([]string, len(steps))
	i := 0
	for n, s := range steps {
		if s.off() {
			continue
		}
		if i >= len(res) {
			return alarms, g.Failed(fmt.Errorf("%w: %d results for %d limits", ErrUnavailable, len(res), len(Takes(steps))))
		}
		r := res[i]
		i++
		var refused error
		if !r.Allowed {
			refused = &Refused{Limit: s.w.Limit.Name, RetryAfter: r.RetryAfter, also: g.Limited}
		}
		if !s.watch {
			if refused != nil {
				return alarms, refused
			}
			continue
		}
		alarms[n] = watchAlarm(s.w, r)
		if refused != nil && s.w.Refuse {
			return alarms, refused
		}
	}
	return alarms, nil
}

// watchAlarm is Watch's alarm for result r of window w.
func watchAlarm(w Window, r Result) string {
	l := w.Limit
	switch {
	case !r.Allowed && w.Refuse:
		// Every refusal alarms: someone is being turned away.
		return "limit " + l.Name + " reached"
	case !r.Allowed:
		// Alarmed when it ran out; letting it through is the configured choice.
		return ""
	case r.Remaining == 0:
		return "limit " + l.Name + " exhausted"
	case w.AlarmAt > 0 && l.Burst-r.Remaining == int(math.Round(float64(l.Burst)*w.AlarmAt)):
		// Remaining falls by at most one per event (refills only raise it),
		// so this fires once per crossing, not on every event above it.
		return fmt.Sprintf("%.0f%% of limit %s used", w.AlarmAt*100, l.Name)
	}
	return ""
}

// Failed wraps a limiter's failure the way Take does: it matches
// ErrUnavailable, and the gate's Unavailable when set. For callers that
// count through another path (a Batcher of their own) and must refuse alike.
func (g Gate) Failed(err error) error {
	if !errors.Is(err, ErrUnavailable) {
		// An invalid limit cannot be enforced either: refuse alike.
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if g.Unavailable != nil {
		return fmt.Errorf("%w: rate limiter: %w", g.Unavailable, err)
	}
	return fmt.Errorf("rate limiter: %w", err)
}
