package replay

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a replay cache in Redis: one key per jti, expiring with it.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

// NewRedis returns a cache storing prefix+jti keys in rdb.
func NewRedis(rdb redis.UniversalClient, prefix string) *Redis {
	return &Redis{rdb: rdb, prefix: prefix, now: time.Now}
}

// Client is the Redis client the cache claims on.
func (r *Redis) Client() redis.UniversalClient { return r.rdb }

// Entry is the key and time to live that claiming jti until until sets, for
// a caller that claims it in a script of its own (keyservice/admit: the
// claim and a request's limits in one round trip). Both ways set the same
// key, so each sees the other's claims.
func (r *Redis) Entry(jti string, until time.Time) (key string, ttl time.Duration, err error) {
	if err := checkJTI(jti); err != nil {
		return "", 0, err
	}
	// PX counts milliseconds: round up so the key never expires before until.
	ttl = max(until.Sub(r.now()), time.Millisecond)
	ttl = (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
	return r.prefix + jti, ttl, nil
}

// Claim records jti until until and reports whether it was new. SET NX is
// atomic, so of two concurrent requests with one jti exactly one is fresh,
// across replicas. An expiry already past still holds the jti for 1 ms.
func (r *Redis) Claim(ctx context.Context, jti string, until time.Time) (bool, error) {
	key, ttl, err := r.Entry(jti, until)
	if err != nil {
		return false, err
	}
	fresh, err := r.rdb.SetNX(ctx, key, "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return fresh, nil
}
