package redisx_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/testenv"
)

// TestLostAnswerIsNotRunTwice: when Redis runs a command and its answer is
// lost with the connection, go-redis's retry would run it a second time
// and hand the caller the second run's answer: the replay cache's SET NX
// would answer "already claimed" to the request that claimed it (a false
// 409, audited as a replay), a script would count twice, a nonce's GETDEL
// would answer "no such nonce". Such a command must fail instead (its
// caller refuses, 503), having run once; a read is retried as before.
// Both kinds of client: on the batched one a lone script is sent by its
// caller, as on the other (TestBatchIsNeverSentTwice covers a batch's).
func TestLostAnswerIsNotRunTwice(t *testing.T) {
	count := redis.NewScript(`return redis.call('INCR', KEYS[1])`)
	for _, unbatched := range []bool{false, true} {
		srv := testenv.StartRedisServer(t)
		proxy := testenv.NewFaultProxy(t, srv.Addr)
		rdb, err := redisx.New(redisx.Config{Addrs: proxy.Addr, Timeout: timeout, Unbatched: unbatched})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rdb.Close() })
		check := srv.Client(t)
		ctx := context.Background()
		if err := count.Load(ctx, rdb).Err(); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, key string
			do        func() error
			// ranOnce checks the command's effect on the server.
			ranOnce func() error
		}{
			{"claim", "claim:lost", func() error { return rdb.SetNX(ctx, "claim:lost", "1", time.Minute).Err() }, func() error {
				return expectExists(ctx, check, "claim:lost")
			}},
			{"script", "count:lost", func() error { return count.Run(ctx, rdb, []string{"count:lost"}).Err() }, func() error {
				return expectInt(ctx, check, "count:lost", 1)
			}},
			{"take", "nonce:lost", func() error { return rdb.GetDel(ctx, "nonce:lost").Err() }, func() error {
				if n, err := check.Exists(ctx, "nonce:lost").Result(); err != nil || n != 0 {
					return errors.New("the nonce is still there")
				}
				return nil
			}},
			// A webhook endpoint's delete answers how many fields went:
			// a second run answers 0, a 404 to the request that deleted it.
			{"delete", "endpoints:lost", func() error {
				n, err := rdb.HDel(ctx, "endpoints:lost", "ep").Result()
				if err == nil && n == 0 {
					return redis.Nil
				}
				return err
			}, func() error {
				if n, err := check.HExists(ctx, "endpoints:lost", "ep").Result(); err != nil || n {
					return errors.New("the endpoint is still there")
				}
				return nil
			}},
		} {
			t.Run(mode(unbatched)+"/"+tc.name, func(t *testing.T) {
				if err := check.Set(ctx, "nonce:lost", "binding", time.Minute).Err(); err != nil {
					t.Fatal(err)
				}
				if err := check.HSet(ctx, "endpoints:lost", "ep", "url").Err(); err != nil {
					t.Fatal(err)
				}
				proxy.LoseReplyTo(tc.key)
				err := tc.do()
				if err == nil || errors.Is(err, redis.Nil) {
					t.Fatalf("answer lost with its connection: got %v, want the connection's error (a second run answered)", err)
				}
				if err := tc.ranOnce(); err != nil {
					t.Fatal(err)
				}
			})
		}
		t.Run(mode(unbatched)+"/read-is-retried", func(t *testing.T) {
			proxy.LoseReplyTo("claim:lost")
			if err := rdb.Get(ctx, "claim:lost").Err(); err != nil {
				t.Fatalf("a read whose answer was lost: %v, want go-redis's retry to answer", err)
			}
		})
	}
}

func mode(unbatched bool) string {
	if unbatched {
		return "unbatched"
	}
	return "batched"
}

func expectExists(ctx context.Context, c *redis.Client, key string) error {
	if n, err := c.Exists(ctx, key).Result(); err != nil || n != 1 {
		return errors.New(key + " was not written")
	}
	return nil
}

func expectInt(ctx context.Context, c *redis.Client, key string, want int) error {
	n, err := c.Get(ctx, key).Int()
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("%s ran %d times, want %d", key, n, want)
	}
	return nil
}
