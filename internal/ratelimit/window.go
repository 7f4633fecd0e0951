package ratelimit

import (
	"context"
	"errors"
)

// Window is a volume allowance over a long period (a day) that is watched,
// not only enforced: an alarm when AlarmAt of it has been used and when it
// runs out, and a refusal past it only with Refuse. Whether running out
// stops the work is the caller's policy: a busy day is not always an attack.
type Window struct {
	Limit Limit
	// AlarmAt is the share of Limit.Burst whose use raises an alarm, once
	// per crossing; 0: no early alarm.
	AlarmAt float64
	Refuse  bool
}

// Watch counts one event for key under w. alarm, when not empty, says why
// this event is worth an alarm: it crossed AlarmAt, used the last of the
// allowance, or was refused. err is a *Refused past the allowance when
// w.Refuse, or a limiter failure (fail closed: the caller must refuse). A
// window with no Burst is off.
func (g Gate) Watch(ctx context.Context, w Window, key string) (alarm string, err error) {
	l := w.Limit
	if l.Burst <= 0 {
		return "", nil
	}
	r, err := g.Take(ctx, l, key)
	if err != nil && !errors.Is(err, ErrRefused) {
		return "", err
	}
	why := watchAlarm(w, r)
	if !r.Allowed && w.Refuse {
		return why, err
	}
	return why, nil
}
