package tokens

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/randid"
	"github.com/blindgate/blindgate/internal/redisx"
)

// Redis is the production Store. Key layout (prefix p, "bg" by default):
//
//	p:{<merchant>}:tok:<id>      hash   token fields + jwe + idem (hash of the idempotency key)
//	p:{<merchant>}:toks          zset   score 0, members "<unix nanos, 20 digits>:<id>" (ZRANGE BYLEX REV = newest first)
//	p:{<merchant>}:fp:<fp>       set    token ids with this fingerprint
//	p:{<merchant>}:kid:<kid>     set    token ids whose ciphertext is under this KEK version
//	p:{<merchant>}:cvc:<id>      string CVC ciphertext, PX = its TTL
//	p:{<merchant>}:idem:<sha256> string token id
//	p:{<merchant>}:ix:<f>:<v>    zset   search index (index.go): score 0, the token's order key, under
//	                                    b2, b4, b6:<first 2, 4, 6 BIN digits>, b8:<8-digit BIN>, l4:<last 4>, br:<brand>
//	p:{<merchant>}:ix:ready      string "1" once every token of the merchant is in the index
//	p:{<merchant>}:ix:co         set    "<first 2, 4, 6 BIN digits>|<brand>" pairs seen (index.go: combos)
//	p:tok:owner:<id>             string merchant id (for Lookup/TakeCVC/rewrap by id alone)
//	p:tok:merchants              set    merchants that have tokens (for cross-merchant search and rewrap)
//	p:tok:reindex                string JSON position of a Reindex pass
//
// Everything a token consists of shares the hash tag {<merchant>} (merchant ids
// look like m_...), so one Lua script writes it atomically even on Redis
// Cluster. The owner pointer and merchant set live outside the slot: on
// Cluster they are written before the script, elsewhere first thing in the
// same script (one round trip), and they are harmless when dangling (a
// pointer to a token that does not exist reads as ErrNotFound).
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
	// cluster: the owner pointer and the merchant set cannot share the
	// token's script, so Put writes them first, in a pipeline of their own.
	cluster bool

	put, putOne, del, rewrap, index, search *redis.Script
	tune                                    searchTuning
}

var _ Store = (*Redis)(nil)

// Option configures a store.
type Option func(*options)

