package webhooks

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/internal/boltx"
)

// Bolt is the embedded Store for a single gateway:
//
//	webhook_endpoints   <merchant>/<id>  JSON endpoint
//	webhook_deliveries  <id>             JSON delivery
//
// The queue is the pending deliveries themselves (scanned: one gateway's
// volume); finished ones are removed by Sweep after LogRetention.
type Bolt struct{ st boltx.Store }

var _ Store = (*Bolt)(nil)

var (
	bEndpoints  = []byte("webhook_endpoints")
	bDeliveries = []byte("webhook_deliveries")
)

// LogRetention is how long a finished delivery stays in the log.
const LogRetention = 7 * 24 * time.Hour

// NewBolt creates the buckets it needs in db.
func NewBolt(db *bolt.DB, now func() time.Time) (*Bolt, error) {
	st, err := boltx.NewStore(db, boltx.StoreOptions{
		Name: "webhooks", Now: now, Buckets: [][]byte{bEndpoints, bDeliveries},
		Sentinels: []error{ErrNotFound, ErrTooMany},
	})
	if err != nil {
		return nil, err
	}
	return &Bolt{st: st}, nil
}

func epKey(merchant, id string) []byte { return []byte(merchant + "/" + id) }

// AddEndpoint implements Store.
func (b *Bolt) AddEndpoint(ctx context.Context, e Endpoint, max int) error {
	return b.st.Update(ctx, "add endpoint", func(tx *bolt.Tx) error {
		bk := tx.Bucket(bEndpoints)
		n := 0
		c := bk.Cursor()
		prefix := []byte(e.MerchantID + "/")
		for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
			n++
		}
		if n >= max {
			return ErrTooMany
		}
		return boltx.Put(bk, string(epKey(e.MerchantID, e.ID)), e)
	})
}

func hasPrefix(k, p []byte) bool { return len(k) >= len(p) && string(k[:len(p)]) == string(p) }

// Endpoints implements Store.
func (b *Bolt) Endpoints(ctx context.Context, merchant string) ([]Endpoint, error) {
	out := []Endpoint{}
	err := b.st.View(ctx, "endpoints", func(tx *bolt.Tx) error {
		c := tx.Bucket(bEndpoints).Cursor()
		prefix := []byte(merchant + "/")
		for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
			var e Endpoint
			if err := json.Unmarshal(v, &e); err != nil {
				return boltx.ErrCorrupt
			}
			out = append(out, e)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, err
}

// Endpoint implements Store.
func (b *Bolt) Endpoint(ctx context.Context, merchant, id string) (Endpoint, error) {
	var e Endpoint
	err := b.st.View(ctx, "endpoint", func(tx *bolt.Tx) (err error) {
		e, err = boltx.Get[Endpoint](tx.Bucket(bEndpoints), string(epKey(merchant, id)), ErrNotFound)
		return err
	})
	return e, err
}

// DeleteEndpoint implements Store.
func (b *Bolt) DeleteEndpoint(ctx context.Context, merchant, id string) error {
	return b.st.Update(ctx, "delete endpoint", func(tx *bolt.Tx) error {
		bk := tx.Bucket(bEndpoints)
		if bk.Get(epKey(merchant, id)) == nil {
			return ErrNotFound
		}
		return bk.Delete(epKey(merchant, id))
	})
}

// Enqueue implements Store.
func (b *Bolt) Enqueue(ctx context.Context, d Delivery) error {
	return b.Save(ctx, d)
}

// ClaimDue implements Store. The due set is found under a read transaction:
// the worker polls every second, and a write transaction on this shared file
// would hold up checkout writes even when nothing is due. Only the chosen
// deliveries are then re-read and leased in a short write.
func (b *Bolt) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, n int) ([]Delivery, error) {
	due := func(d Delivery) bool { return d.Status == StatusPending && !d.NextAt.After(now) }
	var cand []Delivery
	err := b.st.View(ctx, "claim", func(tx *bolt.Tx) error {
		return tx.Bucket(bDeliveries).ForEach(func(_, v []byte) error {
			var d Delivery
			if json.Unmarshal(v, &d) == nil && due(d) {
				cand = append(cand, d)
			}
			return nil
		})
	})
	if err != nil || len(cand) == 0 {
		return nil, err
	}
	sort.Slice(cand, func(i, j int) bool { return cand[i].NextAt.Before(cand[j].NextAt) })
	if len(cand) > n {
		cand = cand[:n]
	}
	var out []Delivery
	err = b.st.Update(ctx, "claim", func(tx *bolt.Tx) error {
		out = out[:0]
		bk := tx.Bucket(bDeliveries)
		for _, c := range cand {
			// Another worker may have leased or finished it meanwhile.
			var d Delivery
			v := bk.Get([]byte(c.ID))
			if v == nil || json.Unmarshal(v, &d) != nil || !due(d) {
				continue
			}
			d.NextAt = now.Add(lease)
			if err := boltx.Put(bk, d.ID, d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// Save implements Store.
func (b *Bolt) Save(ctx context.Context, d Delivery) error {
	return b.st.Update(ctx, "save", func(tx *bolt.Tx) error {
		return boltx.Put(tx.Bucket(bDeliveries), d.ID, d)
	})
}

// Deliveries implements Store.
func (b *Bolt) Deliveries(ctx context.Context, merchant string, limit int) ([]Delivery, error) {
	out := []Delivery{}
	err := b.st.View(ctx, "deliveries", func(tx *bolt.Tx) error {
		return tx.Bucket(bDeliveries).ForEach(func(_, v []byte) error {
			var d Delivery
			if err := json.Unmarshal(v, &d); err != nil {
				return nil // a corrupt record is skipped, and swept
			}
			if d.MerchantID == merchant {
				out = append(out, d)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// Sweep removes finished deliveries older than LogRetention.
func (b *Bolt) Sweep(ctx context.Context) (int, error) {
	return b.st.Sweep(ctx, bDeliveries, func(v []byte, now time.Time) bool {
		var d Delivery
		if err := json.Unmarshal(v, &d); err != nil {
			return true
		}
		return d.Status != StatusPending && now.Sub(d.UpdatedAt) > LogRetention
	})
}

// RunSweeper calls Sweep every interval until ctx ends.
func (b *Bolt) RunSweeper(ctx context.Context, every time.Duration) {
	boltx.Every(ctx, every, func(ctx context.Context) { _, _ = b.Sweep(ctx) })
}
