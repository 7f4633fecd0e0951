package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the production Store:
//
//	p:wh:ep:<merchant>   hash   endpoint id -> JSON endpoint
//	p:wh:d:<id>          string JSON delivery (expires LogRetention after its last save)
//	p:wh:due             zset   pending delivery ids by due time (unix ms)
//	p:wh:log:<merchant>  zset   the merchant's delivery ids by creation (the newest MaxLogLimit kept)
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	// cluster: one pipeline's commands may run on several nodes at once,
	// so Enqueue writes the record before it queues it, in two steps.
	cluster bool
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on rdb; prefix "" means "bg".
func NewRedis(rdb redis.UniversalClient, prefix string) *Redis {
	if prefix == "" {
		prefix = "bg"
	}
	_, cluster := rdb.(*redis.ClusterClient)
	return &Redis{rdb: rdb, prefix: prefix, cluster: cluster}
}

func (r *Redis) epKey(m string) string  { return r.prefix + ":wh:ep:" + m }
func (r *Redis) dKey(id string) string  { return r.prefix + ":wh:d:" + id }
func (r *Redis) dueKey() string         { return r.prefix + ":wh:due" }
func (r *Redis) logKey(m string) string { return r.prefix + ":wh:log:" + m }

// addEndpoint counts and adds in one step, so concurrent adds cannot pass
// the limit together. KEYS: hash; ARGV: id, JSON, max.
var addEndpoint = redis.NewScript(`
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`)

// AddEndpoint implements Store.
func (r *Redis) AddEndpoint(ctx context.Context, e Endpoint, max int) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	n, err := addEndpoint.Run(ctx, r.rdb, []string{r.epKey(e.MerchantID)}, e.ID, string(v), max).Int()
	if err != nil {
		return fmt.Errorf("webhooks: redis add endpoint: %w", err)
	}
	if n == 0 {
		return ErrTooMany
	}
	return nil
}

// Endpoints implements Store.
func (r *Redis) Endpoints(ctx context.Context, merchant string) ([]Endpoint, error) {
	all, err := r.rdb.HGetAll(ctx, r.epKey(merchant)).Result()
	if err != nil {
		return nil, fmt.Errorf("webhooks: redis endpoints: %w", err)
	}
	out := make([]Endpoint, 0, len(all))
	for _, v := range all {
		var e Endpoint
		if err := json.Unmarshal([]byte(v), &e); err != nil {
			return nil, fmt.Errorf("webhooks: corrupt endpoint: %w", err)
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// Endpoint implements Store.
func (r *Redis) Endpoint(ctx context.Context, merchant, id string) (Endpoint, error) {
	v, err := r.rdb.HGet(ctx, r.epKey(merchant), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return Endpoint{}, ErrNotFound
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhooks: redis endpoint: %w", err)
	}
	var e Endpoint
	if err := json.Unmarshal(v, &e); err != nil {
		return Endpoint{}, fmt.Errorf("webhooks: corrupt endpoint: %w", err)
	}
	return e, nil
}

// DeleteEndpoint implements Store.
func (r *Redis) DeleteEndpoint(ctx context.Context, merchant, id string) error {
	n, err := r.rdb.HDel(ctx, r.epKey(merchant), id).Result()
	if err != nil {
		return fmt.Errorf("webhooks: redis delete endpoint: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Enqueue implements Store. The record is written before it is queued, so
// the queue never names a delivery that does not exist: on one node in one
// pipeline (one round trip; Redis runs a connection's commands in order,
// and a pipeline cut short runs the beginning of it), on Cluster in two
// steps.
func (r *Redis) Enqueue(ctx context.Context, d Delivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return err
	}
	queue := func(p redis.Pipeliner) {
		p.ZAdd(ctx, r.logKey(d.MerchantID), redis.Z{Score: float64(d.CreatedAt.UnixMilli()), Member: d.ID})
		p.ZRemRangeByRank(ctx, r.logKey(d.MerchantID), 0, -MaxLogLimit-1)
		p.Expire(ctx, r.logKey(d.MerchantID), LogRetention)
	}
	if r.cluster {
		if err := r.save(ctx, d, v, nil); err != nil {
			return fmt.Errorf("webhooks: redis enqueue: %w", err)
		}
		_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { queue(p); return nil })
	} else {
		err = r.save(ctx, d, v, queue)
	}
	if err != nil {
		return fmt.Errorf("webhooks: redis enqueue: %w", err)
	}
	return nil
}

// claimDue takes due ids and pushes them back by the lease in one step.
// KEYS: due; ARGV: now ms, lease-end ms, n.
var claimDue = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids`)

// ClaimDue implements Store.
func (r *Redis) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, n int) ([]Delivery, error) {
	ids, err := claimDue.Run(ctx, r.rdb, []string{r.dueKey()}, now.UnixMilli(), now.Add(lease).UnixMilli(), n).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("webhooks: redis claim: %w", err)
	}
	var out []Delivery
	for _, id := range ids {
		v, err := r.rdb.Get(ctx, r.dKey(id)).Bytes()
		var d Delivery
		switch {
		case errors.Is(err, redis.Nil):
			r.rdb.ZRem(ctx, r.dueKey(), id)
			continue
		case err != nil:
			return out, fmt.Errorf("webhooks: redis claim: %w", err)
		case json.Unmarshal(v, &d) != nil:
			r.rdb.ZRem(ctx, r.dueKey(), id)
			continue
		}
		d.NextAt = now.Add(lease)
		out = append(out, d)
	}
	return out, nil
}

// Save implements Store.
func (r *Redis) Save(ctx context.Context, d Delivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if err := r.save(ctx, d, v, nil); err != nil {
		return fmt.Errorf("webhooks: redis save: %w", err)
	}
	return nil
}

// save writes d (v is its JSON) and its place in the due queue in one
// pipeline, then the commands of then, if any, in the same pipeline.
func (r *Redis) save(ctx context.Context, d Delivery, v []byte, then func(redis.Pipeliner)) error {
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.dKey(d.ID), v, LogRetention)
		if d.Status == StatusPending {
			p.ZAdd(ctx, r.dueKey(), redis.Z{Score: float64(d.NextAt.UnixMilli()), Member: d.ID})
		} else {
			p.ZRem(ctx, r.dueKey(), d.ID)
		}
		if then != nil {
			then(p)
		}
		return nil
	})
	return err
}

// Deliveries implements Store.
func (r *Redis) Deliveries(ctx context.Context, merchant string, limit int) ([]Delivery, error) {
	ids, err := r.rdb.ZRevRange(ctx, r.logKey(merchant), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("webhooks: redis log: %w", err)
	}
	out := []Delivery{}
	for _, id := range ids {
		v, err := r.rdb.Get(ctx, r.dKey(id)).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("webhooks: redis log: %w", err)
		}
		var d Delivery
		if json.Unmarshal(v, &d) == nil && d.MerchantID == merchant {
			out = append(out, d)
		}
	}
	return out, nil
}
