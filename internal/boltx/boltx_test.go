package boltx_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/internal/boltx"
)

var errNotFound = errors.New("not found")

type rec struct {
	ID   string `json:"id"`
	Dead bool   `json:"dead"`
}

func TestBoltx(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "x.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	bucket := []byte("recs")
	if err := boltx.CreateBuckets(db, bucket, []byte("other")); err != nil {
		t.Fatal(err)
	}
	// Twice: opening a store again finds its buckets.
	if err := boltx.CreateBuckets(db, bucket); err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		for _, r := range []rec{{"a", false}, {"b", true}, {"c", true}, {"d", false}} {
			if err := boltx.Put(bk, r.ID, r); err != nil {
				return err
			}
		}
		return bk.Put([]byte("e"), []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}

	_ = db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		t.Run("ok/get", func(t *testing.T) {
			if r, err := boltx.Get[rec](bk, "b", errNotFound); err != nil || r != (rec{"b", true}) {
				t.Errorf("got %+v, %v", r, err)
			}
		})
		t.Run("not-found/caller-sentinel", func(t *testing.T) {
			if _, err := boltx.Get[rec](bk, "zz", errNotFound); err != errNotFound {
				t.Errorf("err %v", err)
			}
		})
		t.Run("corrupt/undecodable", func(t *testing.T) {
			if _, err := boltx.Get[rec](bk, "e", errNotFound); !errors.Is(err, boltx.ErrCorrupt) {
				t.Errorf("err %v", err)
			}
		})
		return nil
	})

	t.Run("ok/delete-if-removes-every-match", func(t *testing.T) {
		var n int
		err := db.Update(func(tx *bolt.Tx) (err error) {
			n, err = boltx.DeleteIf(tx.Bucket(bucket), func(k, v []byte) bool {
				return strings.Contains(string(v), `"dead":true`) || string(k) == "e"
			})
			return err
		})
		if err != nil || n != 3 {
			t.Fatalf("deleted %d, %v", n, err)
		}
		var left []string
		_ = db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucket).ForEach(func(k, _ []byte) error { left = append(left, string(k)); return nil })
		})
		if strings.Join(left, ",") != "a,d" {
			t.Errorf("left %v", left)
		}
	})
}
