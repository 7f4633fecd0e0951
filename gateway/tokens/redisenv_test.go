package tokens

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// isolatedRedis returns a real Redis client and a key prefix no other test
// uses. testenv.Redis decides skip (or fail under CI) and hands out numbered
// databases that it flushes; separate test processes can draw the same
// number and flush each other's keys mid-test (seen with a CVC TTL test
// sleeping while another package started). So the stores under test work in
// database 0 under a random prefix, and only their own keys are deleted.
func isolatedRedis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	opt := *testenv.Redis(t).Options()
	opt.DB = 0
	rdb := redis.NewClient(&opt)
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "bgtest-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			_ = rdb.Del(ctx, iter.Val()).Err()
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}
