package tokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/randid"
)

// searchLua reads one merchant's index (see index.go): the list with the
// fewest entries in [lo, hi] drives, newest first, and an entry is kept when
// every other group has it in one of its lists. A group of several lists (a
// BIN of an odd number of digits) is their union, merged newest first. When every group is
// one list and the driver is long, ZINTERCARD first tells in C whether the
// lists meet at all, or meet in few enough entries to take them whole
// (ZINTER): two long lists that barely meet are not read entry by entry.
// Otherwise it answers after at most budget entries read, so a search never
// holds Redis long. The first element of the answer is where the next call
// goes on ("" = nothing left), the others are the order keys kept, at most
// limit.
//
// KEYS: the groups' lists, group after group, the merchant's combos, then
// its time index (the driver when there is no group).
// ARGV: hi, lo (ZRANGE BYLEX bounds: "+" or "(" key, "-" or "[" key), limit,
// budget, driver length from which ZINTERCARD is asked, intersection size up
// to which ZINTER takes it whole, number of groups, size of each group...,
// combos one of which a match has (none: no such condition)...
const searchLua = `
local hi, lo = ARGV[1], ARGV[2]
local limit, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
local imin, imax, ng = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local groups, k, single = {}, 0, true
for g = 1, ng do
  local keys = {}
  for i = 1, tonumber(ARGV[7 + g]) do keys[i] = KEYS[k + i] end
  groups[g] = keys
  k = k + #keys
  if #keys ~= 1 then single = false end
end
if #ARGV > 7 + ng then
  local seen = false
  for i = 8 + ng, #ARGV do
    if redis.call('SISMEMBER', KEYS[#KEYS - 1], ARGV[i]) == 1 then seen = true; break end
  end
  if not seen then return {''} end
end
-- Byte order, as ZRANGE BYLEX sorts, whatever the server's locale.
local function gt(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end
local drv, best, least = {KEYS[#KEYS]}, 0, -1
if ng == 1 then
  drv, best = groups[1], 1
elseif ng > 1 then
  for g = 1, ng do
    local c = 0
    for _, key in ipairs(groups[g]) do c = c + redis.call('ZLEXCOUNT', key, lo, hi) end
    if c == 0 then return {''} end
    if least < 0 or c < least then least, best = c, g end
  end
  drv = groups[best]
end
if ng > 1 and single and least > imin then
  local all, args = {}, {ng}
  for g = 1, ng do all[g] = groups[g][1]; args[g + 1] = groups[g][1] end
  args[ng + 2], args[ng + 3] = 'LIMIT', imax + 1
  local n = redis.call('ZINTERCARD', unpack(args))
  if n == 0 then return {''} end
  if n <= imax then
    local m = redis.call('ZINTER', ng, unpack(all))
    local out = {''}
    for i = #m, 1, -1 do
      local x = m[i]
      if (hi == '+' or gt(string.sub(hi, 2), x)) and (lo == '-' or not gt(string.sub(lo, 2), x)) then
        out[#out + 1] = x
        if #out > limit then out[1] = x; return out end
      end
    end
    return out
  end
end
local chunk = limit
if ng > 1 then chunk = 256 end
if #drv > 1 then chunk = math.max(8, math.ceil(chunk / #drv)) end
-- The driver's lists, merged newest first through a heap of their heads.
local buf, pos, more, last = {}, {}, {}, {}
local function fill(i, bound)
  local b = redis.call('ZRANGE', drv[i], bound, lo, 'BYLEX', 'REV', 'LIMIT', 0, chunk)
  buf[i], pos[i], more[i] = b, 1, #b == chunk
  if #b > 0 then last[i] = b[#b] end
end
local function head(i) return buf[i][pos[i]] end
-- A head's time as two exact numbers, compared before the bytes.
local t1, t2 = {}, {}
local function keyed(i)
  local m = head(i)
  if m then t1[i], t2[i] = tonumber(string.sub(m, 1, 10)) or 0, tonumber(string.sub(m, 11, 20)) or 0 end
  return m
end
local function newer(i, j)
  if t1[i] ~= t1[j] then return t1[i] > t1[j] end
  if t2[i] ~= t2[j] then return t2[i] > t2[j] end
  return gt(head(i), head(j))
end
local heap, hn = {}, 0
local function down(j)
  while true do
    local l, m = 2 * j, j
    if l <= hn and newer(heap[l], heap[m]) then m = l end
    if l + 1 <= hn and newer(heap[l + 1], heap[m]) then m = l + 1 end
    if m == j then return end
    heap[j], heap[m] = heap[m], heap[j]
    j = m
  end
end
for i = 1, #drv do
  fill(i, hi)
  if keyed(i) then hn = hn + 1; heap[hn] = i end
end
for j = math.floor(hn / 2), 1, -1 do down(j) end
local out, seen, prev = {''}, 0, ''
while true do
  if hn == 0 then return out end
  if seen >= budget then out[1] = prev; return out end
  local bi = heap[1]
  local bm = head(bi)
  pos[bi] = pos[bi] + 1
  if head(bi) == nil and more[bi] then fill(bi, '(' .. last[bi]) end
  if keyed(bi) == nil then heap[1] = heap[hn]; hn = hn - 1 end
  down(1)
  seen = seen + 1
  prev = bm
  local hit = true
  for g = 1, ng do
    if g ~= best then
      local any = false
      for _, key in ipairs(groups[g]) do
        if redis.call('ZSCORE', key, bm) then any = true; break end
      end
      if not any then hit = false; break end
    end
  end
  if hit then
    out[#out + 1] = bm
    if #out > limit then out[1] = bm; return out end
  end
end
`

