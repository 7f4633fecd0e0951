package redisx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrLockLost is returned by Refresh when the lock expired and someone else
// may hold it: the holder must stop the work the lock guards.
var ErrLockLost = errors.New("redisx: lock lost")

// Lock is a lease on one Redis key (SET NX PX with a random token), for work
// that one replica of a service should do at a time: a scheduled key
// rotation, a rewrap pass. It is a lease, not a mutex: it lapses after its
// TTL unless refreshed, so a crashed holder frees it, and a holder that
// stalls longer than the TTL may find it taken (Refresh says so). Work it
// guards must therefore be safe to repeat, as a rotation that re-reads the
// keyring and a compare-and-set rewrap are.
type Lock struct {
	rdb   redis.UniversalClient
	key   string
	token string
	ttl   time.Duration
}

// Only the holder's token may extend or delete the key.
var (
	refreshLua = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
	releaseLua = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
)

// TryLock takes the lease on key for ttl. It returns nil and no error when
// another holder has it.
func TryLock(ctx context.Context, rdb redis.UniversalClient, key string, ttl time.Duration) (*Lock, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("redisx: lock token: %w", err)
	}
	l := &Lock{rdb: rdb, key: key, token: hex.EncodeToString(b[:]), ttl: ttl}
	ok, err := rdb.SetNX(ctx, key, l.token, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("redisx: lock %s: %w", key, err)
	}
	if !ok {
		return nil, nil
	}
	return l, nil
}

// Refresh extends the lease by its TTL, or returns ErrLockLost.
func (l *Lock) Refresh(ctx context.Context) error {
	n, err := refreshLua.Run(ctx, l.rdb, []string{l.key}, l.token, l.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("redisx: refresh lock %s: %w", l.key, err)
	}
	if n == 0 {
		return ErrLockLost
	}
	return nil
}

// Release gives the lease up if it is still this holder's.
func (l *Lock) Release(ctx context.Context) error {
	if err := releaseLua.Run(ctx, l.rdb, []string{l.key}, l.token).Err(); err != nil {
		return fmt.Errorf("redisx: release lock %s: %w", l.key, err)
	}
	return nil
}
