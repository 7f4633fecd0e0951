package guard

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// observeLua drops members older than the window, counts the bucket with
// this member, and stores the member only while the bucket holds at most
// Keep, so the set stays bounded under a flood. It reads the Redis server's
// clock, so replicas with skewed clocks agree.
//
// KEYS: bucket
// ARGV: member, period (ms), keep
const observeLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local n = redis.call('ZCARD', KEYS[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then n = n + 1 end
if n <= tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], period)
end
return n
`

// Redis is a Counter on Redis, shared by every replica of the key service.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	script *redis.Script
}

var _ Counter = (*Redis)(nil)

// NewRedis returns a Counter whose buckets are prefix+bucket (one key each,
// so it works on Cluster too).
func NewRedis(rdb redis.UniversalClient, prefix string) *Redis {
	return &Redis{rdb: rdb, prefix: prefix, script: redis.NewScript(observeLua)}
}

// Observe implements Counter.
func (r *Redis) Observe(ctx context.Context, bucket, member string, w Window) (int, error) {
	if err := w.validate(); err != nil {
		return 0, err
	}
	n, err := r.script.Run(ctx, r.rdb, []string{r.prefix + bucket}, member, w.Period.Milliseconds(), w.Keep).Int()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return n, nil
}
