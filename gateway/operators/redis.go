package operators

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the production Store. All keys share the hash tag "{ops}", so
// the multi-key transactions (operator + username index) stay in one slot
// on Redis Cluster; back-office accounts are few, so one slot is no burden.
//
//	<prefix>:{ops}:op:<id>          JSON record
//	<prefix>:{ops}:user:<username>  operator id
//	<prefix>:{ops}:ids              set of all operator ids
//	<prefix>:{ops}:fail:<username>  hash n, until, last (unix ms); expires by itself
//	<prefix>:{ops}:ch:<key>         a single-use passkey challenge; expires by itself
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Redis store; prefix defaults to "bg".
func NewRedis(rdb redis.UniversalClient, prefix string) *Redis {
	if prefix == "" {
		prefix = "bg"
	}
	return &Redis{rdb: rdb, prefix: prefix + ":{ops}:"}
}

func (s *Redis) opKey(id string) string   { return s.prefix + "op:" + id }
func (s *Redis) userKey(u string) string  { return s.prefix + "user:" + u }
func (s *Redis) idsKey() string           { return s.prefix + "ids" }
func (s *Redis) failKey(u string) string  { return s.prefix + "fail:" + u }
func (s *Redis) chKey(k string) string    { return s.prefix + "ch:" + k }
func redisErr(op string, err error) error { return fmt.Errorf("operators: redis %s: %w", op, err) }

// msTime reads a stored unix-millisecond time; 0 is the zero time.
func msTime(ms int64) (t time.Time) {
	if ms > 0 {
		t = time.UnixMilli(ms)
	}
	return t
}

// maxTxRetries bounds optimistic-transaction retries under contention.
const maxTxRetries = 16

// Create implements Store.
func (s *Redis) Create(ctx context.Context, op Operator) error {
	if err := checkNew(op); err != nil {
		return err
	}
	b, err := encodeRecord(op)
	if err != nil {
		return err
	}
	uk := s.userKey(op.Username)
	for range maxTxRetries {
		err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			n, err := tx.Exists(ctx, uk, s.opKey(op.ID)).Result()
			if err != nil {
				return redisErr("exists", err)
			}
			if n > 0 {
				return ErrExists
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, s.opKey(op.ID), b, 0)
				p.Set(ctx, uk, op.ID, 0)
				p.SAdd(ctx, s.idsKey(), op.ID)
				return nil
			})
			return err
		}, uk)
		if !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil && !errors.Is(err, ErrExists) {
		return redisErr("create", err)
	}
	return err
}

func (s *Redis) lockout(ctx context.Context, username string) (Lockout, error) {
	v, err := s.rdb.HMGet(ctx, s.failKey(username), "n", "until").Result()
	if err != nil {
		return Lockout{}, redisErr("hmget", err)
	}
	return parseLockout(v), nil
}

func parseLockout(v []any) Lockout {
	num := func(x any) int64 {
		str, _ := x.(string)
		n, _ := strconv.ParseInt(str, 10, 64)
		return n
	}
	return Lockout{Failures: int(num(v[0])), LockedUntil: msTime(num(v[1]))}
}

// Lockout implements Store.
func (s *Redis) Lockout(ctx context.Context, username string) (Lockout, error) {
	return s.lockout(ctx, username)
}

// Get implements Store.
func (s *Redis) Get(ctx context.Context, id string) (Operator, error) {
	b, err := s.rdb.Get(ctx, s.opKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Operator{}, ErrNotFound
	}
	if err != nil {
		return Operator{}, redisErr("get", err)
	}
	r, err := decodeRecord(b)
	if err != nil {
		return Operator{}, err
	}
	l, err := s.lockout(ctx, r.Username)
	if err != nil {
		return Operator{}, err
	}
	return r.operator(l), nil
}

// GetByUsername implements Store.
func (s *Redis) GetByUsername(ctx context.Context, username string) (Operator, error) {
	id, err := s.rdb.Get(ctx, s.userKey(username)).Result()
	if errors.Is(err, redis.Nil) {
		return Operator{}, ErrNotFound
	}
	if err != nil {
		return Operator{}, redisErr("get", err)
	}
	return s.Get(ctx, id)
}

// List implements Store.
func (s *Redis) List(ctx context.Context, merchantID string) ([]Operator, error) {
	ids, err := s.rdb.SMembers(ctx, s.idsKey()).Result()
	if err != nil {
		return nil, redisErr("smembers", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.opKey(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, redisErr("mget", err)
	}
	var recs []record
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // removed since SMEMBERS
		}
		r, err := decodeRecord([]byte(str))
		if err != nil {
			return nil, err
		}
		if merchantID == "" || r.MerchantID == merchantID {
			recs = append(recs, r)
		}
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range recs {
			p.HMGet(ctx, s.failKey(r.Username), "n", "until")
		}
		return nil
	})
	if err != nil {
		return nil, redisErr("hmget", err)
	}
	ops := make([]Operator, len(recs))
	for i, r := range recs {
		ops[i] = r.operator(parseLockout(cmds[i].(*redis.SliceCmd).Val()))
	}
	sortByUsername(ops)
	return ops, nil
}

