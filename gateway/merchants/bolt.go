package merchants

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/internal/boltx"
)

// Bolt is the embedded Store for the single-binary demo:
//
//	merchants      <id>         JSON record (merchant + key hashes)
//	merchant_keys  <sha256hex>  merchant id
//
// A rotated-out key's index entry stays until the next rotation; the record's
// PrevUntil decides whether it still authenticates.
type Bolt struct{ st boltx.Store }

var _ Store = (*Bolt)(nil)

var (
	bMerchants = []byte("merchants")
	bKeys      = []byte("merchant_keys")
)

// NewBolt creates the buckets it needs in db.
func NewBolt(db *bolt.DB, opts ...Option) (*Bolt, error) {
	st, err := boltx.NewStore(db, boltx.StoreOptions{
		Name: "merchants", Now: buildOptions(opts).now, Buckets: [][]byte{bMerchants, bKeys},
		Sentinels: []error{ErrNotFound, ErrInvalid, ErrUnauthorized},
	})
	if err != nil {
		return nil, err
	}
	return &Bolt{st: st}, nil
}

func loadRec(tx *bolt.Tx, id string) (record, error) {
	return boltx.Get[record](tx.Bucket(bMerchants), id, ErrNotFound)
}

func storeRec(tx *bolt.Tx, rec record) error {
	return boltx.Put(tx.Bucket(bMerchants), rec.ID, rec)
}

// Create implements Store.
func (b *Bolt) Create(ctx context.Context, name string, origins []string) (Merchant, string, error) {
	if err := b.st.Check(ctx); err != nil {
		return Merchant{}, "", err
	}
	rec, secret, err := newRecord(name, origins, b.st.Now())
	if err != nil {
		return Merchant{}, "", err
	}
	err = b.st.DB().Update(func(tx *bolt.Tx) error {
		if err := storeRec(tx, rec); err != nil {
			return err
		}
		return tx.Bucket(bKeys).Put([]byte(rec.KeyHash), []byte(rec.ID))
	})
	if err != nil {
		return Merchant{}, "", b.st.Wrap("create", err)
	}
	return rec.Merchant, secret, nil
}

// Authenticate implements Store.
func (b *Bolt) Authenticate(ctx context.Context, secretKey string) (Merchant, error) {
	if err := b.st.Check(ctx); err != nil {
		return Merchant{}, err
	}
	h := hashSecret(secretKey)
	if h == nil {
		return Merchant{}, ErrUnauthorized
	}
	var m Merchant
	err := b.st.DB().View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bKeys).Get([]byte(hex.EncodeToString(h)))
		if id == nil {
			return ErrUnauthorized
		}
		rec, err := loadRec(tx, string(id))
		if errors.Is(err, ErrNotFound) {
			return ErrUnauthorized
		}
		if err != nil {
			return err
		}
		if !rec.matches(h, b.st.Now()) {
			return ErrUnauthorized
		}
		m = rec.Merchant
		return nil
	})
	if err != nil {
		return Merchant{}, b.st.Wrap("authenticate", err)
	}
	return m, nil
}

// Get implements Store.
func (b *Bolt) Get(ctx context.Context, id string) (Merchant, error) {
	if err := b.st.Check(ctx); err != nil {
		return Merchant{}, err
	}
	if !ValidID(id) {
		return Merchant{}, ErrNotFound
	}
	var m Merchant
	err := b.st.DB().View(func(tx *bolt.Tx) error {
		rec, err := loadRec(tx, id)
		m = rec.Merchant
		return err
	})
	if err != nil {
		return Merchant{}, b.st.Wrap("get", err)
	}
	return m, nil
}

// List implements Store.
func (b *Bolt) List(ctx context.Context) ([]Merchant, error) {
	if err := b.st.Check(ctx); err != nil {
		return nil, err
	}
	out := []Merchant{}
	err := b.st.DB().View(func(tx *bolt.Tx) error {
		return tx.Bucket(bMerchants).ForEach(func(_, v []byte) error {
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("merchants: corrupt record: %w", err)
			}
			out = append(out, rec.Merchant)
			return nil
		})
	})
	if err != nil {
		return nil, b.st.Wrap("list", err)
	}
	sortMerchants(out)
	return out, nil
}

// RotateKey implements Store.
func (b *Bolt) RotateKey(ctx context.Context, id string, grace time.Duration) (string, error) {
	if err := b.st.Check(ctx); err != nil {
		return "", err
	}
	if !ValidID(id) {
		return "", ErrNotFound
	}
	var secret string
	err := b.st.DB().Update(func(tx *bolt.Tx) error {
		rec, err := loadRec(tx, id)
		if err != nil {
			return err
		}
		s, drop, _, err := rotate(&rec, grace, b.st.Now())
		if err != nil {
			return err
		}
		keys := tx.Bucket(bKeys)
		for _, h := range drop {
			if err := keys.Delete([]byte(h)); err != nil {
				return err
			}
		}
		if err := keys.Put([]byte(rec.KeyHash), []byte(id)); err != nil {
			return err
		}
		secret = s
		return storeRec(tx, rec)
	})
	if err != nil {
		return "", b.st.Wrap("rotate", err)
	}
	return secret, nil
}

// SetOrigins implements Store.
func (b *Bolt) SetOrigins(ctx context.Context, id string, origins []string) (Merchant, error) {
	if err := b.st.Check(ctx); err != nil {
		return Merchant{}, err
	}
	if !ValidID(id) {
		return Merchant{}, ErrNotFound
	}
	norm, err := normOrigins(origins)
	if err != nil {
		return Merchant{}, err
	}
	var m Merchant
	err = b.st.DB().Update(func(tx *bolt.Tx) error {
		rec, err := loadRec(tx, id)
		if err != nil {
			return err
		}
		rec.AllowedOrigins = norm
		m = rec.Merchant
		return storeRec(tx, rec)
	})
	if err != nil {
		return Merchant{}, b.st.Wrap("set origins", err)
	}
	return m, nil
}
