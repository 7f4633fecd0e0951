package operators

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/internal/boltx"
)

// Bucket names in the shared gateway bbolt file.
var (
	bucketOps      = []byte("operators")
	bucketUsers    = []byte("operators_by_username")
	bucketFailures = []byte("operators_failures")
	// bucketChallenges: single-use passkey challenges, key -> expiry (unix ms).
	bucketChallenges = []byte("operators_challenges")
)

// pruneFailuresOver: when the failure bucket holds more entries than this,
// RecordFailure sweeps stale ones (sprayed unknown usernames, for instance).
const pruneFailuresOver = 1024

// Bolt is the embedded Store, in a bbolt file the gateway shares with its
// other stores. Every method is one bbolt transaction, so the read-modify-
// write of Update and RecordFailure is atomic.
type Bolt struct{ st boltx.Store }

var _ Store = (*Bolt)(nil)

// NewBolt creates the buckets it needs in db.
func NewBolt(db *bolt.DB) (*Bolt, error) {
	st, err := boltx.NewStore(db, boltx.StoreOptions{Name: "operators", Buckets: [][]byte{bucketOps, bucketUsers, bucketFailures, bucketChallenges}})
	if err != nil {
		return nil, err
	}
	return &Bolt{st: st}, nil
}

// Create implements Store.
func (s *Bolt) Create(ctx context.Context, op Operator) error {
	if err := checkNew(op); err != nil {
		return err
	}
	b, err := encodeRecord(op)
	if err != nil {
		return err
	}
	return s.st.DB().Update(func(tx *bolt.Tx) error {
		users, ops := tx.Bucket(bucketUsers), tx.Bucket(bucketOps)
		if users.Get([]byte(op.Username)) != nil || ops.Get([]byte(op.ID)) != nil {
			return ErrExists
		}
		if err := ops.Put([]byte(op.ID), b); err != nil {
			return s.st.Wrap("put", err)
		}
		if err := users.Put([]byte(op.Username), []byte(op.ID)); err != nil {
			return s.st.Wrap("put", err)
		}
		return nil
	})
}

func readFailures(tx *bolt.Tx, username string) (failureState, error) {
	var f failureState
	if v := tx.Bucket(bucketFailures).Get([]byte(username)); v != nil {
		if err := json.Unmarshal(v, &f); err != nil {
			return failureState{}, fmt.Errorf("operators: decode lockout: %w", err)
		}
	}
	return f, nil
}

func getTx(tx *bolt.Tx, id string) (Operator, error) {
	v := tx.Bucket(bucketOps).Get([]byte(id))
	if v == nil {
		return Operator{}, ErrNotFound
	}
	r, err := decodeRecord(v)
	if err != nil {
		return Operator{}, err
	}
	f, err := readFailures(tx, r.Username)
	if err != nil {
		return Operator{}, err
	}
	return r.operator(f.lockout()), nil
}

// Get implements Store.
func (s *Bolt) Get(ctx context.Context, id string) (op Operator, err error) {
	err = s.st.DB().View(func(tx *bolt.Tx) error {
		op, err = getTx(tx, id)
		return err
	})
	return op, err
}

// GetByUsername implements Store.
func (s *Bolt) GetByUsername(ctx context.Context, username string) (op Operator, err error) {
	err = s.st.DB().View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketUsers).Get([]byte(username))
		if id == nil {
			return ErrNotFound
		}
		op, err = getTx(tx, string(id))
		return err
	})
	return op, err
}

// List implements Store.
func (s *Bolt) List(ctx context.Context, merchantID string) (ops []Operator, err error) {
	err = s.st.DB().View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOps).ForEach(func(k, v []byte) error {
			r, err := decodeRecord(v)
			if err != nil {
				return err
			}
			if merchantID != "" && r.MerchantID != merchantID {
				return nil
			}
			f, err := readFailures(tx, r.Username)
			if err != nil {
				return err
			}
			ops = append(ops, r.operator(f.lockout()))
			return nil
		})
	})
	sortByUsername(ops)
	return ops, err
}

