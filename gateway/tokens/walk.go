package tokens

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/internal/randid"
)

// A walk position names a token by its merchant and its order key: both
// stores keep each merchant's tokens in order-key order (Redis in the
// merchant's time index, bbolt under tok_merchant), and merchants in byte
// order of their ids, so one position means the same place in either.

const walkBatch = 100

// WalkStart is the position before the first token.
const WalkStart = ""

func encodePos(merchant, orderKey string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(merchant + "\x00" + orderKey))
}

// decodeWalkPos checks a position's shape (a persisted cursor is read back
// from a store an attacker may have written to).
func decodeWalkPos(pos string) (merchant, orderKey string, err error) {
	if pos == WalkStart {
		return "", "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(pos)
	if err != nil {
		return "", "", fmt.Errorf("%w: walk position", ErrInvalid)
	}
	m, ok, found := strings.Cut(string(b), "\x00")
	if !found || !randid.KeySafe(m) {
		return "", "", fmt.Errorf("%w: walk position", ErrInvalid)
	}
	if _, err := decodeCursor(encodeCursor(ok)); err != nil {
		return "", "", fmt.Errorf("%w: walk position", ErrInvalid)
	}
	return m, ok, nil
}

// ValidWalkPos reports whether pos is a position Walk could have given.
func ValidWalkPos(pos string) bool {
	_, _, err := decodeWalkPos(pos)
	return err == nil
}

// Walk implements Store.
func (r *Redis) Walk(ctx context.Context, after string, fn func(Token, string) error) error {
	am, ak, err := decodeWalkPos(after)
	if err != nil {
		return err
	}
	ms, err := r.merchants(ctx)
	if err != nil {
		return err
	}
	slices.Sort(ms)
	for _, m := range ms {
		if m < am || !randid.KeySafe(m) {
			continue
		}
		lo := "-"
		if m == am {
			lo = "(" + ak
		}
		for {
			members, err := r.rdb.ZRangeByLex(ctx, r.toksKey(m), &redis.ZRangeBy{Min: lo, Max: "+", Count: walkBatch}).Result()
			if err != nil {
				return fmt.Errorf("tokens: redis walk: %w", err)
			}
			if len(members) == 0 {
				break
			}
			pipe := r.rdb.Pipeline()
			reads := make([]*redis.MapStringStringCmd, len(members))
			for i, mem := range members {
				reads[i] = pipe.HGetAll(ctx, r.recKey(m, memberID(mem)))
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("tokens: redis walk: %w", err)
			}
			for i, mem := range members {
				t, _, err := fromFields(reads[i].Val())
				if errors.Is(err, ErrNotFound) || err == nil && (t.MerchantID != m || t.ID != memberID(mem)) {
					continue // deleted meanwhile
				}
				if err != nil {
					return err
				}
				if err := fn(t, encodePos(m, mem)); err != nil {
					return fmt.Errorf("tokens: walk: %w", err)
				}
			}
			if len(members) < walkBatch {
				break
			}
			lo = "(" + members[len(members)-1]
		}
	}
	return nil
}

// Count implements Store.
func (r *Redis) Count(ctx context.Context) (int, error) {
	ms, err := r.merchants(ctx)
	if err != nil {
		return 0, err
	}
	pipe := r.rdb.Pipeline()
	cards := make([]*redis.IntCmd, len(ms))
	for i, m := range ms {
		cards[i] = pipe.ZCard(ctx, r.toksKey(m))
	}
	if len(ms) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, fmt.Errorf("tokens: redis count: %w", err)
		}
	}
	n := 0
	for _, c := range cards {
		n += int(c.Val())
	}
	return n, nil
}

// Walk implements Store. It reads in batches and calls fn outside any
// transaction, as ScanByKid does.
func (b *Bolt) Walk(ctx context.Context, after string, fn func(Token, string) error) error {
	am, ak, err := decodeWalkPos(after)
	if err != nil {
		return err
	}
	var seek []byte
	if after != WalkStart {
		seek = join(am, ak)
	}
	type item struct {
		t   Token
		pos string
	}
	for {
		if err := b.st.Check(ctx); err != nil {
			return err
		}
		var batch []item
		err := b.st.DB().View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bMerchant).Cursor()
			k, _ := c.First()
			if seek != nil {
				k, _ = c.Seek(seek)
				if k != nil && bytes.Equal(k, seek) {
					k, _ = c.Next()
				}
			}
			for ; k != nil && len(batch) < walkBatch; k, _ = c.Next() {
				seek = bytes.Clone(k)
				m, ok, _ := strings.Cut(string(k), "\x00")
				rec, err := read(tx, memberID(ok))
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				batch = append(batch, item{rec.token(), encodePos(m, ok)})
			}
			return nil
		})
		if err != nil {
			return b.st.Wrap("walk", err)
		}
		if len(batch) == 0 {
			return nil
		}
		for _, it := range batch {
			if err := fn(it.t, it.pos); err != nil {
				return fmt.Errorf("tokens: walk: %w", err)
			}
		}
	}
}

// Count implements Store.
func (b *Bolt) Count(ctx context.Context) (int, error) {
	if err := b.st.Check(ctx); err != nil {
		return 0, err
	}
	n := 0
	err := b.st.DB().View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bRecords).Stats().KeyN
		return nil
	})
	return n, b.st.Wrap("count", err)
}
