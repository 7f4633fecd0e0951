package websession

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the production Store. Keys share the hash tag "{sess}", so the
// session and its operator index change in one MULTI even on Redis Cluster
// (back-office sessions are few; one slot carries them easily).
//
//	<prefix>:{sess}:s:<sha256(id)>   JSON record, TTL = remaining idle/absolute time
//	<prefix>:{sess}:op:<operatorID>  set of sha256(id) of that operator's sessions
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	cfg    Config
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Redis store; prefix defaults to "bg".
func NewRedis(rdb redis.UniversalClient, prefix string, cfg Config) (*Redis, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if prefix == "" {
		prefix = "bg"
	}
	return &Redis{rdb: rdb, prefix: prefix + ":{sess}:", cfg: cfg}, nil
}

func (s *Redis) sessKey(hash string) string { return s.prefix + "s:" + hash }
func (s *Redis) opKey(opID string) string   { return s.prefix + "op:" + opID }

func redisErr(op string, err error) error { return fmt.Errorf("websession: redis %s: %w", op, err) }

// expiryGrace keeps a record a little past its end, so a request right after
// expiry is told "expired" (and the session is deleted) rather than "not
// found"; the record's own times decide validity either way.
const expiryGrace = time.Minute

// ttl turns a remaining lifetime into a Redis TTL (which must be > 0).
func ttl(d time.Duration) time.Duration { return max(d, 0) + expiryGrace }

const maxTxRetries = 16

// Create implements Store.
func (s *Redis) Create(ctx context.Context, operatorID string, now time.Time) (Session, error) {
	sess, r, err := newRecord(operatorID, now)
	if err != nil {
		return Session{}, err
	}
	b, err := encode(r)
	if err != nil {
		return Session{}, err
	}
	h, idx := idHash(sess.ID), s.opKey(operatorID)
	// One MULTI: DeleteForOperator WATCHes the index, so a session cannot
	// slip in between its read of the index and its deletes.
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.sessKey(h), b, ttl(s.cfg.remaining(r, now)))
		p.SAdd(ctx, idx, h)
		// The index outlives every member: none lives past AbsoluteTimeout.
		p.PExpire(ctx, idx, s.cfg.AbsoluteTimeout)
		return nil
	})
	if err != nil {
		return Session{}, redisErr("create", err)
	}
	s.pruneIndex(ctx, idx)
	return sess, nil
}

// pruneIndex drops index members whose session has expired, so an operator
// who logs in all day does not grow its set without bound. Best effort.
func (s *Redis) pruneIndex(ctx context.Context, idx string) {
	members, err := s.rdb.SMembers(ctx, idx).Result()
	if err != nil || len(members) < 2 {
		return
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range members {
			p.Exists(ctx, s.sessKey(m))
		}
		return nil
	})
	if err != nil {
		return
	}
	var stale []any
	for i, c := range cmds {
		if c.(*redis.IntCmd).Val() == 0 {
			stale = append(stale, members[i])
		}
	}
	if len(stale) > 0 {
		_ = s.rdb.SRem(ctx, idx, stale...).Err()
	}
}

func (s *Redis) touch(ctx context.Context, id string, now time.Time, reauth bool) (Session, error) {
	if !wellFormed(id) {
		return Session{}, ErrNotFound
	}
	h := idHash(id)
	key := s.sessKey(h)
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, redisErr("get", err)
	}
	r, err := decode(b)
	if err != nil {
		return Session{}, err
	}
	r, left, err := s.cfg.touch(r, now, reauth)
	if errors.Is(err, ErrExpired) {
		if _, derr := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, key)
			p.SRem(ctx, s.opKey(r.OperatorID), h)
			return nil
		}); derr != nil {
			// Still expired (and its TTL removes it soon); say both.
			return Session{}, errors.Join(ErrExpired, redisErr("delete expired", derr))
		}
		return Session{}, ErrExpired
	}
	if b, err = encode(r); err != nil {
		return Session{}, err
	}
	// XX: a session deleted (logout, revocation) since the GET stays deleted.
	err = s.rdb.SetArgs(ctx, key, b, redis.SetArgs{Mode: "XX", TTL: ttl(left)}).Err()
	if errors.Is(err, redis.Nil) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, redisErr("set", err)
	}
	return r.session(id), nil
}

// Get implements Store.
func (s *Redis) Get(ctx context.Context, id string, now time.Time) (Session, error) {
	return s.touch(ctx, id, now, false)
}

// Reauth implements Store.
func (s *Redis) Reauth(ctx context.Context, id string, now time.Time) (Session, error) {
	return s.touch(ctx, id, now, true)
}

// Delete implements Store.
func (s *Redis) Delete(ctx context.Context, id string) error {
	if !wellFormed(id) {
		return nil
	}
	h := idHash(id)
	key := s.sessKey(h)
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return redisErr("get", err)
	}
	var opID string
	if r, err := decode(b); err == nil {
		opID = r.OperatorID
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		if opID != "" {
			p.SRem(ctx, s.opKey(opID), h)
		}
		return nil
	})
	if err != nil {
		return redisErr("delete", err)
	}
	return nil
}

// DeleteForOperator implements Store.
func (s *Redis) DeleteForOperator(ctx context.Context, operatorID string) error {
	idx := s.opKey(operatorID)
	var err error
	for range maxTxRetries {
		err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			members, err := tx.SMembers(ctx, idx).Result()
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for _, m := range members {
					p.Del(ctx, s.sessKey(m))
				}
				p.Del(ctx, idx)
				return nil
			})
			return err
		}, idx)
		if !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil {
		return redisErr("delete for operator", err)
	}
	return nil
}