type options struct {
	now  func() time.Time
	tune searchTuning
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

func buildOptions(opts []Option) options {
	o := options{now: time.Now, tune: defaultSearchTuning}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// NewRedis returns a Store on rdb (single node, Sentinel or Cluster). prefix
// namespaces the keys; "" means "bg".
func NewRedis(rdb redis.UniversalClient, prefix string, opts ...Option) *Redis {
	if prefix == "" {
		prefix = "bg"
	}
	o := buildOptions(opts)
	_, cluster := rdb.(*redis.ClusterClient)
	return &Redis{
		rdb: rdb, prefix: prefix, now: o.now, tune: o.tune, cluster: cluster,
		put: redis.NewScript(putLua), putOne: putOneScripts.Script(""),
		del: redis.NewScript(delLua), rewrap: redis.NewScript(rewrapLua),
		index: redis.NewScript(indexLua), search: redis.NewScript(searchLua),
	}
}

// putLua writes a token atomically. The record (with its ciphertext) is the
// first write, so even a script aborted half-way (OOM) never leaves an index
// entry or idempotency key pointing at a token without ciphertext. A
// merchant's first token marks its search index complete: nothing older
// is missing from it.
//
// KEYS: rec, toks, fp set, kid set, cvc, idem, ready, combos, index lists...
// ARGV: id, order key, fingerprint, cvc, cvc ttl ms, has idem ("1"/"0"),
// number of combos n, combos..., field, value, ...
const putLua = `
if ARGV[6] == '1' then
  local prev = redis.call('GET', KEYS[6])
  if prev then return {0, prev} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {2, ''} end
local first = redis.call('EXISTS', KEYS[2]) == 0
local nco = tonumber(ARGV[7])
redis.call('HSET', KEYS[1], unpack(ARGV, 8 + nco))
redis.call('ZADD', KEYS[2], 0, ARGV[2])
if ARGV[3] ~= '' then redis.call('SADD', KEYS[3], ARGV[1]) end
redis.call('SADD', KEYS[4], ARGV[1])
if ARGV[4] ~= '' then redis.call('SET', KEYS[5], ARGV[4], 'PX', ARGV[5]) end
if ARGV[6] == '1' then redis.call('SET', KEYS[6], ARGV[1]) end
for i = 9, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[2]) end
if nco > 0 then redis.call('SADD', KEYS[8], unpack(ARGV, 8, 7 + nco)) end
if first then redis.call('SET', KEYS[7], '1') end
return {1, ARGV[1]}
`

// putOneLua is Put in one round trip where one script may reach every key
// (a single node or Sentinel): the owner pointer and the merchant set as
// the Cluster path's pipeline writes them, then putLua itself, unchanged,
// on its own keys and arguments; on a replay it drops the owner pointer it
// has just set for an id the first token does not use. Code 3: the id is
// another merchant's. With PutThen's work (%s defines then_: redisx.Then),
// the work runs last, once the token is stored or found (codes 1 and 0),
// with that token's id appended to its arguments; its reply is the third
// element.
//
// KEYS: owner, merchants, putLua's, then's
// ARGV: merchant, number of putLua's keys, number of its arguments,
// putLua's arguments, then's
const putOneLua = `
%s
local function put(KEYS, ARGV)
` + putLua + `
end
local np, na = tonumber(ARGV[2]), tonumber(ARGV[3])
local fresh = redis.call('SET', KEYS[1], ARGV[1], 'NX')
if not fresh and redis.call('GET', KEYS[1]) ~= ARGV[1] then return {3, ''} end
redis.call('SADD', KEYS[2], ARGV[1])
local pk, pa = {}, {}
for i = 3, 2 + np do pk[#pk + 1] = KEYS[i] end
for i = 4, 3 + na do pa[#pa + 1] = ARGV[i] end
local r = put(pk, pa)
if fresh and r[1] == 0 and r[2] ~= pa[1] then redis.call('DEL', KEYS[1]) end
if then_ and (r[1] == 0 or r[1] == 1) then
  local tk, ta = {}, {}
  for i = 3 + np, #KEYS do tk[#tk + 1] = KEYS[i] end
  for i = 4 + na, #ARGV do ta[#ta + 1] = ARGV[i] end
  ta[#ta + 1] = r[2]
  local reply = then_(tk, ta)
  if reply == nil then reply = false end
  r[3] = reply
end
return r
`

var putOneScripts = redisx.NewComposer(putOneLua)

// delLua removes a token and everything that points at it. The caller read
// the record to name the kid set, the fingerprint set and the index lists;
// if a rewrap changed any of them meanwhile the script answers -1 and the
// caller re-reads, so no stale index entry remains.
//
// KEYS: rec, toks, fp set, kid set, cvc, idem, index lists...
// ARGV: id, order key, kid, fingerprint, last4, bin, brand (as read)
const delLua = `
local f = redis.call('HMGET', KEYS[1], 'kid', 'fingerprint', 'last4', 'bin', 'brand')
if not f[1] then return 0 end
if f[1] ~= ARGV[3] or (f[2] or '') ~= ARGV[4] or (f[3] or '') ~= ARGV[5] or (f[4] or '') ~= ARGV[6] or (f[5] or '') ~= ARGV[7] then return -1 end
redis.call('DEL', KEYS[1], KEYS[5])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
if redis.call('GET', KEYS[6]) == ARGV[1] then redis.call('DEL', KEYS[6]) end
for i = 7, #KEYS do redis.call('ZREM', KEYS[i], ARGV[2]) end
return 1
`

// rewrapLua is a compare-and-set on the kid and fingerprint fields; it moves
// the token between kid sets and fingerprint sets, and between index lists
// when a listed masked field changes: then the caller read the fields to
// name the lists, and the script answers -2 (read again) if they changed
// meanwhile. A ciphertext or kid change alone touches no index list.
//
// KEYS: rec, old kid set, new kid set, old fp set, new fp set, combos, index
// lists to leave..., lists to join...
// ARGV: id, old kid, new jwe, new kid, old fp, new fp, brand, bin, last4 (” keeps a field),
// binding (” removes it: an old binding never fits the new ciphertext),
// order key, last4, bin, brand (as read), number of lists to leave, combos
// of the new fields...
const rewrapLua = `
local k = redis.call('HGET', KEYS[1], 'kid')
if not k then return 0 end
if k ~= ARGV[2] then return -1 end
if (redis.call('HGET', KEYS[1], 'fingerprint') or '') ~= ARGV[5] then return -1 end
if #KEYS > 6 then
  local f = redis.call('HMGET', KEYS[1], 'last4', 'bin', 'brand')
  if (f[1] or '') ~= ARGV[12] or (f[2] or '') ~= ARGV[13] or (f[3] or '') ~= ARGV[14] then return -2 end
end
redis.call('HSET', KEYS[1], 'jwe', ARGV[3], 'kid', ARGV[4])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
if ARGV[6] ~= '' and ARGV[6] ~= ARGV[5] then
  if ARGV[5] ~= '' then redis.call('SREM', KEYS[4], ARGV[1]) end
  redis.call('SADD', KEYS[5], ARGV[1])
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[6])
end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'brand', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'bin', ARGV[8]) end
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'last4', ARGV[9]) end
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'binding', ARGV[10]) else redis.call('HDEL', KEYS[1], 'binding') end
local leave = tonumber(ARGV[15])
for i = 7, 6 + leave do redis.call('ZREM', KEYS[i], ARGV[11]) end
for i = 7 + leave, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[11]) end
if #ARGV > 15 then redis.call('SADD', KEYS[6], unpack(ARGV, 16)) end
return 1
`

func (r *Redis) slot(merchant string) string { return r.prefix + ":{" + merchant + "}:" }
func (r *Redis) recKey(m, id string) string  { return merchantKeys(r.slot(m)).rec(id) }
func (r *Redis) toksKey(m string) string     { return merchantKeys(r.slot(m)).toks() }
func (r *Redis) fpKey(m, fp string) string   { return merchantKeys(r.slot(m)).fp(fp) }
func (r *Redis) kidKey(m, kid string) string { return merchantKeys(r.slot(m)).kid(kid) }
func (r *Redis) cvcKey(m, id string) string  { return merchantKeys(r.slot(m)).cvc(id) }
func (r *Redis) idemKey(m, h string) string  { return merchantKeys(r.slot(m)).idem(h) }
func (r *Redis) ownerKey(id string) string   { return r.prefix + ":tok:owner:" + id }
func (r *Redis) merchantsKey() string        { return r.prefix + ":tok:merchants" }
func (r *Redis) reindexKey() string          { return r.prefix + ":tok:reindex" }
func (r *Redis) readyKey(m string) string    { return merchantKeys(r.slot(m)).ready() }
func (r *Redis) combosKey(m string) string   { return merchantKeys(r.slot(m)).combos() }
func (r *Redis) ixKey(m string, e ixEntry) string {
	return merchantKeys(r.slot(m)).ix(e)
}

// merchantKeys names one merchant's keys from its slot prefix (r.slot),
// so that a caller naming many of them builds the prefix once.
type merchantKeys string

func (k merchantKeys) rec(id string) string  { return string(k) + "tok:" + id }
func (k merchantKeys) toks() string          { return string(k) + "toks" }
func (k merchantKeys) fp(fp string) string   { return string(k) + "fp:" + fp }
func (k merchantKeys) kid(kid string) string { return string(k) + "kid:" + kid }
func (k merchantKeys) cvc(id string) string  { return string(k) + "cvc:" + id }
func (k merchantKeys) idem(h string) string  { return string(k) + "idem:" + h }
func (k merchantKeys) ready() string         { return string(k) + "ix:ready" }
func (k merchantKeys) combos() string        { return string(k) + "ix:co" }
func (k merchantKeys) ix(e ixEntry) string   { return string(k) + "ix:" + e.field + ":" + e.value }

// ixKeys names the index lists of entries, in their order.
func (r *Redis) ixKeys(m string, es []ixEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = r.ixKey(m, e)
	}
	return out
}

// Put implements Store.
func (r *Redis) Put(ctx context.Context, t Token, cvcJWE string, cvcTTL time.Duration, idempotencyKey string) (Token, bool, error) {
	got, created, _, err := r.putWith(ctx, t, cvcJWE, cvcTTL, idempotencyKey, nil)
	return got, created, err
}

// PutThen is Put, then the work then once the token is stored or its
// idempotency key found the first one: then's arguments get the returned
// token's id appended, and reply is its answer (nil when it did not run:
// on any error). When then joins this store's script (redisx.Then) the
// token and the work are one atomic round trip; otherwise the work runs
// right after.
func (r *Redis) PutThen(ctx context.Context, t Token, cvcJWE string, cvcTTL time.Duration, idempotencyKey string, then redisx.Then) (tok Token, created bool, reply any, err error) {
	return r.putWith(ctx, t, cvcJWE, cvcTTL, idempotencyKey, &then)
}

func (r *Redis) putWith(ctx context.Context, t Token, cvcJWE string, cvcTTL time.Duration, idempotencyKey string, then *redisx.Then) (Token, bool, any, error) {
	t, err := prepare(t, cvcJWE, cvcTTL, r.now())
	if err != nil {
		return Token{}, false, nil, err
	}
	m := t.MerchantID
	idem, hasIdem := "", "0"
	if idempotencyKey != "" {
		idem, hasIdem = idemHash(idempotencyKey), "1"
	}
	joined := then != nil && then.Joins(r.rdb)
	// One slice each for the keys and arguments of putOneLua (with then's
	// when it joins), made once at their full size: putLua's own (the
	// Cluster path's) are the middle of them.
	es, co, fields := indexEntries(t), combos(t), toFields(t, idem)
	np, na := 8+len(es), 7+len(co)+len(fields)
	var thenKeys, thenArgs int
	if joined {
		thenKeys, thenArgs = len(then.Keys), len(then.Args)
	}
	k := merchantKeys(r.slot(m))
	allKeys := make([]string, 0, 2+np+thenKeys)
	allKeys = append(allKeys, r.ownerKey(t.ID), r.merchantsKey(),
		k.rec(t.ID), k.toks(), k.fp(t.Fingerprint), k.kid(t.Kid), k.cvc(t.ID), k.idem(idem), k.ready(), k.combos())
	for _, e := range es {
		allKeys = append(allKeys, k.ix(e))
	}
	allArgs := make([]any, 0, 3+na+thenArgs)
	allArgs = append(allArgs, m, np, na,
		t.ID, orderKey(t.CreatedAt, t.ID), t.Fingerprint, cvcJWE, cvcTTL.Milliseconds(), hasIdem, len(co))
	for _, c := range co {
		allArgs = append(allArgs, c)
	}
	allArgs = append(allArgs, fields...)
	var res []any
	switch {
	case r.cluster:
		res, err = r.putSplit(ctx, t, allKeys[2:2+np], allArgs[3:3+na])
	default:
		script := r.putOne
		if joined {
			script = putOneScripts.Script(then.Lua)
			allKeys, allArgs = append(allKeys, then.Keys...), append(allArgs, then.Args...)
		}
		res, err = script.Run(ctx, r.rdb, allKeys, allArgs...).Slice()
	}
	if err != nil {
		return Token{}, false, nil, fmt.Errorf("tokens: redis put: %w", err)
	}
	if len(res) != 2 && !(joined && len(res) == 3) {
		return Token{}, false, nil, fmt.Errorf("tokens: redis put: unexpected script reply")
	}
	code, _ := res[0].(int64)
	var reply any
	switch {
	case code == 2, code == 3:
		return Token{}, false, nil, fmt.Errorf("%w: token id taken", ErrConflict)
	case joined && len(res) == 3:
		reply = res[2]
	case then != nil:
		id, _ := res[1].(string)
		if reply, err = then.Alone(ctx, id); err != nil {
			return Token{}, false, nil, fmt.Errorf("tokens: redis put: the work after it: %w", err)
		}
	}
	if code == 1 {
		return t, true, reply, nil
	}
	first, _ := res[1].(string)
	got, err := r.Get(ctx, m, first)
	if err != nil {
		return Token{}, false, nil, fmt.Errorf("tokens: idempotent replay: %w", err)
	}
	return got, false, reply, nil
}

// putSplit is Put on Cluster: the owner pointer first (NX, so a
// caller-chosen id can never redirect another merchant's token) and the
// merchant set, in a pipeline; see the type comment for why a dangling
// pointer is harmless. Then putLua in the token's slot.
func (r *Redis) putSplit(ctx context.Context, t Token, keys []string, args []any) ([]any, error) {
	m := t.MerchantID
	pipe := r.rdb.Pipeline()
	setOwner := pipe.SetNX(ctx, r.ownerKey(t.ID), m, 0)
	pipe.SAdd(ctx, r.merchantsKey(), m)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	if !setOwner.Val() {
		owner, err := r.rdb.Get(ctx, r.ownerKey(t.ID)).Result()
		if err != nil {
			return nil, err
		}
		if owner != m {
			return []any{int64(3), ""}, nil
		}
	}
	res, err := r.put.Run(ctx, r.rdb, keys, args...).Slice()
	if err != nil {
		return nil, err
	}
	// Replay: the id we reserved is unused; drop its pointer (best effort, a
	// leftover one is harmless) unless it was there before us or is the
	// first token's own (a retry that repeated the id).
	if len(res) == 2 && setOwner.Val() {
		code, _ := res[0].(int64)
		if first, _ := res[1].(string); code == 0 && first != t.ID {
			_ = r.rdb.Del(ctx, r.ownerKey(t.ID)).Err()
		}
	}
	return res, nil
}

// toFields flattens a token into HSET arguments.
func toFields(t Token, idem string) []any {
	return []any{
		"id", t.ID, "merchant_id", t.MerchantID, "session_id", t.SessionID,
		"jwe", t.JWE, "kid", t.Kid, "brand", t.Brand, "bin", t.BIN, "last4", t.Last4,
		"exp_month", t.ExpMonth, "exp_year", t.ExpYear, "fingerprint", t.Fingerprint,
		"created_at", t.CreatedAt.UnixNano(), "idem", idem, "binding", t.Binding,
		"reference", t.Reference, "metadata", encodeMetadata(t.Metadata),
	}
}

// fromFields rebuilds a token; an empty hash is a missing token.
func fromFields(h map[string]string) (Token, string, error) {
	if len(h) == 0 || h["jwe"] == "" {
		return Token{}, "", ErrNotFound
	}
	em, err1 := strconv.Atoi(h["exp_month"])
	ey, err2 := strconv.Atoi(h["exp_year"])
	ns, err3 := parseInt(h["created_at"])
	meta, err4 := decodeMetadata(h["metadata"])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return Token{}, "", fmt.Errorf("tokens: corrupt record: %w", err)
	}
	return Token{
		ID: h["id"], MerchantID: h["merchant_id"], SessionID: h["session_id"],
		JWE: h["jwe"], Kid: h["kid"], Brand: h["brand"], BIN: h["bin"], Last4: h["last4"],
		ExpMonth: em, ExpYear: ey, Fingerprint: h["fingerprint"],
		CreatedAt: time.Unix(0, ns).UTC(), Binding: h["binding"],
		Reference: h["reference"], Metadata: meta,
	}, h["idem"], nil
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, merchantID, id string) (Token, error) {
	if !randid.KeySafe(merchantID) || !ValidID(id) {
		return Token{}, ErrNotFound
	}
	h, err := r.rdb.HGetAll(ctx, r.recKey(merchantID, id)).Result()
	if err != nil {
		return Token{}, fmt.Errorf("tokens: redis get: %w", err)
	}
	t, _, err := fromFields(h)
	if err != nil {
		return Token{}, err
	}
	if t.MerchantID != merchantID || t.ID != id {
		return Token{}, ErrNotFound
	}
	return t, nil
}