// indexLua lists one token, if its record still has the fields the caller
// read (otherwise a rewrap or a delete kept the index since).
//
// KEYS: rec, combos, index lists...
// ARGV: order key, last4, bin, brand, combos...
const indexLua = `
local f = redis.call('HMGET', KEYS[1], 'last4', 'bin', 'brand', 'jwe')
if not f[4] or (f[1] or '') ~= ARGV[2] or (f[2] or '') ~= ARGV[3] or (f[3] or '') ~= ARGV[4] then return 0 end
for i = 3, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[1]) end
if #ARGV > 4 then redis.call('SADD', KEYS[2], unpack(ARGV, 5)) end
return 1
`

// scriptCall is one script run of a pipeline.
type scriptCall struct {
	keys []string
	args []any
}

// evalAll runs s once per call in one pipeline (one round trip; on a
// cluster, one per node). A server that lost its scripts (a restart, a
// failover) gets s loaded and the calls again; the scripts run this way
// are idempotent.
func (r *Redis) evalAll(ctx context.Context, s *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	if len(calls) == 0 {
		return nil, nil
	}
	for attempt := 0; ; attempt++ {
		pipe := r.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(calls))
		for i, c := range calls {
			cmds[i] = s.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		_, err := pipe.Exec(ctx)
		if err == nil {
			return cmds, nil
		}
		if attempt > 0 || !slices.ContainsFunc(cmds, func(c *redis.Cmd) bool { return redis.HasErrorPrefix(c.Err(), "NOSCRIPT") }) {
			return nil, err
		}
		if err := s.Load(ctx, r.rdb).Err(); err != nil {
			return nil, err
		}
	}
}

// Search implements Store. A token id is a lookup and a fingerprint its
// set; other criteria use the index (index.go) of each merchant whose index
// is complete, and read the merchant's tokens in range otherwise. A
// platform search asks every merchant at once (one pipelined script call
// per merchant and round), merges their newest and reads only the records
// it returns: every merchant's keys share its hash tag, so a global index
// would live outside the slot of the token it lists and could not be
// written in the token's atomic step on a cluster.
func (r *Redis) Search(ctx context.Context, q Query) ([]Token, error) {
	q, err := normQuery(q)
	if err != nil {
		return nil, err
	}
	if q.TokenID != "" {
		t, err := r.Lookup(ctx, q.TokenID)
		if errors.Is(err, ErrNotFound) || err == nil && !q.match(t) {
			return []Token{}, nil
		}
		if err != nil {
			return nil, err
		}
		return []Token{t}, nil
	}
	ms := []string{q.MerchantID}
	if q.MerchantID == "" {
		if ms, err = r.merchants(ctx); err != nil {
			return nil, err
		}
		ms = slices.DeleteFunc(ms, func(m string) bool { return !randid.KeySafe(m) })
	}
	if q.Fingerprint != "" {
		return r.searchFingerprint(ctx, ms, q)
	}
	ready, err := r.indexReady(ctx, ms)
	if err != nil {
		return nil, err
	}
	out := []Token{}
	var indexed []string
	for i, m := range ms {
		if ready[i] {
			indexed = append(indexed, m)
			continue
		}
		found, err := r.searchMerchant(ctx, m, q)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	found, err := r.searchIndexed(ctx, indexed, q)
	if err != nil {
		return nil, err
	}
	return newestFirst(append(out, found...), q.Limit), nil
}

// indexReady tells, for each merchant, whether its index is complete.
func (r *Redis) indexReady(ctx context.Context, ms []string) ([]bool, error) {
	out := make([]bool, len(ms))
	if len(ms) == 0 {
		return out, nil
	}
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ms))
	for i, m := range ms {
		cmds[i] = pipe.Get(ctx, r.readyKey(m))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("tokens: redis search: %w", err)
	}
	for i, c := range cmds {
		out[i] = c.Val() == indexReady
	}
	return out, nil
}

