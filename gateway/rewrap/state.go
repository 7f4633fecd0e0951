package rewrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"
)

// maxState bounds a stored pass (its by-kid counts grow with rotations).
const maxState = 64 << 10

// errCorruptState: a stored pass that cannot be read is started over.
var errCorruptState = errors.New("rewrap: stored state unreadable")

func decodeState(b []byte) (Progress, error) {
	var p Progress
	if len(b) > maxState {
		return p, fmt.Errorf("%w: too large", errCorruptState)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", errCorruptState, err)
	}
	return p, nil
}

// MemoryState keeps passes in this process only: a pass that stops starts
// over.
type MemoryState struct {
	mu sync.Mutex
	m  map[string]Progress
}

// NewMemoryState returns an empty MemoryState.
func NewMemoryState() *MemoryState { return &MemoryState{m: map[string]Progress{}} }

// Load implements State.
func (s *MemoryState) Load(_ context.Context, name string) (Progress, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.m[name]
	if ok {
		p.ByKid = cloneMap(p.ByKid)
	}
	return p, ok, nil
}

// Save implements State.
func (s *MemoryState) Save(_ context.Context, name string, p Progress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.ByKid = cloneMap(p.ByKid)
	s.m[name] = p
	return nil
}

func cloneMap(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// RedisState keeps passes in Redis, one string per scope: <prefix>:<scope>.
type RedisState struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisState returns a RedisState; prefix "" means "bg:gw:rewrap".
func NewRedisState(rdb redis.UniversalClient, prefix string) *RedisState {
	if prefix == "" {
		prefix = "bg:gw:rewrap"
	}
	return &RedisState{rdb: rdb, prefix: prefix}
}

// Load implements State.
func (s *RedisState) Load(ctx context.Context, name string) (Progress, bool, error) {
	b, err := s.rdb.Get(ctx, s.prefix+":"+name).Bytes()
	if errors.Is(err, redis.Nil) {
		return Progress{}, false, nil
	}
	if err != nil {
		return Progress{}, false, fmt.Errorf("rewrap: redis state: %w", err)
	}
	p, err := decodeState(b)
	return p, err == nil, err
}

// Save implements State.
func (s *RedisState) Save(ctx context.Context, name string, p Progress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.prefix+":"+name, b, 0).Err(); err != nil {
		return fmt.Errorf("rewrap: redis state: %w", err)
	}
	return nil
}

var bState = []byte("rewrap_state")

// BoltState keeps passes in a bucket of the gateway's bbolt file.
type BoltState struct{ db *bolt.DB }

// NewBoltState creates its bucket in db.
func NewBoltState(db *bolt.DB) (*BoltState, error) {
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bState)
		return err
	}); err != nil {
		return nil, fmt.Errorf("rewrap: bolt state: %w", err)
	}
	return &BoltState{db: db}, nil
}

// Load implements State.
func (s *BoltState) Load(_ context.Context, name string) (Progress, bool, error) {
	var b []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		b = append([]byte(nil), tx.Bucket(bState).Get([]byte(name))...)
		return nil
	}); err != nil {
		return Progress{}, false, fmt.Errorf("rewrap: bolt state: %w", err)
	}
	if len(b) == 0 {
		return Progress{}, false, nil
	}
	p, err := decodeState(b)
	return p, err == nil, err
}

// Save implements State.
func (s *BoltState) Save(_ context.Context, name string, p Progress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bState).Put([]byte(name), b) }); err != nil {
		return fmt.Errorf("rewrap: bolt state: %w", err)
	}
	return nil
}