func (r *Redis) owner(ctx context.Context, id string) (string, error) {
	if !ValidID(id) {
		return "", ErrNotFound
	}
	m, err := r.rdb.Get(ctx, r.ownerKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("tokens: redis owner: %w", err)
	}
	return m, nil
}

// Lookup implements Store.
func (r *Redis) Lookup(ctx context.Context, id string) (Token, error) {
	m, err := r.owner(ctx, id)
	if err != nil {
		return Token{}, err
	}
	return r.Get(ctx, m, id)
}

// Delete implements Store.
func (r *Redis) Delete(ctx context.Context, merchantID, id string) error {
	if !randid.KeySafe(merchantID) || !ValidID(id) {
		return ErrNotFound
	}
	m := merchantID
	for range 5 {
		h, err := r.rdb.HGetAll(ctx, r.recKey(m, id)).Result()
		if err != nil {
			return fmt.Errorf("tokens: redis delete: %w", err)
		}
		t, idem, err := fromFields(h)
		if err != nil {
			return err
		}
		if t.MerchantID != m {
			return ErrNotFound
		}
		keys := []string{
			r.recKey(m, id), r.toksKey(m), r.fpKey(m, t.Fingerprint),
			r.kidKey(m, t.Kid), r.cvcKey(m, id), r.idemKey(m, idem),
		}
		keys = append(keys, r.ixKeys(m, indexEntries(t))...)
		n, err := r.del.Run(ctx, r.rdb, keys, id, orderKey(t.CreatedAt, id), t.Kid, t.Fingerprint,
			t.Last4, t.BIN, t.Brand).Int()
		if err != nil {
			return fmt.Errorf("tokens: redis delete: %w", err)
		}
		switch n {
		case 0:
			return ErrNotFound
		case 1:
			// The pointer goes last: while the token exists it must resolve.
			if err := r.rdb.Del(ctx, r.ownerKey(id)).Err(); err != nil {
				return fmt.Errorf("tokens: redis delete owner: %w", err)
			}
			return nil
		}
		// -1: rewrapped between our read and the script; read again.
	}
	return fmt.Errorf("%w: token keeps changing", ErrConflict)
}

