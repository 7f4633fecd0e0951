package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/internal/boltx"
	"github.com/blindgate/blindgate/internal/randid"
)

// Bolt is the embedded Store for the single-binary demo. One bbolt file may
// hold the tokens, sessions and merchants stores side by side: each uses its
// own buckets. Every write is one bbolt transaction, hence atomic.
//
// Buckets (keys; \x00 separates parts, which validation keeps out of ids):
//
//	tok_records   <id>                               JSON record incl. ciphertext
//	tok_merchant  <merchant>\x00<order key>          merchant index, newest = last
//	tok_time      <order key>                        all merchants, for platform search
//	tok_fp        <fp>\x00<merchant>\x00<id>
//	tok_kid       <kid>\x00<id>
//	tok_idem      <merchant>\x00<sha256 of key>      -> id
//	tok_cvc       <id>                               JSON {jwe, exp}; expired entries are
//	                                                 refused on read and removed by Sweep
//	tok_ix        <f>\x00<merchant>\x00<v>\x00<order key>  search index (index.go): f is b2, b4, b6, b8, l4, br
//	tok_ixready   <merchant>                         "1" once every token of the merchant is in tok_ix
//	tok_meta      "reindex"                          JSON position of a Reindex pass
//
// Caveat for the demo only: bbolt reuses freed pages but does not zero them,
// so a deleted CVC ciphertext may linger in the file until overwritten.
// Production uses Redis.
type Bolt struct{ st boltx.Store }

var _ Store = (*Bolt)(nil)

var (
	bRecords  = []byte("tok_records")
	bMerchant = []byte("tok_merchant")
	bTime     = []byte("tok_time")
	bFP       = []byte("tok_fp")
	bKid      = []byte("tok_kid")
	bIdem     = []byte("tok_idem")
	bCVC      = []byte("tok_cvc")
	bIndex    = []byte("tok_ix")
	bReady    = []byte("tok_ixready")
	bMeta     = []byte("tok_meta")
)

// NewBolt creates the buckets it needs in db.
func NewBolt(db *bolt.DB, opts ...Option) (*Bolt, error) {
	st, err := boltx.NewStore(db, boltx.StoreOptions{
		Name: "tokens", Now: buildOptions(opts).now, Sentinels: []error{ErrNotFound, ErrConflict, ErrInvalid},
		Buckets: [][]byte{bRecords, bMerchant, bTime, bFP, bKid, bIdem, bCVC, bIndex, bReady, bMeta},
	})
	if err != nil {
		return nil, err
	}
	return &Bolt{st: st}, nil
}