// Update implements Store. fn may run more than once when another writer
// races it, so it must only depend on the operator it is given.
func (s *Redis) Update(ctx context.Context, id string, fn func(*Operator) error) (Operator, error) {
	key := s.opKey(id)
	var out record
	var fnErr error
	var err error
	for range maxTxRetries {
		fnErr = nil
		err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			b, err := tx.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				fnErr = ErrNotFound
				return fnErr
			}
			if err != nil {
				return err
			}
			r, err := decodeRecord(b)
			if err != nil {
				fnErr = err
				return err
			}
			op := r.operator(Lockout{})
			if err := fn(&op); err != nil {
				fnErr = err
				return err
			}
			if op.ID != r.ID || op.Username != r.Username {
				fnErr = errImmutable
				return fnErr
			}
			nb, err := encodeRecord(op)
			if err != nil {
				fnErr = err
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, nb, 0)
				return nil
			})
			out = toRecord(op)
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if fnErr != nil {
		return Operator{}, fnErr
	}
	if err != nil {
		return Operator{}, redisErr("update", err)
	}
	l, err := s.lockout(ctx, out.Username)
	if err != nil {
		return Operator{}, err
	}
	return out.operator(l), nil
}

// failScript counts one failure atomically; the same rules as
// failureState.next (store.go), which the bolt store uses.
// KEYS[1] failure hash; ARGV: now ms, max failures, lock ms, window ms, ttl ms.
var failScript = redis.NewScript(`
local now, max, lock, window, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HMGET', KEYS[1], 'n', 'until', 'last')
local n, untilv, last = tonumber(v[1] or '0'), tonumber(v[2] or '0'), tonumber(v[3] or '0')
if untilv > 0 and now >= untilv then n, untilv, last = 0, 0, 0 end
if untilv == 0 and window > 0 and last > 0 and now - last >= window then n, last = 0, 0 end
if untilv > now then return {n, untilv} end
n = n + 1
last = now
if n >= max then untilv = now + lock end
redis.call('HSET', KEYS[1], 'n', n, 'until', untilv, 'last', last)
redis.call('PEXPIRE', KEYS[1], ttl)
return {n, untilv}
`)

// RecordFailure implements Store.
func (s *Redis) RecordFailure(ctx context.Context, username string, now time.Time, p LockoutPolicy) (Lockout, error) {
	// The key outlives both the lock and the window, whichever is longer;
	// it is only garbage collection, the stored times decide.
	ttl := p.LockFor + p.Window
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	res, err := failScript.Run(ctx, s.rdb, []string{s.failKey(username)},
		now.UnixMilli(), p.MaxFailures, p.LockFor.Milliseconds(), p.Window.Milliseconds(), ttl.Milliseconds()).Int64Slice()
	if err != nil {
		return Lockout{}, redisErr("record failure", err)
	}
	if len(res) != 2 {
		return Lockout{}, redisErr("record failure", errors.New("unexpected script reply"))
	}
	return Lockout{Failures: int(res[0]), LockedUntil: msTime(res[1])}, nil
}

// ResetFailures implements Store.
func (s *Redis) ResetFailures(ctx context.Context, username string) error {
	if err := s.rdb.Del(ctx, s.failKey(username)).Err(); err != nil {
		return redisErr("del", err)
	}
	return nil
}

// challengeGC is how long Redis keeps a challenge key at most: only
// garbage collection; the expiry stored in it decides (on the service's
// clock, as the bolt store does).
const challengeGC = 10 * time.Minute

// PutChallenge implements Store (SET NX).
func (s *Redis) PutChallenge(ctx context.Context, key string, now time.Time, ttl time.Duration) error {
	ok, err := s.rdb.SetNX(ctx, s.chKey(key), strconv.FormatInt(now.Add(ttl).UnixMilli(), 10), max(ttl, challengeGC)).Result()
	if err != nil {
		return redisErr("setnx", err)
	}
	if !ok {
		return ErrExists
	}
	return nil
}

// TakeChallenge implements Store: GETDEL answers the key to exactly one
// caller.
func (s *Redis) TakeChallenge(ctx context.Context, key string, now time.Time) (bool, error) {
	v, err := s.rdb.GetDel(ctx, s.chKey(key)).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, redisErr("getdel", err)
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	return err == nil && now.UnixMilli() < ms, nil
}
