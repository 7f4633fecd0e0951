package merchants

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/testenv"
)

// isolatedRedis is a real Redis on a database leased to this test alone.
func isolatedRedis(t testing.TB) (*redis.Client, string) { return testenv.Redis(t), "bgtest" }
