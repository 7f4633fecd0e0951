package tokens

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/redisx"
)

// redisStores hands each subtest a store under its own key prefix on one
// shared test database, so subtests do not see each other's merchants.
func redisStores(t *testing.T) func(t *testing.T) Store {
	rdb, prefix := isolatedRedis(t)
	var n atomic.Int64
	return func(t *testing.T) Store {
		return NewRedis(rdb, fmt.Sprintf("%s-%d", prefix, n.Add(1)))
	}
}

func TestRedisStore(t *testing.T) {
	t.Parallel()
	runStoreContract(t, redisStores(t))
}

// TestRedisStoreClusterPath runs the contract on the path a Cluster takes
// (the owner pointer and merchant set in a pipeline before the token's
// script) on a single node: Put is one script everywhere else.
func TestRedisStoreClusterPath(t *testing.T) {
	t.Parallel()
	stores := redisStores(t)
	runStoreContract(t, func(t *testing.T) Store {
		s := stores(t).(*Redis)
		s.cluster = true
		return s
	})
}

// TestRedisKeysShareMerchantSlot checks the layout that makes Put atomic on
// Redis Cluster: every key of a token carries the merchant's hash tag, except
// the owner pointer and merchant set, which are documented as outside it.
func TestRedisKeysShareMerchantSlot(t *testing.T) {
	rdb, lay := isolatedRedis(t)
	s := NewRedis(rdb, lay)
	ctx := context.Background()
	tok, _, err := s.Put(ctx, sample("m_alice", 1), fakeJWE("cvc"), time.Minute, "idem")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, lay+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	outside := map[string]bool{lay + ":tok:owner:" + tok.ID: true, lay + ":tok:merchants": true}
	inSlot := 0
	for _, k := range keys {
		switch {
		case outside[k]:
			delete(outside, k)
		case strings.HasPrefix(k, lay+":{m_alice}:"):
			inSlot++
		default:
			t.Errorf("key %q outside the merchant slot", k)
		}
	}
	// record, toks, fp, kid, cvc, idem; the search index's b2, b4, b6, b8,
	// l4 and br lists, ready mark and combos
	if inSlot != 14 || len(outside) != 0 {
		t.Fatalf("in slot %d (want 14), missing outside keys %v; keys %v", inSlot, outside, keys)
	}
	ttl, err := rdb.PTTL(ctx, lay+":{m_alice}:cvc:"+tok.ID).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("cvc ttl %v %v", ttl, err)
	}
}

// TestRedisDanglingOwnerPointerIsHarmless: the pointer is written before the
// atomic script, so a crash in between leaves one; it must read as not found.
func TestRedisDanglingOwnerPointerIsHarmless(t *testing.T) {
	rdb, dang := isolatedRedis(t)
	s := NewRedis(rdb, dang)
	ctx := context.Background()
	id, _ := NewID()
	if err := rdb.Set(ctx, dang+":tok:owner:"+id, "m_alice", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, id); err != ErrNotFound {
		t.Fatalf("lookup: %v", err)
	}
	if _, err := s.TakeCVC(ctx, id); err != ErrNotFound {
		t.Fatalf("take cvc: %v", err)
	}
	if err := s.UpdateCiphertext(ctx, id, "kek-1", "fp_1", Rewrapped{JWE: fakeJWE("x"), Kid: "kek-2"}); err != ErrNotFound {
		t.Fatalf("rewrap: %v", err)
	}
	// The same id can still be used by its merchant.
	tok := sample("m_alice", 1)
	tok.ID = id
	if _, created, err := s.Put(ctx, tok, "", 0, ""); err != nil || !created {
		t.Fatalf("put over dangling pointer: %v %v", created, err)
	}
	var _ redis.UniversalClient = rdb
}

func BenchmarkRedisPut(b *testing.B) {
	rdb, prefix := isolatedRedis(b)
	s := NewRedis(rdb, prefix)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, _, err := s.Put(ctx, sample("m_bench", i), fakeJWE("cvc"), time.Minute, fmt.Sprint("idem-", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRedisPutThen: the work after Put runs once the token is stored, with
// its id appended, and on an idempotent replay with the first token's id;
// never on a conflict. The same in the token's script, on the Cluster
// path, and with the work's keys on another client (run after it).
func TestRedisPutThen(t *testing.T) {
	ctx := context.Background()
	// Records the id it is given under K[1] and answers {A[1], id}.
	const lua = `
redis.call('RPUSH', K[1], A[#A])
return {A[1], A[#A]}
`
	for _, tc := range []string{"one-script", "cluster-path", "other-client"} {
		t.Run(tc, func(t *testing.T) {
			rdb, prefix := isolatedRedis(t)
			s := NewRedis(rdb, prefix+"-"+tc)
			workOn := rdb
			switch tc {
			case "cluster-path":
				s.cluster = true
			case "other-client":
				workOn = redis.NewClient(rdb.Options())
				t.Cleanup(func() { _ = workOn.Close() })
			}
			then := redisx.Then{Client: workOn, Lua: lua, Keys: []string{prefix + "-" + tc + ":log"}, Args: []any{"hello"}}
			first, created, reply, err := s.PutThen(ctx, sample("m_alice", 1), "", 0, "order-1", then)
			if r, _ := reply.([]any); err != nil || !created || len(r) != 2 || r[0] != "hello" || r[1] != first.ID {
				t.Fatalf("first: %+v %v %#v %v", first, created, reply, err)
			}
			again, created, reply, err := s.PutThen(ctx, sample("m_alice", 2), "", 0, "order-1", then)
			if r, _ := reply.([]any); err != nil || created || again.ID != first.ID || len(r) != 2 || r[1] != first.ID {
				t.Fatalf("replay: %+v %v %#v %v, want the first token and its id given to the work", again, created, reply, err)
			}
			taken := sample("m_bob", 3)
			taken.ID = first.ID // another merchant's id: a conflict
			if _, _, reply, err := s.PutThen(ctx, taken, "", 0, "", then); !errors.Is(err, ErrConflict) || reply != nil {
				t.Fatalf("conflict: %#v %v", reply, err)
			}
			if got, err := workOn.LRange(ctx, prefix+"-"+tc+":log", 0, -1).Result(); err != nil || len(got) != 2 || got[0] != first.ID || got[1] != first.ID {
				t.Fatalf("the work ran with %v (%v), want the first id twice and not for the conflict", got, err)
			}
		})
	}
}