type boltRecord struct {
	ID          string            `json:"id"`
	MerchantID  string            `json:"merchant_id"`
	SessionID   string            `json:"session_id,omitempty"`
	JWE         string            `json:"jwe"`
	Kid         string            `json:"kid"`
	Brand       string            `json:"brand"`
	BIN         string            `json:"bin"`
	Last4       string            `json:"last4"`
	ExpMonth    int               `json:"exp_month"`
	ExpYear     int               `json:"exp_year"`
	Fingerprint string            `json:"fingerprint"`
	CreatedAt   int64             `json:"created_at"` // unix nanoseconds
	Idem        string            `json:"idem,omitempty"`
	Binding     string            `json:"binding,omitempty"`
	Reference   string            `json:"reference,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

type boltCVC struct {
	JWE string `json:"jwe"`
	Exp int64  `json:"exp"` // unix nanoseconds
}

func toRecord(t Token, idem string) boltRecord {
	return boltRecord{
		ID: t.ID, MerchantID: t.MerchantID, SessionID: t.SessionID, JWE: t.JWE, Kid: t.Kid,
		Brand: t.Brand, BIN: t.BIN, Last4: t.Last4, ExpMonth: t.ExpMonth, ExpYear: t.ExpYear,
		Fingerprint: t.Fingerprint, CreatedAt: t.CreatedAt.UnixNano(), Idem: idem, Binding: t.Binding,
		Reference: t.Reference, Metadata: t.Metadata,
	}
}

func (r boltRecord) token() Token {
	return Token{
		ID: r.ID, MerchantID: r.MerchantID, SessionID: r.SessionID, JWE: r.JWE, Kid: r.Kid,
		Brand: r.Brand, BIN: r.BIN, Last4: r.Last4, ExpMonth: r.ExpMonth, ExpYear: r.ExpYear,
		Fingerprint: r.Fingerprint, CreatedAt: time.Unix(0, r.CreatedAt).UTC(), Binding: r.Binding,
		Reference: r.Reference, Metadata: r.Metadata,
	}
}

func join(parts ...string) []byte {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(p)
	}
	return b.Bytes()
}

// read decodes the record of id inside tx (ErrNotFound when absent).
func read(tx *bolt.Tx, id string) (boltRecord, error) {
	return boltx.Get[boltRecord](tx.Bucket(bRecords), id, ErrNotFound)
}

func write(tx *bolt.Tx, rec boltRecord) error {
	return boltx.Put(tx.Bucket(bRecords), rec.ID, rec)
}

// Put implements Store.
func (b *Bolt) Put(ctx context.Context, t Token, cvcJWE string, cvcTTL time.Duration, idempotencyKey string) (Token, bool, error) {
	if err := b.st.Check(ctx); err != nil {
		return Token{}, false, err
	}
	now := b.st.Now()
	t, err := prepare(t, cvcJWE, cvcTTL, now)
	if err != nil {
		return Token{}, false, err
	}
	idem := ""
	if idempotencyKey != "" {
		idem = idemHash(idempotencyKey)
	}
	var out Token
	created := false
	err = b.st.DB().Update(func(tx *bolt.Tx) error {
		if idem != "" {
			if prev := tx.Bucket(bIdem).Get(join(t.MerchantID, idem)); prev != nil {
				rec, err := read(tx, string(prev))
				if err != nil {
					return err
				}
				out = rec.token()
				return nil
			}
		}
		if tx.Bucket(bRecords).Get([]byte(t.ID)) != nil {
			return fmt.Errorf("%w: token id taken", ErrConflict)
		}
		// The merchant's first token: its index misses nothing older.
		if !hasTokens(tx, t.MerchantID) {
			if err := tx.Bucket(bReady).Put([]byte(t.MerchantID), []byte(indexReady)); err != nil {
				return err
			}
		}
		if err := write(tx, toRecord(t, idem)); err != nil {
			return err
		}
		if err := putIndex(tx, t); err != nil {
			return err
		}
		ok := orderKey(t.CreatedAt, t.ID)
		puts := []struct {
			bucket, key, val []byte
		}{
			{bMerchant, join(t.MerchantID, ok), nil},
			{bTime, []byte(ok), nil},
			{bKid, join(t.Kid, t.ID), nil},
		}
		if t.Fingerprint != "" {
			puts = append(puts, struct{ bucket, key, val []byte }{bFP, join(t.Fingerprint, t.MerchantID, t.ID), nil})
		}
		if idem != "" {
			puts = append(puts, struct{ bucket, key, val []byte }{bIdem, join(t.MerchantID, idem), []byte(t.ID)})
		}
		if cvcJWE != "" {
			v, err := json.Marshal(boltCVC{JWE: cvcJWE, Exp: now.Add(cvcTTL).UnixNano()})
			if err != nil {
				return err
			}
			puts = append(puts, struct{ bucket, key, val []byte }{bCVC, []byte(t.ID), v})
		}
		for _, p := range puts {
			if err := tx.Bucket(p.bucket).Put(p.key, p.val); err != nil {
				return err
			}
		}
		out, created = t, true
		return nil
	})
	if err != nil {
		return Token{}, false, b.st.Wrap("put", err)
	}
	return out, created, nil
}

// Get implements Store.
func (b *Bolt) Get(ctx context.Context, merchantID, id string) (Token, error) {
	t, err := b.Lookup(ctx, id)
	if err != nil {
		return Token{}, err
	}
	if t.MerchantID != merchantID {
		return Token{}, ErrNotFound
	}
	return t, nil
}

// Lookup implements Store.
func (b *Bolt) Lookup(ctx context.Context, id string) (Token, error) {
	if err := b.st.Check(ctx); err != nil {
		return Token{}, err
	}
	if !ValidID(id) {
		return Token{}, ErrNotFound
	}
	var t Token
	err := b.st.DB().View(func(tx *bolt.Tx) error {
		rec, err := read(tx, id)
		t = rec.token()
		return err
	})
	if err != nil {
		return Token{}, b.st.Wrap("get", err)
	}
	return t, nil
}

// Delete implements Store.
func (b *Bolt) Delete(ctx context.Context, merchantID, id string) error {
	if err := b.st.Check(ctx); err != nil {
		return err
	}
	if !ValidID(id) {
		return ErrNotFound
	}
	err := b.st.DB().Update(func(tx *bolt.Tx) error {
		rec, err := read(tx, id)
		if err != nil {
			return err
		}
		if rec.MerchantID != merchantID {
			return ErrNotFound
		}
		t := rec.token()
		ok := orderKey(t.CreatedAt, id)
		dels := []struct{ bucket, key []byte }{
			{bRecords, []byte(id)},
			{bMerchant, join(merchantID, ok)},
			{bTime, []byte(ok)},
			{bKid, join(t.Kid, id)},
			{bFP, join(t.Fingerprint, merchantID, id)},
			{bCVC, []byte(id)},
		}
		if rec.Idem != "" {
			dels = append(dels, struct{ bucket, key []byte }{bIdem, join(merchantID, rec.Idem)})
		}
		for _, d := range dels {
			if err := tx.Bucket(d.bucket).Delete(d.key); err != nil {
				return err
			}
		}
		return deleteIndex(tx, t, indexEntries(t))
	})
	return b.st.Wrap("delete", err)
}

// reverse walks the keys of c that start with prefix and sort below upper
// (exclusive; nil = no bound), from the greatest down, until fn says stop.
func reverse(c *bolt.Cursor, prefix, upper []byte, fn func(k []byte) bool) {
	var k []byte
	if upper == nil {
		// The first key past every key with this prefix: prefix with its last
		// byte incremented (prefixes here end in \x00 or are empty).
		if len(prefix) == 0 {
			k, _ = c.Last()
		} else {
			end := bytes.Clone(prefix)
			end[len(end)-1]++
			upper = end
		}
	}
	if upper != nil {
		if k, _ = c.Seek(upper); k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		if !fn(k) {
			return
		}
	}
}

// List implements Store.
func (b *Bolt) List(ctx context.Context, merchantID, cursor string, limit int) ([]Token, string, error) {
	if err := b.st.Check(ctx); err != nil {
		return nil, "", err
	}
	if !randid.KeySafe(merchantID) {
		return nil, "", fmt.Errorf("%w: merchant id", ErrInvalid)
	}
	limit = clampLimit(limit, DefaultListLimit, MaxListLimit)
	prefix := join(merchantID, "")
	var upper []byte
	if cursor != "" {
		k, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		upper = join(merchantID, k)
	}
	page := []Token{}
	next := ""
	err := b.st.DB().View(func(tx *bolt.Tx) error {
		var ferr error
		reverse(tx.Bucket(bMerchant).Cursor(), prefix, upper, func(k []byte) bool {
			ok := string(k[len(prefix):])
			if len(page) == limit {
				next = encodeCursor(orderKey(page[limit-1].CreatedAt, page[limit-1].ID))
				return false
			}
			rec, err := read(tx, memberID(ok))
			if err != nil {
				ferr = err
				return false
			}
			page = append(page, rec.token())
			return true
		})
		return ferr
	})
	if err != nil {
		return nil, "", b.st.Wrap("list", err)
	}
	return page, next, nil
}

// Search implements Store, with the same results as Redis.Search. A query
// with an indexed criterion reads, per merchant, the list of the first of
// last 4, BIN, brand (most selective first) newest first and checks each
// record; a merchant whose index is incomplete is read whole in range.
// (The demo's store: no counting of lists, no intersection in bulk.)
func (b *Bolt) Search(ctx context.Context, q Query) ([]Token, error) {
	if err := b.st.Check(ctx); err != nil {
		return nil, err
	}
	q, err := normQuery(q)
	if err != nil {
		return nil, err
	}
	groups := planOf(q)
	out := []Token{}
	err = b.st.DB().View(func(tx *bolt.Tx) error {
		var ferr error
		consider := func(id string) bool {
			rec, err := read(tx, id)
			if errors.Is(err, ErrNotFound) {
				return true
			}
			if err != nil {
				ferr = err
				return false
			}
			if t := rec.token(); q.match(t) {
				out = append(out, t)
			}
			return true
		}
		switch {
		case q.TokenID != "":
			consider(q.TokenID)
		case q.Fingerprint != "":
			prefix := join(q.Fingerprint, "")
			if q.MerchantID != "" {
				prefix = join(q.Fingerprint, q.MerchantID, "")
			}
			c := tx.Bucket(bFP).Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				parts := bytes.Split(k, []byte{0})
				if !consider(string(parts[len(parts)-1])) {
					break
				}
			}
			out = newestFirst(out, q.Limit)
		case len(groups) == 0:
			// Dates only: every token in range matches, the time indexes
			// give the newest at once.
			bucket, prefix := bTime, []byte(nil)
			if q.MerchantID != "" {
				bucket, prefix = bMerchant, join(q.MerchantID, "")
			}
			scanRange(tx.Bucket(bucket).Cursor(), prefix, q, func(ok string) bool {
				return len(out) < q.Limit && consider(memberID(ok))
			})
		default:
			ms := []string{q.MerchantID}
			if q.MerchantID == "" {
				ms = boltMerchants(tx)
			}
			for _, m := range ms {
				n := len(out)
				more := func(ok string) bool { return len(out)-n < q.Limit && consider(memberID(ok)) }
				if string(tx.Bucket(bReady).Get([]byte(m))) != indexReady {
					scanRange(tx.Bucket(bMerchant).Cursor(), join(m, ""), q, more)
				} else {
					searchBoltIndex(tx, m, groups, q, more)
				}
				if ferr != nil {
					break
				}
			}
			out = newestFirst(out, q.Limit)
		}
		return ferr
	})
	if err != nil {
		return nil, b.st.Wrap("search", err)
	}
	return out, nil
}

// scanRange calls fn with the order keys under prefix within the query's
// dates, newest first, until fn says stop.
func scanRange(c *bolt.Cursor, prefix []byte, q Query, fn func(orderKey string) bool) {
	var upper []byte
	if ub := q.upperBound(); ub != "" {
		upper = append(bytes.Clone(prefix), ub...)
	}
	lower := append(bytes.Clone(prefix), q.lowerBound()...)
	reverse(c, prefix, upper, func(k []byte) bool {
		return bytes.Compare(k, lower) >= 0 && fn(string(k[len(prefix):]))
	})
}

// searchBoltIndex calls fn with order keys of merchant m within the
// query's dates, newest first: those of the first group of one list (fn
// checks the rest on the record), or, when the only group is the union of
// ten BIN lists, the newest of each list merged.
func searchBoltIndex(tx *bolt.Tx, m string, groups []ixGroup, q Query, fn func(orderKey string) bool) {
	c := tx.Bucket(bIndex).Cursor()
	for _, g := range groups {
		if len(g) == 1 {
			scanRange(c, join(g[0].field, m, g[0].value, ""), q, fn)
			return
		}
	}
	// Every entry in range meets the query: the newest limit of each list
	// hold the newest limit of their union.
	var keys []string
	for _, e := range groups[0] {
		n := 0
		scanRange(c, join(e.field, m, e.value, ""), q, func(ok string) bool {
			keys = append(keys, ok)
			n++
			return n < q.Limit
		})
	}
	slices.SortFunc(keys, func(a, b string) int { return strings.Compare(b, a) })
	for _, ok := range keys {
		if !fn(ok) {
			return
		}
	}
}

// boltMerchants lists the merchants that have tokens, in byte order,
// skipping from one merchant's keys to the next.
func boltMerchants(tx *bolt.Tx) []string {
	var out []string
	c := tx.Bucket(bMerchant).Cursor()
	for k, _ := c.First(); k != nil; {
		m, _, _ := bytes.Cut(k, []byte{0})
		out = append(out, string(m))
		k, _ = c.Seek(append(bytes.Clone(m), 1))
	}
	return out
}

// hasTokens reports whether the merchant has a token.
func hasTokens(tx *bolt.Tx, m string) bool {
	prefix := join(m, "")
	k, _ := tx.Bucket(bMerchant).Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}

func ixBoltKey(m string, e ixEntry, orderKey string) []byte {
	return join(e.field, m, e.value, orderKey)
}

// putIndex lists t in its index lists.
func putIndex(tx *bolt.Tx, t Token) error {
	ok := orderKey(t.CreatedAt, t.ID)
	for _, e := range indexEntries(t) {
		if err := tx.Bucket(bIndex).Put(ixBoltKey(t.MerchantID, e, ok), nil); err != nil {
			return err
		}
	}
	return nil
}

// deleteIndex takes t out of the lists es.
func deleteIndex(tx *bolt.Tx, t Token, es []ixEntry) error {
	ok := orderKey(t.CreatedAt, t.ID)
	for _, e := range es {
		if err := tx.Bucket(bIndex).Delete(ixBoltKey(t.MerchantID, e, ok)); err != nil {
			return err
		}
	}
	return nil
}

// IndexStatus implements Store.
func (b *Bolt) IndexStatus(ctx context.Context, merchantID string) (IndexStatus, error) {
	if err := b.st.Check(ctx); err != nil {
		return IndexStatus{}, err
	}
	if merchantID != "" && !randid.KeySafe(merchantID) {
		return IndexStatus{}, fmt.Errorf("%w: merchant id", ErrInvalid)
	}
	var st IndexStatus
	err := b.st.DB().View(func(tx *bolt.Tx) error {
		ms := []string{merchantID}
		if merchantID == "" {
			ms = boltMerchants(tx)
		}
		for _, m := range ms {
			if !hasTokens(tx, m) {
				continue
			}
			st.Merchants++
			if string(tx.Bucket(bReady).Get([]byte(m))) != indexReady {
				st.Building++
			}
		}
		return nil
	})
	return st, b.st.Wrap("index status", err)
}

// indexBatch implements indexer, in one transaction.
func (b *Bolt) indexBatch(ctx context.Context, ts []Token) (int, error) {
	if err := b.st.Check(ctx); err != nil {
		return 0, err
	}
	n := 0
	err := b.st.DB().Update(func(tx *bolt.Tx) error {
		n = 0
		for _, t := range ts {
			rec, err := read(tx, t.ID)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if rec.MerchantID != t.MerchantID || rec.Last4 != t.Last4 || rec.BIN != t.BIN || rec.Brand != t.Brand {
				continue
			}
			if err := putIndex(tx, rec.token()); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, b.st.Wrap("reindex", err)
}

// markIndexed implements indexer.
func (b *Bolt) markIndexed(ctx context.Context, merchantID string) error {
	if err := b.st.Check(ctx); err != nil {
		return err
	}
	err := b.st.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bReady).Put([]byte(merchantID), []byte(indexReady))
	})
	return b.st.Wrap("reindex", err)
}

var reindexStateKey = []byte("reindex")

// reindexState implements indexer.
func (b *Bolt) reindexState(ctx context.Context) ([]byte, error) {
	if err := b.st.Check(ctx); err != nil {
		return nil, err
	}
	var out []byte
	err := b.st.DB().View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bMeta).Get(reindexStateKey))
		return nil
	})
	return out, b.st.Wrap("reindex state", err)
}

// saveReindexState implements indexer.
func (b *Bolt) saveReindexState(ctx context.Context, v []byte) error {
	if err := b.st.Check(ctx); err != nil {
		return err
	}
	err := b.st.DB().Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put(reindexStateKey, v) })
	return b.st.Wrap("reindex state", err)
}

// TakeCVC implements Store: read and delete happen in one write transaction.
func (b *Bolt) TakeCVC(ctx context.Context, id string) (string, error) {
	if err := b.st.Check(ctx); err != nil {
		return "", err
	}
	if !ValidID(id) {
		return "", ErrNotFound
	}
	var cvc string
	found := false
	err := b.st.DB().Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bCVC)
		v := bk.Get([]byte(id))
		if v == nil {
			return nil
		}
		var c boltCVC
		jerr := json.Unmarshal(v, &c)
		// Deleted whatever we read: used, expired or unreadable, it must go.
		if err := bk.Delete([]byte(id)); err != nil {
			return err
		}
		if jerr == nil && b.st.Now().UnixNano() < c.Exp {
			cvc, found = c.JWE, true
		}
		return nil
	})
	if err != nil {
		return "", b.st.Wrap("take cvc", err)
	}
	if !found {
		return "", ErrNotFound
	}
	return cvc, nil
}

// Sweep deletes expired CVC ciphertexts and returns how many. Redis expires
// them by itself; with bbolt the caller runs Sweep periodically (RunSweeper).
func (b *Bolt) Sweep(ctx context.Context) (int, error) {
	return b.st.Sweep(ctx, bCVC, func(v []byte, now time.Time) bool {
		var cv boltCVC
		return json.Unmarshal(v, &cv) != nil || now.UnixNano() >= cv.Exp
	})
}

// RunSweeper calls Sweep every interval until ctx ends.
func (b *Bolt) RunSweeper(ctx context.Context, every time.Duration) {
	boltx.Every(ctx, every, func(ctx context.Context) { _, _ = b.Sweep(ctx) })
}

// UpdateCiphertext implements Store.
func (b *Bolt) UpdateCiphertext(ctx context.Context, id, oldKid, oldFingerprint string, u Rewrapped) error {
	if err := b.st.Check(ctx); err != nil {
		return err
	}
	if err := u.validate(); err != nil {
		return err
	}
	if !validLabel(oldKid, 128) {
		return fmt.Errorf("%w: kid", ErrInvalid)
	}
	if !ValidID(id) {
		return ErrNotFound
	}
	err := b.st.DB().Update(func(tx *bolt.Tx) error {
		rec, err := read(tx, id)
		if err != nil {
			return err
		}
		if rec.Kid != oldKid || rec.Fingerprint != oldFingerprint {
			return fmt.Errorf("%w: kid or fingerprint changed", ErrConflict)
		}
		if err := tx.Bucket(bKid).Delete(join(oldKid, id)); err != nil {
			return err
		}
		rec.JWE, rec.Kid, rec.Binding = u.JWE, u.Kid, u.Binding
		if err := tx.Bucket(bKid).Put(join(u.Kid, id), nil); err != nil {
			return err
		}
		if u.Fingerprint != "" && u.Fingerprint != rec.Fingerprint {
			if rec.Fingerprint != "" {
				if err := tx.Bucket(bFP).Delete(join(rec.Fingerprint, rec.MerchantID, id)); err != nil {
					return err
				}
			}
			if err := tx.Bucket(bFP).Put(join(u.Fingerprint, rec.MerchantID, id), nil); err != nil {
				return err
			}
			rec.Fingerprint = u.Fingerprint
		}
		before := rec.token()
		if u.Brand != "" {
			rec.Brand = u.Brand
		}
		if u.BIN != "" {
			rec.BIN = u.BIN
		}
		if u.Last4 != "" {
			rec.Last4 = u.Last4
		}
		gone, added := entriesDiff(indexEntries(before), indexEntries(rec.token()))
		if err := deleteIndex(tx, before, gone); err != nil {
			return err
		}
		for _, e := range added {
			if err := tx.Bucket(bIndex).Put(ixBoltKey(rec.MerchantID, e, orderKey(before.CreatedAt, id)), nil); err != nil {
				return err
			}
		}
		return write(tx, rec)
	})
	return b.st.Wrap("rewrap", err)
}

// ScanAll implements Store, in batches outside any transaction as ScanByKid.
func (b *Bolt) ScanAll(ctx context.Context, fn func(Token) error) error {
	var after []byte
	for {
		if err := b.st.Check(ctx); err != nil {
			return err
		}
		var batch []Token
		err := b.st.DB().View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bRecords).Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(batch) < 100; k, v = c.Next() {
				after = bytes.Clone(k)
				var rec boltRecord
				if err := json.Unmarshal(v, &rec); err != nil {
					return fmt.Errorf("tokens: corrupt record: %w", err)
				}
				batch = append(batch, rec.token())
			}
			return nil
		})
		if err != nil {
			return b.st.Wrap("scan", err)
		}
		if len(batch) == 0 {
			return nil
		}
		for _, t := range batch {
			if err := fn(t); err != nil {
				return fmt.Errorf("tokens: scan: %w", err)
			}
		}
	}
}

// ScanByKid implements Store. It reads ids in batches and calls fn outside any
// transaction: fn may write (UpdateCiphertext), and a bbolt write transaction
// opened while a read one is open in the same goroutine can deadlock.
func (b *Bolt) ScanByKid(ctx context.Context, kid string, fn func(Token) error) error {
	if !validLabel(kid, 128) {
		return fmt.Errorf("%w: kid", ErrInvalid)
	}
	prefix := join(kid, "")
	after := prefix
	for {
		if err := b.st.Check(ctx); err != nil {
			return err
		}
		var batch []Token
		err := b.st.DB().View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bKid).Cursor()
			k, _ := c.Seek(after)
			if k != nil && bytes.Equal(k, after) {
				k, _ = c.Next()
			}
			for ; k != nil && bytes.HasPrefix(k, prefix) && len(batch) < 100; k, _ = c.Next() {
				after = bytes.Clone(k)
				rec, err := read(tx, string(k[len(prefix):]))
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				batch = append(batch, rec.token())
			}
			return nil
		})
		if err != nil {
			return b.st.Wrap("scan kid", err)
		}
		if len(batch) == 0 {
			return nil
		}
		for _, t := range batch {
			if err := fn(t); err != nil {
				return fmt.Errorf("tokens: scan by kid: %w", err)
			}
		}
	}
}
