package redisx

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/testenv"
)

func TestThen(t *testing.T) {
	rdb := testenv.Redis(t)
	other := redis.NewClient(rdb.Options())
	t.Cleanup(func() { _ = other.Close() })
	then := Then{Client: rdb, Lua: `return {K[1], A[1], A[2]}`, Keys: []string{"k"}, Args: []any{"a"}}
	if !then.Joins(rdb) || then.Joins(other) || then.Joins(redis.NewClusterClient(&redis.ClusterOptions{})) {
		t.Fatal("Joins: only a script on the work's own client, and never on a Cluster")
	}
	v, err := then.Alone(context.Background(), "extra")
	if r, _ := v.([]any); err != nil || len(r) != 3 || r[0] != "k" || r[1] != "a" || r[2] != "extra" {
		t.Fatalf("Alone = %#v, %v", v, err)
	}
	if v, err := (Then{Client: rdb, Lua: `return nil`}).Alone(context.Background()); v != nil || err != nil {
		t.Fatalf("a nil reply: %#v %v", v, err)
	}
	c := NewComposer("%sreturn then_ and then_(KEYS, ARGV) or 'none'")
	// Two calls with one body share the cached *redis.Script; another body
	// gets its own.
	one, oneAgain, two := c.Script("return 1"), c.Script("return 1"), c.Script("return 2")
	if one != oneAgain || one == two {
		t.Fatal("Composer: one script per body")
	}
	if v, err := c.Script("").Run(context.Background(), rdb, nil).Result(); err != nil || v != "none" {
		t.Fatalf("no body: %#v %v", v, err)
	}
}
