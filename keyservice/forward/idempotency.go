package forward

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/keyservice/wire"
)

// Idempotency errors.
var (
	// ErrIdempotencyMismatch: the key was used for a different request.
	ErrIdempotencyMismatch = errors.New("forward: idempotency key reused for another request")
	// ErrInProgress: a request with this key is still being forwarded.
	ErrInProgress = errors.New("forward: a request with this idempotency key is in progress")
	// ErrIdempotencyUnavailable: the store cannot answer; nothing is sent
	// (fail closed: without the store a retry could charge twice).
	ErrIdempotencyUnavailable = errors.New("forward: idempotency store unavailable")
)

// DefaultRetention is how long a key and its answer are kept.
const DefaultRetention = 24 * time.Hour

// Record is a stored outcome: the redacted answer, or the code of a failure
// after which the outcome at the destination is unknown. It never holds a
// card number: bodies are stored after redaction.
type Record struct {
	Hash     string               `json:"hash"`
	Response wire.ForwardResponse `json:"response"`
	// Code, when set, is the failure to repeat (see ErrStoredFailure).
	Code string `json:"code,omitempty"`
}

// Claim is the result of Begin.
type Claim struct {
	// Owner is set when this caller holds the in-flight marker and must
	// Complete or Release it.
	Owner string
	// Done is set when an answer is already stored.
	Done *Record
	// InFlight is set when another caller holds the marker.
	InFlight bool
}

// Store keeps idempotency keys. Begin claims key for a request hash with an
// in-flight marker, atomically, so of concurrent retries exactly one sends.
type Store interface {
	// Begin: a new key is claimed (Claim.Owner); a key with a stored answer
	// for the same hash returns it (Claim.Done); a key held in flight for
	// the same hash says so (Claim.InFlight); a key for another hash is
	// ErrIdempotencyMismatch.
	Begin(ctx context.Context, key, hash string) (Claim, error)
	// Complete replaces the owner's marker with the record.
	Complete(ctx context.Context, key, owner string, rec Record) error
	// Release drops the owner's marker: nothing was sent, a retry may send.
	Release(ctx context.Context, key, owner string) error
}

type entry struct {
	Hash  string  `json:"hash"`
	Owner string  `json:"owner,omitempty"` // in flight while set
	Rec   *Record `json:"rec,omitempty"`
}

func newOwner() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func claimOf(e entry, hash string) (Claim, error) {
	switch {
	case e.Hash != hash:
		return Claim{}, ErrIdempotencyMismatch
	case e.Rec != nil:
		r := *e.Rec
		return Claim{Done: &r}, nil
	default:
		return Claim{InFlight: true}, nil
	}
}

// Memory is an in-process Store, for one instance (the demo, tests).
type Memory struct {
	mu        sync.Mutex
	entries   map[string]memEntry
	retention time.Duration
	now       func() time.Time
}

type memEntry struct {
	entry
	expires time.Time
}

// NewMemory returns a Memory store keeping keys for retention (0: 24 h).
func NewMemory(retention time.Duration, now func() time.Time) *Memory {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if now == nil {
		now = time.Now
	}
	return &Memory{entries: map[string]memEntry{}, retention: retention, now: now}
}

var _ Store = (*Memory)(nil)

func (m *Memory) Begin(_ context.Context, key, hash string) (Claim, error) {
	owner, err := newOwner()
	if err != nil {
		return Claim{}, fmt.Errorf("%w: %w", ErrIdempotencyUnavailable, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if e, ok := m.entries[key]; ok && now.Before(e.expires) {
		return claimOf(e.entry, hash)
	}
	for k, e := range m.entries {
		if !now.Before(e.expires) {
			delete(m.entries, k)
		}
	}
	m.entries[key] = memEntry{entry{Hash: hash, Owner: owner}, now.Add(m.retention)}
	return Claim{Owner: owner}, nil
}

func (m *Memory) Complete(_ context.Context, key, owner string, rec Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok || e.Owner != owner {
		return fmt.Errorf("%w: marker lost", ErrIdempotencyUnavailable)
	}
	m.entries[key] = memEntry{entry{Hash: e.Hash, Rec: &rec}, m.now().Add(m.retention)}
	return nil
}

func (m *Memory) Release(_ context.Context, key, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[key]; ok && e.Owner == owner {
		delete(m.entries, key)
	}
	return nil
}

// Redis is a Store shared by every key service replica. Each key is one
// string: JSON of the hash and either the owner's in-flight marker or the
// record, set with NX so one caller wins, replaced only by its owner.
type Redis struct {
	rdb       redis.UniversalClient
	prefix    string
	retention time.Duration
}

// NewRedis returns a Redis store under prefix (e.g. "bg:fwd:idem:").
func NewRedis(rdb redis.UniversalClient, prefix string, retention time.Duration) *Redis {
	if retention <= 0 {
		retention = DefaultRetention
	}
	return &Redis{rdb: rdb, prefix: prefix, retention: retention}
}

var _ Store = (*Redis)(nil)

// ownerScript replaces or deletes the key only if it still holds ARGV[1]'s
// in-flight marker: a marker that expired and was claimed again by another
// caller is never overwritten.
var ownerScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local e = cjson.decode(v)
if e.owner ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`)

func (r *Redis) Begin(ctx context.Context, key, hash string) (Claim, error) {
	owner, err := newOwner()
	if err != nil {
		return Claim{}, fmt.Errorf("%w: %w", ErrIdempotencyUnavailable, err)
	}
	val, _ := json.Marshal(entry{Hash: hash, Owner: owner})
	for range 3 {
		ok, err := r.rdb.SetNX(ctx, r.prefix+key, val, r.retention).Result()
		if err != nil {
			return Claim{}, fmt.Errorf("%w: %w", ErrIdempotencyUnavailable, err)
		}
		if ok {
			return Claim{Owner: owner}, nil
		}
		raw, err := r.rdb.Get(ctx, r.prefix+key).Bytes()
		if errors.Is(err, redis.Nil) {
			continue // released between the two calls: try again
		}
		if err != nil {
			return Claim{}, fmt.Errorf("%w: %w", ErrIdempotencyUnavailable, err)
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return Claim{}, fmt.Errorf("%w: stored entry unreadable", ErrIdempotencyUnavailable)
		}
		return claimOf(e, hash)
	}
	return Claim{InFlight: true}, nil
}

func (r *Redis) Complete(ctx context.Context, key, owner string, rec Record) error {
	val, err := json.Marshal(entry{Hash: rec.Hash, Rec: &rec})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIdempotencyUnavailable, err)
	}
	n, err := ownerScript.Run(ctx, r.rdb, []string{r.prefix + key}, owner, string(val), r.retention.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIdempotencyUnavailable, err)
	}
	if n != 1 {
		return fmt.Errorf("%w: marker lost", ErrIdempotencyUnavailable)
	}
	return nil
}

func (r *Redis) Release(ctx context.Context, key, owner string) error {
	if err := ownerScript.Run(ctx, r.rdb, []string{r.prefix + key}, owner, "", 0).Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrIdempotencyUnavailable, err)
	}
	return nil
}
