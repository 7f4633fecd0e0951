package merchants

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestBoltStore(t *testing.T) {
	runStoreContract(t, func(t *testing.T, now func() time.Time) Store {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "m.db"), 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		s, err := NewBolt(db, WithClock(now))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestRedisStore(t *testing.T) {
	rdb, prefix := isolatedRedis(t)
	var n atomic.Int64
	runStoreContract(t, func(t *testing.T, now func() time.Time) Store {
		return NewRedis(rdb, fmt.Sprintf("%s-%d", prefix, n.Add(1)), WithClock(now))
	})
}

// TestRedisStoresOnlyHashes: nothing in Redis contains the secret key, and
// every key shares the {merchants} slot.
func TestRedisStoresOnlyHashes(t *testing.T) {
	rdb, hash := isolatedRedis(t)
	s := NewRedis(rdb, hash)
	ctx := context.Background()
	_, secret, err := s.Create(ctx, "A", []string{"https://a.example"})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, hash+":*").Result()
	if err != nil || len(keys) != 3 {
		t.Fatalf("keys %v %v", keys, err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, hash+":{merchants}:") {
			t.Errorf("key %q outside the {merchants} slot", k)
		}
		if strings.Contains(k, secret) {
			t.Errorf("key name holds the secret")
		}
		if typ, _ := rdb.Type(ctx, k).Result(); typ == "string" {
			if v, _ := rdb.Get(ctx, k).Result(); strings.Contains(v, secret) || strings.Contains(v, secret[3:]) {
				t.Errorf("value of %q holds the secret", k)
			}
		}
	}
}

func TestRedisRotatedKeyIndexExpires(t *testing.T) {
	rdb, rot := isolatedRedis(t)
	s := NewRedis(rdb, rot)
	ctx := context.Background()
	m, old, err := s.Create(ctx, "A", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateKey(ctx, m.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, rot+":{merchants}:key:"+fmt.Sprintf("%x", hashSecret(old))).Result()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("old key index ttl %v %v, want about 1h", ttl, err)
	}
}

func BenchmarkAuthenticateRedis(b *testing.B) {
	rdb, prefix := isolatedRedis(b)
	s := NewRedis(rdb, prefix)
	ctx := context.Background()
	_, key, err := s.Create(ctx, "A", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}
