package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Redis is the production Store, one string per key:
//
//	p:idem:<merchant>:<sha256(key)>  JSON record
//
// Lease and retention decisions use the caller's clock (passed into the
// scripts), so both stores and tests with a fake clock agree; the key's own
// TTL is a backstop equal to the same duration.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	o      options
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on rdb; prefix "" means "bg".
func NewRedis(rdb redis.UniversalClient, prefix string, opts ...Option) *Redis {
	if prefix == "" {
		prefix = "bg"
	}
	return &Redis{rdb: rdb, prefix: prefix, o: buildOptions(opts)}
}

// beginScript claims the key unless an unexpired record holds it; the check
// and the claim are one step, so concurrent retries cannot both proceed.
// KEYS: record; ARGV: now ms, new record JSON, ttl ms.
var beginScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  local e = cjson.decode(v)
  if tonumber(e.exp) > tonumber(ARGV[1]) then return {0, v} end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return {1, ''}`)

// ownerScript replaces (ARGV[2] set) or deletes the record only while it
// still holds the caller's claim and no answer: a claim whose lease ran out
// and was taken by another request is never overwritten.
// KEYS: record; ARGV: claim, new record JSON or ”, ttl ms.
var ownerScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local e = cjson.decode(v)
if e.claim ~= ARGV[1] or e.answer then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`)

func (r *Redis) key(merchant, key string) (string, error) {
	k, err := storeKey(merchant, key)
	if err != nil {
		return "", err
	}
	return r.prefix + ":idem:" + k, nil
}

// Begin implements Store.
func (r *Redis) Begin(ctx context.Context, merchant, key, requestHash string) (Result, error) {
	k, err := r.key(merchant, key)
	if err != nil {
		return Result{}, err
	}
	claim, err := newClaim()
	if err != nil {
		return Result{}, fmt.Errorf("idempotency: claim: %w", err)
	}
	now := r.o.now()
	val, err := json.Marshal(record{Hash: requestHash, Claim: claim, Exp: now.Add(r.o.lease).UnixMilli()})
	if err != nil {
		return Result{}, err
	}
	res, err := beginScript.Run(ctx, r.rdb, []string{k}, now.UnixMilli(), string(val), r.o.lease.Milliseconds()).Slice()
	if err != nil {
		return Result{}, fmt.Errorf("idempotency: redis begin: %w", err)
	}
	if len(res) != 2 {
		return Result{}, errors.New("idempotency: redis begin: unexpected reply")
	}
	if n, _ := res[0].(int64); n == 1 {
		return Result{Claim: claim}, nil
	}
	raw, _ := res[1].(string)
	var rec record
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return Result{}, fmt.Errorf("idempotency: redis begin: corrupt record: %w", err)
	}
	return decide(rec, requestHash)
}

// Complete implements Store.
func (r *Redis) Complete(ctx context.Context, merchant, key, claim string, a Answer) error {
	if err := checkAnswer(a); err != nil {
		return err
	}
	k, err := r.key(merchant, key)
	if err != nil {
		return err
	}
	cur, err := r.rdb.Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) {
		return ErrLost
	}
	if err != nil {
		return fmt.Errorf("idempotency: redis complete: %w", err)
	}
	var rec record
	if err := json.Unmarshal(cur, &rec); err != nil {
		return fmt.Errorf("idempotency: redis complete: corrupt record: %w", err)
	}
	// The hash is the one stored with the claim; the script checks the claim.
	val, err := json.Marshal(record{Hash: rec.Hash, Answer: &a, Exp: r.o.now().Add(r.o.retention).UnixMilli()})
	if err != nil {
		return err
	}
	n, err := ownerScript.Run(ctx, r.rdb, []string{k}, claim, string(val), r.o.retention.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("idempotency: redis complete: %w", err)
	}
	if n != 1 {
		return ErrLost
	}
	return nil
}

// Abandon implements Store.
func (r *Redis) Abandon(ctx context.Context, merchant, key, claim string) error {
	k, err := r.key(merchant, key)
	if err != nil {
		return err
	}
	if err := ownerScript.Run(ctx, r.rdb, []string{k}, claim, "", 0).Err(); err != nil {
		return fmt.Errorf("idempotency: redis abandon: %w", err)
	}
	return nil
}
