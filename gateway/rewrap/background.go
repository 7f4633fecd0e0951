package rewrap

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Background is the gateway's own rewrap job. It runs a pass over the
// tokens whose version the key service no longer publishes, so that after a
// rotation (by hand or at the end of a cryptoperiod) the old version soon
// references no token and can be retired:
//
//   - as soon as the published versions differ from the last pass's target,
//   - once more wire.RetireGrace after that, for the tokens made under the
//     old version by pages that still had its public key (the window
//     `keyservice keys retire` waits out before it trusts a count),
//   - when a pass was left unfinished (it resumes from its saved position),
//   - and at least every Interval, which also refreshes the counts of
//     tokens by version (Metrics: blindgate_gateway_tokens{kid}).
//
// With several gateway replicas on Redis, a lease lets one of them run a
// pass at a time; `blindgate rewrap` takes the same lease.
type Background struct {
	Job *Job
	// Kids returns the versions the key service publishes (the gateway's
	// cached JWKS).
	Kids func(ctx context.Context) ([]string, error)
	// Leaser elects the replica that runs a pass; nil: this one alone.
	Leaser   Leaser
	Interval time.Duration
	Metrics  *Metrics // may be nil
	Log      *slog.Logger
}

// Leaser hands out the lease on rewrap passes.
type Leaser interface {
	// TryLease returns nil and no error when someone else holds it.
	TryLease(ctx context.Context) (Lease, error)
}

// Lease is held while a pass runs and refreshed as it saves its position.
type Lease interface {
	Refresh(ctx context.Context) error
	Release(ctx context.Context) error
}

// Check runs a pass if one is due, and reports whether it ran one (and how
// it stood when it stopped).
func (b *Background) Check(ctx context.Context) (Progress, bool, error) {
	b.Job.defaults()
	if b.Log == nil {
		b.Log = b.Job.Log
	}
	kids, err := b.Kids(ctx)
	if err != nil {
		return Progress{}, false, err
	}
	if len(kids) == 0 {
		return Progress{}, false, errors.New("rewrap: the key service publishes no version")
	}
	scope := Scope{Current: kids}
	last, found, err := b.Job.State.Load(ctx, scope.Name())
	if err != nil && !errors.Is(err, errCorruptState) {
		return Progress{}, false, err
	}
	now := b.Job.Now()
	graceEnd := last.TargetSince.Add(wire.RetireGrace)
	followUp := !last.TargetSince.IsZero() && last.Started.Before(graceEnd) && !now.Before(graceEnd)
	due := !found || !last.Done() || last.Target != scope.target() || followUp || now.Sub(last.Finished) >= b.Interval
	if !due {
		return Progress{}, false, nil
	}
	job := *b.Job
	if b.Leaser != nil {
		lease, err := b.Leaser.TryLease(ctx)
		if err != nil {
			return Progress{}, false, err
		}
		if lease == nil {
			return Progress{}, false, nil
		}
		defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
		job.KeepAlive = lease.Refresh
	}
	if b.Metrics != nil {
		job.Progress = b.Metrics.Observe
	}
	p, err := job.Run(ctx, scope, false)
	if err == nil && b.Metrics != nil {
		b.Metrics.Finished(p)
	}
	return p, true, err
}

// Run checks every `every` until ctx ends. It first publishes the counts of
// the last finished pass, so a restarted gateway reports them at once.
func (b *Background) Run(ctx context.Context, every time.Duration) {
	b.Job.defaults()
	if b.Log == nil {
		b.Log = b.Job.Log
	}
	if b.Metrics != nil {
		if kids, err := b.Kids(ctx); err == nil {
			if p, ok, err := b.Job.State.Load(ctx, Scope{Current: kids}.Name()); err == nil && ok && p.Done() {
				b.Metrics.Finished(p)
			}
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	lastErr := ""
	for {
		_, _, err := b.Check(ctx)
		switch {
		case err != nil && ctx.Err() == nil && err.Error() != lastErr:
			// Once per kind of failure: a sealed or unreachable key
			// service would otherwise repeat the line every check.
			lastErr = err.Error()
			b.Log.Warn("rewrap: background pass not run or stopped; retrying every check", "every", every, "err", err)
		case err == nil:
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RedisLeaser is a Leaser on a Redis lease (redisx.Lock).
type RedisLeaser struct {
	RDB redis.UniversalClient
	Key string        // "bg:gw:rewrap:lease" when empty
	TTL time.Duration // 2 minutes when 0; refreshed as the pass saves its position
}

// TryLease implements Leaser.
func (l RedisLeaser) TryLease(ctx context.Context) (Lease, error) {
	key, ttl := l.Key, l.TTL
	if key == "" {
		key = "bg:gw:rewrap:lease"
	}
	if ttl <= 0 {
		ttl = 2 * time.Minute
	}
	lk, err := redisx.TryLock(ctx, l.RDB, key, ttl)
	if err != nil || lk == nil {
		return nil, err
	}
	return lk, nil
}
