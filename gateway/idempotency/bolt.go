package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/internal/boltx"
)

// Bolt is the embedded Store for a single gateway:
//
//	idempotency  <merchant>:<sha256(key)>  JSON record
//
// bbolt transactions are serialised, so Begin's read and claim are atomic.
// Expired records are removed by Sweep (RunSweeper).
type Bolt struct {
	st boltx.Store
	o  options
}

var _ Store = (*Bolt)(nil)

var bIdem = []byte("idempotency")

var errNoRecord = errors.New("idempotency: no record")

// NewBolt creates the bucket it needs in db.
func NewBolt(db *bolt.DB, opts ...Option) (*Bolt, error) {
	o := buildOptions(opts)
	st, err := boltx.NewStore(db, boltx.StoreOptions{
		Name: "idempotency", Now: o.now, Buckets: [][]byte{bIdem},
		Sentinels: []error{ErrMismatch, ErrInProgress, ErrInvalidKey, ErrLost},
	})
	if err != nil {
		return nil, err
	}
	return &Bolt{st: st, o: o}, nil
}

// Begin implements Store.
func (b *Bolt) Begin(ctx context.Context, merchant, key, requestHash string) (Result, error) {
	k, err := storeKey(merchant, key)
	if err != nil {
		return Result{}, err
	}
	claim, err := newClaim()
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = b.st.Update(ctx, "begin", func(tx *bolt.Tx) error {
		bk := tx.Bucket(bIdem)
		now := b.st.Now()
		rec, err := boltx.Get[record](bk, k, errNoRecord)
		switch {
		case err == nil && rec.Exp > now.UnixMilli():
			res, err = decide(rec, requestHash)
			return err
		case err != nil && !errors.Is(err, errNoRecord) && !errors.Is(err, boltx.ErrCorrupt):
			return err
		}
		res = Result{Claim: claim}
		return boltx.Put(bk, k, record{Hash: requestHash, Claim: claim, Exp: now.Add(b.o.lease).UnixMilli()})
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// Complete implements Store.
func (b *Bolt) Complete(ctx context.Context, merchant, key, claim string, a Answer) error {
	if err := checkAnswer(a); err != nil {
		return err
	}
	return b.owned(ctx, "complete", merchant, key, claim, func(bk *bolt.Bucket, k string, rec record) error {
		return boltx.Put(bk, k, record{Hash: rec.Hash, Answer: &a, Exp: b.st.Now().Add(b.o.retention).UnixMilli()})
	})
}

// Abandon implements Store.
func (b *Bolt) Abandon(ctx context.Context, merchant, key, claim string) error {
	err := b.owned(ctx, "abandon", merchant, key, claim, func(bk *bolt.Bucket, k string, _ record) error {
		return bk.Delete([]byte(k))
	})
	if errors.Is(err, ErrLost) {
		return nil
	}
	return err
}

// owned runs fn on the record only while it holds claim and no answer.
func (b *Bolt) owned(ctx context.Context, op, merchant, key, claim string, fn func(bk *bolt.Bucket, k string, rec record) error) error {
	k, err := storeKey(merchant, key)
	if err != nil {
		return err
	}
	return b.st.Update(ctx, op, func(tx *bolt.Tx) error {
		bk := tx.Bucket(bIdem)
		rec, err := boltx.Get[record](bk, k, errNoRecord)
		if errors.Is(err, errNoRecord) || (err == nil && (rec.Claim != claim || rec.Answer != nil)) {
			return ErrLost
		}
		if err != nil {
			return err
		}
		return fn(bk, k, rec)
	})
}

// Sweep removes expired records and returns how many.
func (b *Bolt) Sweep(ctx context.Context) (int, error) {
	return b.st.Sweep(ctx, bIdem, func(v []byte, now time.Time) bool {
		var rec record
		return json.Unmarshal(v, &rec) != nil || rec.Exp <= now.UnixMilli()
	})
}

// RunSweeper calls Sweep every interval until ctx ends.
func (b *Bolt) RunSweeper(ctx context.Context, every time.Duration) {
	boltx.Every(ctx, every, func(ctx context.Context) { _, _ = b.Sweep(ctx) })
}
