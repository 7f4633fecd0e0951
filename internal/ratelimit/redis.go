package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/redisx"
)

// Redis is a Limiter whose state lives in Redis, shared by all replicas.
type Redis struct {
	rdb    redis.UniversalClient
	rl     *redis_rate.Limiter
	prefix string
	// split: the client is a Cluster, where the keys of one batch live in
	// different slots and cannot share a script; a batch then runs one
	// command after another, with the same outcome.
	split bool
}

var (
	_ Limiter = (*Redis)(nil)
	_ Batcher = (*Redis)(nil)
)

// NewRedis returns a Limiter on rdb (single node, Sentinel or Cluster: each
// limit is one key). Keys are prefix + Limit.Name + ":" + key (redis_rate
// itself prepends "rate:").
func NewRedis(rdb redis.UniversalClient, prefix string) *Redis {
	_, cluster := rdb.(*redis.ClusterClient)
	return &Redis{rdb: rdb, rl: redis_rate.NewLimiter(rdb), prefix: prefix, split: cluster}
}

// Client is the Redis client the limiter counts on.
func (r *Redis) Client() redis.UniversalClient { return r.rdb }

// key is the store key of (l, key), as redis_rate names it.
func (r *Redis) key(l Limit, key string) string { return "rate:" + r.prefix + l.Name + ":" + key }

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
		out.RetryAfter = retryAfter(res.RetryAfter)
	}
	return out, nil
}

// retryAfter: a denial always says when to come back, even if the
// script's arithmetic rounds to nothing.
func retryAfter(d time.Duration) time.Duration { return max(d, time.Millisecond) }

// Once is a key a batch claims before it counts anything, and only if no
// one has claimed it yet (SET NX with a time to live): a replay cache's
// entry for a signed request's jti, so that the claim and the request's
// limits are one round trip.
type Once struct {
	Key string
	TTL time.Duration // rounded up to the millisecond; at least 1 ms
}

// ErrClaimed is AllowBatchOnce's answer when its Once key was already
// claimed: nothing was counted.
var ErrClaimed = errors.New("ratelimit: once key already claimed")

// AllowBatch implements Batcher: one script, one round trip (one command
// after another on Cluster).
func (r *Redis) AllowBatch(ctx context.Context, takes []Take) ([]Result, error) {
	res, _, _, err := r.run(ctx, Once{}, takes, nil)
	return res, err
}

// AllowBatchOnce is AllowBatch that first claims once.Key (when not
// empty): if the key exists it answers ErrClaimed and counts nothing. Any
// other error wraps ErrUnavailable and says nothing of whether the claim
// was made: the caller must refuse, and a retry must make a new claim.
func (r *Redis) AllowBatchOnce(ctx context.Context, once Once, takes []Take) ([]Result, error) {
	res, _, _, err := r.run(ctx, once, takes, nil)
	return res, err
}

// AllowBatchThen is AllowBatch, then the work then if no Stop take was
// refused: in the batch's script when then joins it (redisx.Then: one
// atomic round trip), after it otherwise. ran says whether the work ran
// and reply is what it returned. On error neither the counts nor the work
// may be relied on (the caller refuses).
func (r *Redis) AllowBatchThen(ctx context.Context, takes []Take, then redisx.Then) (res []Result, reply any, ran bool, err error) {
	return r.run(ctx, Once{}, takes, &then)
}

// AllowBatchOnceThen is AllowBatchThen that first claims once.Key as
// AllowBatchOnce does: claimed before, it answers ErrClaimed and neither
// counts nor runs then. One round trip when then joins the script (a
// signed reveal's jti claim and its nonce's take).
func (r *Redis) AllowBatchOnceThen(ctx context.Context, once Once, takes []Take, then redisx.Then) (res []Result, reply any, ran bool, err error) {
	return r.run(ctx, once, takes, &then)
}

func (r *Redis) run(ctx context.Context, once Once, takes []Take, then *redisx.Then) ([]Result, any, bool, error) {
	if err := validateTakes(takes); err != nil {
		return nil, nil, false, err
	}
	if r.split || (then != nil && !then.Joins(r.rdb)) {
		return r.runSplit(ctx, once, takes, then)
	}
	nthen := 0
	if then != nil {
		nthen = len(then.Keys)
	}
	keys := make([]string, 0, len(takes)+1+nthen)
	args := make([]any, 0, 3+4*len(takes)+nthen)
	if once.Key != "" {
		keys = append(keys, once.Key)
		args = append(args, "1", onceTTL(once.TTL))
	} else {
		args = append(args, "0", 0)
	}
	args = append(args, len(takes))
	for _, t := range takes {
		keys = append(keys, r.key(t.Limit, t.Key))
		stop := "0"
		if t.Stop {
			stop = "1"
		}
		args = append(args, t.Limit.Burst, t.Limit.Rate, t.Limit.Period.Seconds(), stop)
	}
	script := batchScript
	if then != nil {
		keys = append(keys, then.Keys...)
		args = append(args, then.Args...)
		script = batchScripts.Script(then.Lua)
	}
	v, err := script.Run(ctx, r.rdb, keys, args...).Slice()
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: batch: %w", ErrUnavailable, err)
	}
	return parseBatch(v, len(takes))
}