// ref names a token by merchant and order key.
type ref struct{ m, key string }

// fetchRefs reads records in one pipeline, in order, skipping ones deleted
// meanwhile and ones that no longer match q.
func (r *Redis) fetchRefs(ctx context.Context, refs []ref, q Query) ([]Token, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(refs))
	for i, x := range refs {
		cmds[i] = pipe.HGetAll(ctx, r.recKey(x.m, memberID(x.key)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("tokens: redis fetch: %w", err)
	}
	out := make([]Token, 0, len(refs))
	for i, c := range cmds {
		t, _, err := fromFields(c.Val())
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if t.MerchantID == refs[i].m && q.match(t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// searchFingerprint reads the merchants' sets of the fingerprint (a card's
// tokens: a few) and their records, two round trips in all.
func (r *Redis) searchFingerprint(ctx context.Context, ms []string, q Query) ([]Token, error) {
	pipe := r.rdb.Pipeline()
	sets := make([]*redis.StringSliceCmd, len(ms))
	for i, m := range ms {
		sets[i] = pipe.SMembers(ctx, r.fpKey(m, q.Fingerprint))
	}
	if len(ms) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("tokens: redis search: %w", err)
		}
	}
	var refs []ref
	for i, m := range ms {
		for _, id := range sets[i].Val() {
			if ValidID(id) {
				refs = append(refs, ref{m, "00000000000000000000:" + id}) // fetch only needs the id part
			}
		}
	}
	found, err := r.fetchRefs(ctx, refs, q)
	if err != nil {
		return nil, err
	}
	return newestFirst(append([]Token{}, found...), q.Limit), nil
}

// ixSearch is one merchant's part of an indexed search.
type ixSearch struct {
	m    string
	next string   // where the next script call goes on; "" = done
	keep []string // the order keys found, newest first
}

// searchIndexed searches merchants whose index is complete. A platform
// search asks each merchant for a few of its newest matches first and more
// only of those whose matches may still be among the newest overall, so
// that a broad search of a hundred merchants reads about a page, not a
// page per merchant.
func (r *Redis) searchIndexed(ctx context.Context, ms []string, q Query) ([]Token, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	groups := planOf(q)
	sizes := make([]any, 0, len(groups)+2)
	for _, g := range groups {
		sizes = append(sizes, len(g))
	}
	for _, c := range queryCombos(q, groups) {
		sizes = append(sizes, c)
	}
	hi, lo := "+", "-"
	if ub := q.upperBound(); ub != "" {
		hi = "(" + ub
	}
	if lb := q.lowerBound(); lb != "" {
		lo = "[" + lb
	}
	work := make([]*ixSearch, len(ms))
	for i, m := range ms {
		work[i] = &ixSearch{m: m, next: hi}
	}
	keysOf := func(m string) []string {
		var keys []string
		for _, g := range groups {
			keys = append(keys, r.ixKeys(m, g)...)
		}
		return append(keys, r.combosKey(m), r.toksKey(m))
	}
	ask := q.Limit
	if len(work) > 1 {
		ask = min(q.Limit, max(4, 2*q.Limit/len(work)))
	}
	for ; ; ask = min(4*ask, q.Limit) {
		var calls []scriptCall
		var active []*ixSearch
		for _, s := range work {
			if s.next == "" || len(s.keep) >= q.Limit {
				continue
			}
			n := min(q.Limit-len(s.keep), ask)
			args := append([]any{s.next, lo, n, r.tune.budget, r.tune.interMin, r.tune.interMax, len(groups)}, sizes...)
			calls = append(calls, scriptCall{keys: keysOf(s.m), args: args})
			active = append(active, s)
		}
		if len(calls) == 0 {
			break
		}
		cmds, err := r.evalAll(ctx, r.search, calls)
		if err != nil {
			return nil, fmt.Errorf("tokens: redis search: %w", err)
		}
		for i, s := range active {
			res, err := cmds[i].StringSlice()
			if err != nil || len(res) == 0 {
				return nil, fmt.Errorf("tokens: redis search: unexpected script reply: %v", err)
			}
			s.next = ""
			if res[0] != "" {
				s.next = "(" + res[0]
			}
			s.keep = append(s.keep, res[1:]...)
		}
		pruneSearches(work, q.Limit)
	}
	var refs []ref
	for _, s := range work {
		for _, k := range s.keep {
			refs = append(refs, ref{s.m, k})
		}
	}
	slices.SortFunc(refs, func(a, b ref) int { return strings.Compare(b.key, a.key) })
	if len(refs) > q.Limit {
		refs = refs[:q.Limit]
	}
	return r.fetchRefs(ctx, refs, q)
}

// pruneSearches stops the merchants' searches that can no longer reach the
// newest limit: once limit order keys are found, a merchant whose next
// entries are all older than the limit-th has nothing left to give.
func pruneSearches(work []*ixSearch, limit int) {
	var keys []string
	for _, s := range work {
		keys = append(keys, s.keep...)
	}
	if len(keys) < limit {
		return
	}
	slices.SortFunc(keys, func(a, b string) int { return strings.Compare(b, a) })
	floor := keys[limit-1]
	for _, s := range work {
		// next is "(" + the last key read; what is left sorts below it.
		if s.next != "" && s.next[1:] <= floor {
			s.next = ""
		}
	}
}

// IndexStatus implements Store.
func (r *Redis) IndexStatus(ctx context.Context, merchantID string) (IndexStatus, error) {
	ms := []string{merchantID}
	if merchantID == "" {
		var err error
		if ms, err = r.merchants(ctx); err != nil {
			return IndexStatus{}, err
		}
		ms = slices.DeleteFunc(ms, func(m string) bool { return !randid.KeySafe(m) })
	} else if !randid.KeySafe(merchantID) {
		return IndexStatus{}, fmt.Errorf("%w: merchant id", ErrInvalid)
	}
	var st IndexStatus
	if len(ms) == 0 {
		return st, nil
	}
	pipe := r.rdb.Pipeline()
	has := make([]*redis.IntCmd, len(ms))
	ready := make([]*redis.StringCmd, len(ms))
	for i, m := range ms {
		has[i] = pipe.Exists(ctx, r.toksKey(m))
		ready[i] = pipe.Get(ctx, r.readyKey(m))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return IndexStatus{}, fmt.Errorf("tokens: redis index status: %w", err)
	}
	for i := range ms {
		if has[i].Val() == 0 {
			continue
		}
		st.Merchants++
		if ready[i].Val() != indexReady {
			st.Building++
		}
	}
	return st, nil
}

// indexBatch implements indexer: one pipelined script call per token.
func (r *Redis) indexBatch(ctx context.Context, ts []Token) (int, error) {
	calls := make([]scriptCall, 0, len(ts))
	for _, t := range ts {
		m := t.MerchantID
		keys := append([]string{r.recKey(m, t.ID), r.combosKey(m)}, r.ixKeys(m, indexEntries(t))...)
		args := []any{orderKey(t.CreatedAt, t.ID), t.Last4, t.BIN, t.Brand}
		for _, c := range combos(t) {
			args = append(args, c)
		}
		calls = append(calls, scriptCall{keys: keys, args: args})
	}
	cmds, err := r.evalAll(ctx, r.index, calls)
	if err != nil {
		return 0, fmt.Errorf("tokens: redis reindex: %w", err)
	}
	n := 0
	for _, c := range cmds {
		if v, _ := c.Int(); v == 1 {
			n++
		}
	}
	return n, nil
}

// markIndexed implements indexer.
func (r *Redis) markIndexed(ctx context.Context, merchantID string) error {
	if err := r.rdb.Set(ctx, r.readyKey(merchantID), indexReady, 0).Err(); err != nil {
		return fmt.Errorf("tokens: redis reindex: %w", err)
	}
	return nil
}

// reindexState implements indexer.
func (r *Redis) reindexState(ctx context.Context) ([]byte, error) {
	b, err := r.rdb.Get(ctx, r.reindexKey()).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tokens: redis reindex state: %w", err)
	}
	return b, nil
}

// saveReindexState implements indexer.
func (r *Redis) saveReindexState(ctx context.Context, b []byte) error {
	return r.rdb.Set(ctx, r.reindexKey(), b, 0).Err()
}
