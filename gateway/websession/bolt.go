package websession

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/blindgate/blindgate/internal/boltx"
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
	st  boltx.Store
	cfg Config
}

var _ Store = (*Bolt)(nil)

// NewBolt creates the buckets it needs in db.
func NewBolt(db *bolt.DB, cfg Config) (*Bolt, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := boltx.NewStore(db, boltx.StoreOptions{Name: "websession", Buckets: [][]byte{bucketSessions, bucketByOp}})
	if err != nil {
		return nil, err
	}
	return &Bolt{st: st, cfg: cfg}, nil
}

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
	err = s.st.DB().Update(func(tx *bolt.Tx) error {
		if err := s.sweep(tx, now); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSessions).Put(h, b); err != nil {
			return s.st.Wrap("put", err)
		}
		idx, err := tx.Bucket(bucketByOp).CreateBucketIfNotExists([]byte(operatorID))
		if err != nil {
			return s.st.Wrap("index", err)
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
		if err := s.remove(tx, d.h, d.op); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes one session and its index entry (dropping an empty index).
func (s *Bolt) remove(tx *bolt.Tx, h, opID []byte) error {
	if err := tx.Bucket(bucketSessions).Delete(h); err != nil {
		return s.st.Wrap("delete", err)
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
		return s.st.Wrap("delete", err)
	}
	if k, _ := idx.Cursor().First(); k == nil {
		if err := byOp.DeleteBucket(opID); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return s.st.Wrap("delete index", err)
		}
	}
	return nil
}

func (s *Bolt) touch(id string, now time.Time, reauth bool) (sess Session, err error) {
	if !wellFormed(id) {
		return Session{}, ErrNotFound
	}
	h := []byte(idHash(id))
	err = s.st.DB().Update(func(tx *bolt.Tx) error {
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
			if err := s.remove(tx, h, []byte(r.OperatorID)); err != nil {
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
	return s.st.DB().Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get(h)
		if v == nil {
			return nil
		}
		var opID []byte
		if r, err := decode(v); err == nil {
			opID = []byte(r.OperatorID)
		}
		return s.remove(tx, h, opID)
	})
}

// DeleteForOperator implements Store.
func (s *Bolt) DeleteForOperator(ctx context.Context, operatorID string) error {
	return s.st.DB().Update(func(tx *bolt.Tx) error {
		byOp := tx.Bucket(bucketByOp)
		idx := byOp.Bucket([]byte(operatorID))
		if idx == nil {
			return nil
		}
		sessions := tx.Bucket(bucketSessions)
		err := idx.ForEach(func(k, _ []byte) error { return sessions.Delete(k) })
		if err != nil {
			return s.st.Wrap("delete", err)
		}
		return byOp.DeleteBucket([]byte(operatorID))
	})
}