// onceTTL counts milliseconds, rounded up so the key never expires early.
func onceTTL(ttl time.Duration) int64 {
	ttl = max(ttl, time.Millisecond)
	return int64((ttl + time.Millisecond - 1) / time.Millisecond)
}

func (r *Redis) runSplit(ctx context.Context, once Once, takes []Take, then *redisx.Then) ([]Result, any, bool, error) {
	if once.Key != "" {
		fresh, err := r.rdb.SetNX(ctx, once.Key, "1", time.Duration(onceTTL(once.TTL))*time.Millisecond).Result()
		if err != nil {
			return nil, nil, false, fmt.Errorf("%w: claim: %w", ErrUnavailable, err)
		}
		if !fresh {
			return nil, nil, false, ErrClaimed
		}
	}
	res, err := allowEach(ctx, r, takes)
	if err != nil || then == nil || Stopped(takes, res) {
		return res, nil, false, err
	}
	reply, err := then.Alone(ctx)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return res, reply, true, nil
}

// errBadBatch is a batch reply of the wrong shape (made once: parseBatch
// runs on every batch).
var errBadBatch = fmt.Errorf("%w: batch: unexpected reply", ErrUnavailable)

func parseBatch(v []any, n int) ([]Result, any, bool, error) {
	bad := errBadBatch
	if len(v) < 3 {
		if len(v) == 1 {
			if fresh, _ := v[0].(int64); fresh == 0 {
				return nil, nil, false, ErrClaimed
			}
		}
		return nil, nil, false, bad
	}
	ran, _ := v[1].(int64)
	reply := v[2]
	v = v[3:]
	if len(v)%3 != 0 || len(v)/3 > n {
		return nil, nil, false, bad
	}
	res := make([]Result, 0, len(v)/3)
	for i := 0; i < len(v); i += 3 {
		allowed, ok1 := v[i].(int64)
		remaining, ok2 := v[i+1].(int64)
		retry, ok3 := v[i+2].(string)
		if !ok1 || !ok2 || !ok3 {
			return nil, nil, false, bad
		}
		r := Result{Allowed: allowed > 0, Remaining: int(remaining)}
		if !r.Allowed {
			f, err := strconv.ParseFloat(retry, 64)
			if err != nil {
				return nil, nil, false, bad
			}
			r.RetryAfter = retryAfter(time.Duration(f * float64(time.Second)))
		}
		res = append(res, r)
	}
	if ran != 1 {
		reply = nil
	}
	return res, reply, ran == 1, nil
}

// batchLua counts several limits, and first claims a once key when
// ARGV[1] is "1" (KEYS[1], PX ARGV[2]). Each limit is redis_rate's GCRA
// step (v10's allowN with cost 1), on the same keys and with the same
// arithmetic and clock (the Redis server's), so a batch and Allow count
// one state. It stops after a refused limit whose stop flag is "1". If no
// limit stopped it and the script has a then_ (redisx.Then), then_ runs on the
// keys and arguments after the limits' and its return value is the reply.
//
// KEYS: [once], limit..., then's keys
// ARGV: has once, once ttl ms, number of limits, per limit: burst, rate,
// period (s), stop; then's arguments
// Reply: {1, then ran (0/1), then's reply or 0, allowed, remaining, retry
// after (s, string), ...}, or {0} when the once key was already claimed.
const batchLua = `
redis.replicate_commands()
local function gcra(key, burst, rate, period, now)
  local emission_interval = period / rate
  local burst_offset = emission_interval * burst
  local tat = redis.call("GET", key)
  if not tat then tat = now else tat = tonumber(tat) end
  tat = math.max(tat, now)
  local new_tat = tat + emission_interval
  local allow_at = new_tat - burst_offset
  local diff = now - allow_at
  local remaining = diff / emission_interval
  if remaining < 0 then
    return 0, 0, tostring(diff * -1)
  end
  local reset_after = new_tat - now
  if reset_after > 0 then
    redis.call("SET", key, new_tat, "EX", math.ceil(reset_after))
  end
  return 1, math.floor(remaining), "-1"
end
%s
local k = 1
if ARGV[1] == "1" then
  if not redis.call("SET", KEYS[1], "1", "NX", "PX", ARGV[2]) then return {0} end
  k = 2
end
local n = tonumber(ARGV[3])
local t = redis.call("TIME")
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local out = {1, 0, 0}
local a = 4
local stopped = false
for i = k, k + n - 1 do
  local allowed, remaining, retry = gcra(KEYS[i], tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), now)
  out[#out + 1] = allowed
  out[#out + 1] = remaining
  out[#out + 1] = retry
  if allowed == 0 and ARGV[a + 3] == "1" then
    stopped = true
    break
  end
  a = a + 4
end
if then_ and not stopped then
  local K, A = {}, {}
  for i = k + n, #KEYS do K[#K + 1] = KEYS[i] end
  for i = 4 + 4 * n, #ARGV do A[#A + 1] = ARGV[i] end
  local reply = then_(K, A)
  if reply == nil then reply = false end
  out[2] = 1
  out[3] = reply
end
return out
`

var (
	batchScripts = redisx.NewComposer(batchLua)
	// batchScript is batchLua without work after it.
	batchScript = batchScripts.Script("")
)