// Update implements Store.
func (s *Bolt) Update(ctx context.Context, id string, fn func(*Operator) error) (op Operator, err error) {
	err = s.st.DB().Update(func(tx *bolt.Tx) error {
		old, err := getTx(tx, id)
		if err != nil {
			return err
		}
		op = old
		if err := fn(&op); err != nil {
			return err
		}
		if op.ID != old.ID || op.Username != old.Username {
			return errImmutable
		}
		b, err := encodeRecord(op)
		if err != nil {
			return err
		}
		// The lockout fields are not stored with the record; report the stored ones.
		op.FailedLogins, op.LockedUntil = old.FailedLogins, old.LockedUntil
		return tx.Bucket(bucketOps).Put([]byte(id), b)
	})
	if err != nil {
		return Operator{}, err
	}
	return op, nil
}

// Lockout implements Store.
func (s *Bolt) Lockout(ctx context.Context, username string) (l Lockout, err error) {
	err = s.st.DB().View(func(tx *bolt.Tx) error {
		f, err := readFailures(tx, username)
		l = f.lockout()
		return err
	})
	return l, err
}

// RecordFailure implements Store.
func (s *Bolt) RecordFailure(ctx context.Context, username string, now time.Time, p LockoutPolicy) (l Lockout, err error) {
	// Millisecond precision, as in the Redis store, so both answer alike.
	now = now.Truncate(time.Millisecond)
	err = s.st.DB().Update(func(tx *bolt.Tx) error {
		f, err := readFailures(tx, username)
		if err != nil {
			return err
		}
		f = f.next(now, p)
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		bk := tx.Bucket(bucketFailures)
		if err := bk.Put([]byte(username), b); err != nil {
			return s.st.Wrap("put", err)
		}
		l = f.lockout()
		if bk.Stats().KeyN > pruneFailuresOver {
			return s.pruneFailures(bk, now, p.Window)
		}
		return nil
	})
	return l, err
}

// pruneFailures deletes counters that read as zero at now.
func (s *Bolt) pruneFailures(bk *bolt.Bucket, now time.Time, window time.Duration) error {
	var stale [][]byte
	err := bk.ForEach(func(k, v []byte) error {
		var f failureState
		if json.Unmarshal(v, &f) != nil || f.current(now, window) == (failureState{}) {
			stale = append(stale, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := bk.Delete(k); err != nil {
			return s.st.Wrap("delete", err)
		}
	}
	return nil
}

// ResetFailures implements Store.
func (s *Bolt) ResetFailures(ctx context.Context, username string) error {
	return s.st.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFailures).Delete([]byte(username))
	})
}

// PutChallenge implements Store. Expired challenges are swept when the
// bucket grows, so unanswered ones do not pile up.
func (s *Bolt) PutChallenge(ctx context.Context, key string, now time.Time, ttl time.Duration) error {
	return s.st.DB().Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketChallenges)
		if bk.Get([]byte(key)) != nil {
			return ErrExists
		}
		if err := bk.Put([]byte(key), []byte(strconv.FormatInt(now.Add(ttl).UnixMilli(), 10))); err != nil {
			return s.st.Wrap("put", err)
		}
		if bk.Stats().KeyN > pruneFailuresOver {
			var stale [][]byte
			_ = bk.ForEach(func(k, v []byte) error {
				if ms, err := strconv.ParseInt(string(v), 10, 64); err != nil || ms <= now.UnixMilli() {
					stale = append(stale, append([]byte(nil), k...))
				}
				return nil
			})
			for _, k := range stale {
				if err := bk.Delete(k); err != nil {
					return s.st.Wrap("delete", err)
				}
			}
		}
		return nil
	})
}

// TakeChallenge implements Store.
func (s *Bolt) TakeChallenge(ctx context.Context, key string, now time.Time) (ok bool, err error) {
	err = s.st.DB().Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketChallenges)
		v := bk.Get([]byte(key))
		if v == nil {
			return nil
		}
		ms, perr := strconv.ParseInt(string(v), 10, 64)
		ok = perr == nil && now.UnixMilli() < ms
		if err := bk.Delete([]byte(key)); err != nil {
			return s.st.Wrap("delete", err)
		}
		return nil
	})
	return ok, err
}
