package testenv

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// CountTrips counts c's Redis round trips from now on: each command and
// each pipeline is one (a batch of scripts, see internal/redisx, is one
// pipeline). Tests use it to pin how many round trips an operation makes.
func CountTrips(c redis.UniversalClient) *atomic.Int64 {
	n := new(atomic.Int64)
	c.AddHook(tripHook{n})
	return n
}

type tripHook struct{ n *atomic.Int64 }

func (tripHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h tripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h tripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}