// fetch reads records by order key, in order, skipping ones deleted meanwhile.
func (r *Redis) fetch(ctx context.Context, m string, members []string) ([]Token, error) {
	if len(members) == 0 {
		return nil, nil
	}
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(members))
	for i, mem := range members {
		cmds[i] = pipe.HGetAll(ctx, r.recKey(m, memberID(mem)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("tokens: redis fetch: %w", err)
	}
	out := make([]Token, 0, len(members))
	for _, c := range cmds {
		t, _, err := fromFields(c.Val())
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func memberID(orderKey string) string {
	if len(orderKey) > 21 {
		return orderKey[21:]
	}
	return ""
}

// List implements Store.
func (r *Redis) List(ctx context.Context, merchantID, cursor string, limit int) ([]Token, string, error) {
	if !randid.KeySafe(merchantID) {
		return nil, "", fmt.Errorf("%w: merchant id", ErrInvalid)
	}
	limit = clampLimit(limit, DefaultListLimit, MaxListLimit)
	start := "+"
	if cursor != "" {
		k, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		start = "(" + k
	}
	// One extra member tells whether a next page exists, so the last page
	// carries no cursor.
	members, err := r.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: r.toksKey(merchantID), Start: start, Stop: "-", ByLex: true, Rev: true, Count: int64(limit + 1),
	}).Result()
	if err != nil {
		return nil, "", fmt.Errorf("tokens: redis list: %w", err)
	}
	next := ""
	if len(members) > limit {
		members = members[:limit]
		next = encodeCursor(members[limit-1])
	}
	page, err := r.fetch(ctx, merchantID, members)
	if err != nil {
		return nil, "", err
	}
	return page, next, nil
}

// merchants lists the merchants that have (had) tokens.
func (r *Redis) merchants(ctx context.Context) ([]string, error) {
	ms, err := r.rdb.SMembers(ctx, r.merchantsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("tokens: redis merchants: %w", err)
	}
	return ms, nil
}

// searchMerchant is the search without the index: the merchant's time
// index read newest first within [From, To) and filtered, so its cost grows
// with the tokens in that range. It serves merchants whose index is still
// being built.
func (r *Redis) searchMerchant(ctx context.Context, m string, q Query) ([]Token, error) {
	start, stop := "+", "-"
	if ub := q.upperBound(); ub != "" {
		start = "(" + ub
	}
	if lb := q.lowerBound(); lb != "" {
		stop = "[" + lb
	}
	const batch = 200
	var out []Token
	for len(out) < q.Limit {
		members, err := r.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key: r.toksKey(m), Start: start, Stop: stop, ByLex: true, Rev: true, Count: batch,
		}).Result()
		if err != nil {
			return nil, fmt.Errorf("tokens: redis search: %w", err)
		}
		ts, err := r.fetch(ctx, m, members)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if q.match(t) && len(out) < q.Limit {
				out = append(out, t)
			}
		}
		if len(members) < batch {
			break
		}
		start = "(" + members[len(members)-1]
	}
	return out, nil
}

