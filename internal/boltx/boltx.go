// Package boltx holds the bbolt idioms that the gateway's embedded stores
// share: buckets created when a store opens, JSON records, and the removal of
// expired entries, which bbolt, unlike Redis, does not do by itself.
package boltx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrCorrupt is returned for a record that does not decode.
var ErrCorrupt = errors.New("corrupt record")

// CreateBuckets creates the named buckets in db where they do not exist yet,
// in one transaction.
func CreateBuckets(db *bolt.DB, names ...[]byte) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, name := range names {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
}

// Get decodes the JSON record stored under key in bk. It returns notFound
// (the caller's sentinel) when there is none, and an error wrapping
// ErrCorrupt when it does not decode.
func Get[T any](bk *bolt.Bucket, key string, notFound error) (T, error) {
	var rec T
	v := bk.Get([]byte(key))
	if v == nil {
		return rec, notFound
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		var zero T
		return zero, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return rec, nil
}

// Put stores rec as JSON under key in bk.
func Put(bk *bolt.Bucket, key string, rec any) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return bk.Put([]byte(key), v)
}

// DeleteIf deletes every entry of bk for which dead is true and returns how
// many it deleted.
func DeleteIf(bk *bolt.Bucket, dead func(k, v []byte) bool) (int, error) {
	var keys [][]byte
	err := bk.ForEach(func(k, v []byte) error {
		if dead(k, v) {
			keys = append(keys, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Deleting while iterating a bbolt cursor skips keys; collect first.
	for _, k := range keys {
		if err := bk.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// Every calls fn every interval until ctx ends: a store's periodic Sweep.
func Every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}
