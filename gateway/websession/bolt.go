package websession

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names in the shared gateway bbolt file.
var (
	bucketSessions = []byte("websessions")             // sha256(id) -> JSON record
	bucketByOp     = []byte("websessions_by_operator") // operator id -> bucket of sha256(id)
)

// Bolt is the embedded Store. Each method is one bbolt transaction. Expired
// sessions are swept whenever a session is created (back-office sessions
// are few, so the scan is cheap).
type Bolt struct {
	db  *bolt.DB
	cfg Config
}

var _ Store = (*Bolt)(nil)

// NewBolt creates the buckets it needs in db.
func NewBolt(db *bolt.DB, cfg Config) (*Bolt, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSessions, bucketByOp} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("websession: bolt buckets: %w", err)
	}
	return &Bolt{db: db, cfg: cfg}, nil
}

func boltErr(op string, err error) error { return fmt.Errorf("websession: bolt %s: %w", op, err) }

// Create implements Store.
func (s *Bolt) Create(ctx context.Context, operatorID string, now time.Time) (Session, error) {
	sess, r, err := newRecord(operatorID, now)
	if err != nil {
		return Session{}, err
	}
	b, err := encode(r)
	if err != nil {
		return Session{}, err
	}
	h := []byte(idHash(sess.ID))
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := s.sweep(tx, now); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSessions).Put(h, b); err != nil {
			return boltErr("put", err)
		}
		idx, err := tx.Bucket(bucketByOp).CreateBucketIfNotExists([]byte(operatorID))
		if err != nil {
			return boltErr("index", err)
		}
		return idx.Put(h, nil)
	})
	if err != nil {
		return Session{}, err
	}
	return sess, nil
}

// sweep deletes every session expired at now.
func (s *Bolt) sweep(tx *bolt.Tx, now time.Time) error {
	type dead struct{ h, op []byte }
	var gone []dead
	err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
		r, err := decode(v)
		if err != nil || s.cfg.remaining(r, now) < 0 {
			gone = append(gone, dead{append([]byte(nil), k...), []byte(r.OperatorID)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range gone {
		if err := remove(tx, d.h, d.op); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes one session and its index entry (dropping an empty index).
func remove(tx *bolt.Tx, h, opID []byte) error {
	if err := tx.Bucket(bucketSessions).Delete(h); err != nil {
		return boltErr("delete", err)
	}
	if len(opID) == 0 {
		return nil
	}
	byOp := tx.Bucket(bucketByOp)
	idx := byOp.Bucket(opID)
	if idx == nil {
		return nil
	}
	if err := idx.Delete(h); err != nil {
		return boltErr("delete", err)
	}
	if k, _ := idx.Cursor().First(); k == nil {
		if err := byOp.DeleteBucket(opID); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return boltErr("delete index", err)
		}
	}
	return nil
}

func (s *Bolt) touch(id string, now time.Time, reauth bool) (sess Session, err error) {
	if !wellFormed(id) {
		return Session{}, ErrNotFound
	}
	h := []byte(idHash(id))
	err = s.db.Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get(h)
		if v == nil {
			return ErrNotFound
		}
		r, err := decode(v)
		if err != nil {
			return err
		}
		r, _, err = s.cfg.touch(r, now, reauth)
		if errors.Is(err, ErrExpired) {
			if err := remove(tx, h, []byte(r.OperatorID)); err != nil {
				return err
			}
			sess = Session{}
			return nil // commit the delete; ErrExpired is returned below
		}
		b, err := encode(r)
		if err != nil {
			return err
		}
		sess = r.session(id)
		return tx.Bucket(bucketSessions).Put(h, b)
	})
	if err != nil {
		return Session{}, err
	}
	if sess.ID == "" {
		return Session{}, ErrExpired
	}
	return sess, nil
}

// Get implements Store.
func (s *Bolt) Get(ctx context.Context, id string, now time.Time) (Session, error) {
	return s.touch(id, now, false)
}

// Reauth implements Store.
func (s *Bolt) Reauth(ctx context.Context, id string, now time.Time) (Session, error) {
	return s.touch(id, now, true)
}

// Delete implements Store.
func (s *Bolt) Delete(ctx context.Context, id string) error {
	if !wellFormed(id) {
		return nil
	}
	h := []byte(idHash(id))
	return s.db.Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get(h)
		if v == nil {
			return nil
		}
		var opID []byte
		if r, err := decode(v); err == nil {
			opID = []byte(r.OperatorID)
		}
		return remove(tx, h, opID)
	})
}

// DeleteForOperator implements Store.
func (s *Bolt) DeleteForOperator(ctx context.Context, operatorID string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		byOp := tx.Bucket(bucketByOp)
		idx := byOp.Bucket([]byte(operatorID))
		if idx == nil {
			return nil
		}
		sessions := tx.Bucket(bucketSessions)
		err := idx.ForEach(func(k, _ []byte) error { return sessions.Delete(k) })
		if err != nil {
			return boltErr("delete", err)
		}
		return byOp.DeleteBucket([]byte(operatorID))
	})
}
