package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis is a Limiter whose state lives in Redis, shared by all replicas.
type Redis struct {
	rl     *redis_rate.Limiter
	prefix string
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a Limiter on rdb (single node, Sentinel or Cluster: each
// limit is one key). Keys are prefix + Limit.Name + ":" + key (redis_rate
// itself prepends "rate:").
func NewRedis(rdb redis.UniversalClient, prefix string) Limiter {
	return &Redis{rl: redis_rate.NewLimiter(rdb), prefix: prefix}
}

// Allow implements Limiter with redis_rate's GCRA script, which reads the
// clock of the Redis server, so replicas with skewed clocks agree.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	if err := l.Validate(); err != nil {
		return Result{}, err
	}
	res, err := r.rl.Allow(ctx, r.prefix+l.Name+":"+key, redis_rate.Limit{
		Rate:   l.Rate,
		Period: l.Period,
		Burst:  l.Burst,
	})
	if err != nil {
		// The key is left out of the message: it may be an actor or an IP.
		return Result{}, fmt.Errorf("%w: %s: %w", ErrUnavailable, l.Name, err)
	}
	out := Result{Allowed: res.Allowed > 0, Remaining: res.Remaining}
	if !out.Allowed {
		// A denial always says when to come back, even if the script's
		// arithmetic rounds to nothing.
		out.RetryAfter = max(res.RetryAfter, time.Millisecond)
	}
	return out, nil
}
