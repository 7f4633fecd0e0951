package nonce

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/redisx"
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
	ok, err := r.rdb.SetNX(ctx, r.prefix+nonce, binding, putTTL(ttl)).Result()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !ok {
		return fmt.Errorf("%w: nonce already held", ErrUnavailable)
	}
	return nil
}

// putTTL is a nonce's time to live in whole milliseconds, at least one.
func putTTL(ttl time.Duration) time.Duration {
	return max(ttl, time.Millisecond).Truncate(time.Millisecond)
}

// PutThen is Put as work another store's script runs after its own
// (redisx.Then): the same SET NX with the same expiry, in that script's
// round trip (keyservice/admit: a reveal challenge's jti claim and budget,
// then its nonce). Stored reads its reply.
func (r *Redis) PutThen(nonce, binding string, ttl time.Duration) redisx.Then {
	return redisx.Then{Client: r.rdb, Lua: putLua, Keys: []string{r.prefix + nonce}, Args: []any{binding, putTTL(ttl).Milliseconds()}}
}

const putLua = `return redis.call("SET", K[1], A[1], "NX", "PX", A[2])`

// Stored is Put's answer from the reply of PutThen's work: nil when the
// nonce was stored, ErrUnavailable when it was held already.
func Stored(reply any) error {
	switch v := reply.(type) {
	case nil:
		return fmt.Errorf("%w: nonce already held", ErrUnavailable)
	case string:
		if v == "OK" {
			return nil
		}
	}
	return fmt.Errorf("%w: unexpected reply %T", ErrUnavailable, reply)
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

// TakeThen is Take as work another store's script runs after its own
// (redisx.Then): the same GETDEL on the same key, in that script's round
// trip (keyservice/admit: a signed reveal's jti claim, then its nonce).
// Taken reads its reply.
func (r *Redis) TakeThen(nonce string) redisx.Then {
	return redisx.Then{Client: r.rdb, Lua: takeLua, Keys: []string{r.prefix + nonce}}
}

const takeLua = `return redis.call("GETDEL", K[1])`

// Taken is Take's answer from the reply of TakeThen's work: the binding,
// or ErrUnknown when the nonce was not there.
func Taken(reply any) (string, error) {
	switch v := reply.(type) {
	case nil:
		return "", ErrUnknown
	case string:
		return v, nil
	}
	return "", fmt.Errorf("%w: unexpected reply %T", ErrUnavailable, reply)
}