// TakeCVC implements Store. GETDEL reads and destroys in one command, so two
// concurrent callers cannot both get the CVC.
func (r *Redis) TakeCVC(ctx context.Context, id string) (string, error) {
	m, err := r.owner(ctx, id)
	if err != nil {
		return "", err
	}
	cvc, err := r.rdb.GetDel(ctx, r.cvcKey(m, id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("tokens: redis take cvc: %w", err)
	}
	return cvc, nil
}

// UpdateCiphertext implements Store.
func (r *Redis) UpdateCiphertext(ctx context.Context, id, oldKid, oldFingerprint string, u Rewrapped) error {
	if err := u.validate(); err != nil {
		return err
	}
	if !validLabel(oldKid, 128) || oldFingerprint != "" && !validLabel(oldFingerprint, 256) {
		return fmt.Errorf("%w: kid or fingerprint", ErrInvalid)
	}
	m, err := r.owner(ctx, id)
	if err != nil {
		return err
	}
	for range 5 {
		keys := []string{r.recKey(m, id), r.kidKey(m, oldKid), r.kidKey(m, u.Kid), r.fpKey(m, oldFingerprint), r.fpKey(m, u.Fingerprint), r.combosKey(m)}
		args := []any{id, oldKid, u.JWE, u.Kid, oldFingerprint, u.Fingerprint, u.Brand, u.BIN, u.Last4, u.Binding}
		moves, err := r.indexMoves(ctx, m, id, u)
		if err != nil {
			return err
		}
		keys = append(keys, moves.keys...)
		args = append(args, moves.args...)
		n, err := r.rewrap.Run(ctx, r.rdb, keys, args...).Int()
		if err != nil {
			return fmt.Errorf("tokens: redis rewrap: %w", err)
		}
		switch n {
		case 0:
			return ErrNotFound
		case -1:
			return fmt.Errorf("%w: kid or fingerprint changed", ErrConflict)
		case 1:
			return nil
		}
		// -2: a listed field changed between our read and the script.
	}
	return fmt.Errorf("%w: token keeps changing", ErrConflict)
}

// ixMoves is the index part of a rewrap script call.
type ixMoves struct {
	keys []string
	args []any
}

// indexMoves reads the listed fields of a token when u may change them and
// names the lists it leaves and joins; none when u changes no listed field,
// so a ciphertext or kid change reads nothing more.
func (r *Redis) indexMoves(ctx context.Context, m, id string, u Rewrapped) (ixMoves, error) {
	none := ixMoves{args: []any{"", "", "", "", 0}}
	if u.Brand == "" && u.BIN == "" && u.Last4 == "" {
		return none, nil
	}
	f, err := r.rdb.HMGet(ctx, r.recKey(m, id), "last4", "bin", "brand", "created_at").Result()
	if err != nil {
		return ixMoves{}, fmt.Errorf("tokens: redis rewrap: %w", err)
	}
	str := func(v any) string { s, _ := v.(string); return s }
	old := Token{ID: id, Last4: str(f[0]), BIN: str(f[1]), Brand: str(f[2])}
	ns, err := parseInt(str(f[3]))
	if err != nil {
		return none, nil // gone (or unreadable): the script answers for it
	}
	now := old
	if u.Last4 != "" {
		now.Last4 = u.Last4
	}
	if u.BIN != "" {
		now.BIN = u.BIN
	}
	if u.Brand != "" {
		now.Brand = u.Brand
	}
	gone, added := entriesDiff(indexEntries(old), indexEntries(now))
	if len(gone)+len(added) == 0 {
		return none, nil
	}
	mv := ixMoves{keys: append(r.ixKeys(m, gone), r.ixKeys(m, added)...)}
	mv.args = []any{orderKey(time.Unix(0, ns), id), old.Last4, old.BIN, old.Brand, len(gone)}
	for _, c := range combos(now) {
		mv.args = append(mv.args, c)
	}
	return mv, nil
}

// ScanAll implements Store: each merchant's time index, by ZSCAN.
func (r *Redis) ScanAll(ctx context.Context, fn func(Token) error) error {
	ms, err := r.merchants(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		var cur uint64
		for {
			kv, next, err := r.rdb.ZScan(ctx, r.toksKey(m), cur, "", 100).Result()
			if err != nil {
				return fmt.Errorf("tokens: redis scan: %w", err)
			}
			for i := 0; i < len(kv); i += 2 { // member, score, member, score...
				t, err := r.Get(ctx, m, memberID(kv[i]))
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if err := fn(t); err != nil {
					return fmt.Errorf("tokens: scan: %w", err)
				}
			}
			if next == 0 {
				break
			}
			cur = next
		}
	}
	return nil
}

// ScanByKid implements Store. SSCAN returns every id that stays in the set for
// the whole scan; ids fn moves to another kid may or may not come again, and
// each token is re-read and re-checked before fn sees it.
func (r *Redis) ScanByKid(ctx context.Context, kid string, fn func(Token) error) error {
	if !validLabel(kid, 128) {
		return fmt.Errorf("%w: kid", ErrInvalid)
	}
	ms, err := r.merchants(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		var cur uint64
		for {
			ids, next, err := r.rdb.SScan(ctx, r.kidKey(m, kid), cur, "", 100).Result()
			if err != nil {
				return fmt.Errorf("tokens: redis scan kid: %w", err)
			}
			for _, id := range ids {
				t, err := r.Get(ctx, m, id)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if t.Kid != kid {
					continue
				}
				if err := fn(t); err != nil {
					return fmt.Errorf("tokens: scan by kid: %w", err)
				}
			}
			if next == 0 {
				break
			}
			cur = next
		}
	}
	return nil
}
