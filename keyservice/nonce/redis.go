package nonce

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Store in Redis: one key per nonce, its value the binding,
// expiring with it. SET NX PX and GETDEL are atomic, so of two requests
// racing with one nonce exactly one gets its binding, across replicas.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedis returns a store keeping prefix+nonce keys in rdb (GETDEL needs
// Redis 6.2).
func NewRedis(rdb redis.UniversalClient, prefix string) *Redis {
	return &Redis{rdb: rdb, prefix: prefix}
}

// Put implements Store.
func (r *Redis) Put(ctx context.Context, nonce, binding string, ttl time.Duration) error {
	ttl = max(ttl, time.Millisecond).Truncate(time.Millisecond)
	ok, err := r.rdb.SetNX(ctx, r.prefix+nonce, binding, ttl).Result()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !ok {
		return fmt.Errorf("%w: nonce already held", ErrUnavailable)
	}
	return nil
}

// Take implements Store.
func (r *Redis) Take(ctx context.Context, nonce string) (string, error) {
	b, err := r.rdb.GetDel(ctx, r.prefix+nonce).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", ErrUnknown
	case err != nil:
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return b, nil
}
