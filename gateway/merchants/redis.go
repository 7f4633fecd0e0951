package merchants

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the production Store. All merchant keys share the hash tag
// {merchants}, so every change is one MULTI/EXEC even on Redis Cluster
// (merchants are few and small; the slot is read-mostly):
//
//	p:{merchants}:m:<id>          string JSON record (merchant + key hashes)
//	p:{merchants}:key:<sha256hex> string merchant id; a rotated-out key's entry
//	                              expires with its grace (PEXPIRE)
//	p:{merchants}:all             zset   ids by creation (unix ms)
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

func (r *Redis) recKey(id string) string  { return r.prefix + ":{merchants}:m:" + id }
func (r *Redis) keyKey(h string) string   { return r.prefix + ":{merchants}:key:" + h }
func (r *Redis) allKey() string           { return r.prefix + ":{merchants}:all" }
func redisErr(op string, err error) error { return fmt.Errorf("merchants: redis %s: %w", op, err) }

// Create implements Store.
func (r *Redis) Create(ctx context.Context, name string, origins []string) (Merchant, string, error) {
	rec, secret, err := newRecord(name, origins, r.o.now())
	if err != nil {
		return Merchant{}, "", err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return Merchant{}, "", fmt.Errorf("merchants: encode: %w", err)
	}
	_, err = r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.recKey(rec.ID), data, 0)
		p.Set(ctx, r.keyKey(rec.KeyHash), rec.ID, 0)
		p.ZAdd(ctx, r.allKey(), redis.Z{Score: float64(rec.CreatedAt.UnixMilli()), Member: rec.ID})
		return nil
	})
	if err != nil {
		return Merchant{}, "", redisErr("create", err)
	}
	return rec.Merchant, secret, nil
}

func (r *Redis) load(ctx context.Context, c redis.Cmdable, id string) (record, error) {
	data, err := c.Get(ctx, r.recKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return record{}, ErrNotFound
	}
	if err != nil {
		return record{}, redisErr("get", err)
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return record{}, fmt.Errorf("merchants: corrupt record: %w", err)
	}
	return rec, nil
}

// Authenticate implements Store.
func (r *Redis) Authenticate(ctx context.Context, secretKey string) (Merchant, error) {
	h := hashSecret(secretKey)
	if h == nil {
		return Merchant{}, ErrUnauthorized
	}
	id, err := r.rdb.Get(ctx, r.keyKey(hex.EncodeToString(h))).Result()
	if errors.Is(err, redis.Nil) {
		return Merchant{}, ErrUnauthorized
	}
	if err != nil {
		return Merchant{}, redisErr("authenticate", err)
	}
	rec, err := r.load(ctx, r.rdb, id)
	if errors.Is(err, ErrNotFound) {
		return Merchant{}, ErrUnauthorized
	}
	if err != nil {
		return Merchant{}, err
	}
	if !rec.matches(h, r.o.now()) {
		return Merchant{}, ErrUnauthorized
	}
	return rec.Merchant, nil
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, id string) (Merchant, error) {
	if !ValidID(id) {
		return Merchant{}, ErrNotFound
	}
	rec, err := r.load(ctx, r.rdb, id)
	return rec.Merchant, err
}

// List implements Store.
func (r *Redis) List(ctx context.Context) ([]Merchant, error) {
	ids, err := r.rdb.ZRange(ctx, r.allKey(), 0, -1).Result()
	if err != nil {
		return nil, redisErr("list", err)
	}
	out := make([]Merchant, 0, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.recKey(id)
	}
	vals, err := r.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, redisErr("list", err)
	}
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var rec record
		if err := json.Unmarshal([]byte(s), &rec); err != nil {
			return nil, fmt.Errorf("merchants: corrupt record: %w", err)
		}
		out = append(out, rec.Merchant)
	}
	sortMerchants(out)
	return out, nil
}

// update runs fn on the record under WATCH, so concurrent changes to one
// merchant (two rotations) serialise instead of losing one.
func (r *Redis) update(ctx context.Context, id string, fn func(*record, redis.Pipeliner) error) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	for range 10 {
		err := r.rdb.Watch(ctx, func(tx *redis.Tx) error {
			rec, err := r.load(ctx, tx, id)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				if err := fn(&rec, p); err != nil {
					return err
				}
				data, err := json.Marshal(rec)
				if err != nil {
					return err
				}
				p.Set(ctx, r.recKey(id), data, 0)
				return nil
			})
			return err
		}, r.recKey(id))
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalid) {
			return redisErr("update", err)
		}
		return err
	}
	return redisErr("update", errors.New("too much contention"))
}

// RotateKey implements Store.
func (r *Redis) RotateKey(ctx context.Context, id string, grace time.Duration) (string, error) {
	var secret string
	err := r.update(ctx, id, func(rec *record, p redis.Pipeliner) error {
		s, drop, keep, err := rotate(rec, grace, r.o.now())
		if err != nil {
			return err
		}
		secret = s
		for _, h := range drop {
			p.Del(ctx, r.keyKey(h))
		}
		if keep != "" {
			p.PExpire(ctx, r.keyKey(keep), grace)
		}
		p.Set(ctx, r.keyKey(rec.KeyHash), id, 0)
		return nil
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// SetOrigins implements Store.
func (r *Redis) SetOrigins(ctx context.Context, id string, origins []string) (Merchant, error) {
	norm, err := normOrigins(origins)
	if err != nil {
		return Merchant{}, err
	}
	var out Merchant
	err = r.update(ctx, id, func(rec *record, _ redis.Pipeliner) error {
		rec.AllowedOrigins = norm
		out = rec.Merchant
		return nil
	})
	return out, err
}
