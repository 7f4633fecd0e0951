package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/redisx"
)

// Redis is the production Store. One hash per session, so every operation
// is on one key (any Redis topology):
//
//	p:cs:<id>  hash  data (JSON of the fixed fields), exp (unix ms), max, attempts, token,
//	                 claim, claim_exp (unix ms): the submission in flight, if any
//
// The key expires at ExpiresAt + grace (PEXPIREAT). Expiry decisions use the
// caller's clock passed into the script, so both stores (and tests with a
// fake clock) agree; gateway hosts are expected to run NTP.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	o      options

	create, attempt, release, complete *redis.Script
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on rdb; prefix "" means "bg".
func NewRedis(rdb redis.UniversalClient, prefix string, opts ...Option) *Redis {
	if prefix == "" {
		prefix = "bg"
	}
	return &Redis{
		rdb: rdb, prefix: prefix, o: buildOptions(opts),
		create:   redis.NewScript(createLua),
		attempt:  redis.NewScript(attemptLua),
		release:  redis.NewScript(releaseLua),
		complete: redis.NewScript(completeLua),
	}
}

func (r *Redis) key(id string) string { return r.prefix + ":cs:" + id }

// KEYS: session; ARGV: data, exp ms, max, expire-at ms
const createLua = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'exp', ARGV[2], 'max', ARGV[3], 'attempts', 0, 'token', '')
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
`

// The checks, the increment and the claim are one script, so concurrent
// submissions can neither both pass the limit nor both hold the claim.
// It is the body of a function of K and A, so that AttemptLimited can run
// it after the submission's limits in one script (redisx.Then); Attempt
// runs it alone (attemptLua). It answers the fields decode reads, from its
// one read: the fixed data never changes, and the attempts and token are
// as it leaves them.
// K: session; A: now ms, grace ms, claim, claim ttl ms
const attemptBody = `
local v = redis.call('HMGET', K[1], 'exp', 'max', 'attempts', 'token', 'claim', 'claim_exp', 'data')
if not v[1] or tonumber(A[1]) >= tonumber(v[1]) + tonumber(A[2]) then return {'missing', {}} end
local status, attempts = 'ok', v[3]
if tonumber(A[1]) >= tonumber(v[1]) then status = 'expired'
elseif v[4] and v[4] ~= '' then status = 'completed'
elseif v[5] and v[5] ~= '' and tonumber(v[6]) > tonumber(A[1]) then status = 'busy'
elseif tonumber(v[3]) >= tonumber(v[2]) then status = 'too_many'
else
  attempts = tostring(tonumber(v[3]) + 1)
  redis.call('HSET', K[1], 'attempts', attempts, 'claim', A[3], 'claim_exp', tonumber(A[1]) + tonumber(A[4]))
end
return {status, {'data', v[7] or '', 'attempts', attempts or '', 'token', v[4] or ''}}
`

// KEYS: session; ARGV: now ms, grace ms, claim, claim ttl ms
const attemptLua = "local K, A = KEYS, ARGV\n" + attemptBody

// KEYS: session; ARGV: claim
const releaseLua = `
if redis.call('HGET', KEYS[1], 'claim') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'claim', '', 'claim_exp', 0)
end
return 1
`

// completeBody is Complete's script as the body of a function of K and
// A, so that the token store can run it right after the token's write, in
// the same script (CompleteThen), with the token's id appended.
// K: session; A: now ms, grace ms, token
const completeBody = `
local v = redis.call('HMGET', K[1], 'exp', 'token')
if not v[1] or tonumber(A[1]) >= tonumber(v[1]) + tonumber(A[2]) then return 'missing' end
if tonumber(A[1]) >= tonumber(v[1]) then return 'expired' end
if v[2] and v[2] ~= '' then
  if v[2] == A[3] then return 'ok' end
  return 'completed'
end
redis.call('HSET', K[1], 'token', A[3], 'claim', '', 'claim_exp', 0)
return 'ok'
`

// KEYS: session; ARGV: now ms, grace ms, token
const completeLua = "local K, A = KEYS, ARGV\n" + completeBody

// Create implements Store.
func (r *Redis) Create(ctx context.Context, s Session) (Session, error) {
	s, err := prepare(s, r.o.now())
	if err != nil {
		return Session{}, err
	}
	fixed := s
	fixed.Attempts, fixed.Token = 0, ""
	data, err := json.Marshal(fixed)
	if err != nil {
		return Session{}, fmt.Errorf("sessions: encode: %w", err)
	}
	ok, err := r.create.Run(ctx, r.rdb, []string{r.key(s.ID)},
		data, s.ExpiresAt.UnixMilli(), s.MaxAttempts, s.ExpiresAt.Add(r.o.grace).UnixMilli()).Int()
	if err != nil {
		return Session{}, fmt.Errorf("sessions: redis create: %w", err)
	}
	if ok != 1 {
		return Session{}, ErrConflict
	}
	return s, nil
}

func decode(h map[string]string) (Session, error) {
	if len(h) == 0 || h["data"] == "" {
		return Session{}, ErrNotFound
	}
	var s Session
	if err := json.Unmarshal([]byte(h["data"]), &s); err != nil {
		return Session{}, fmt.Errorf("sessions: corrupt record: %w", err)
	}
	n, err := strconv.Atoi(h["attempts"])
	if err != nil {
		return Session{}, fmt.Errorf("sessions: corrupt record: %w", err)
	}
	s.Attempts, s.Token = n, h["token"]
	return s, nil
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, id string) (Session, error) {
	if !ValidID(id) {
		return Session{}, ErrNotFound
	}
	h, err := r.rdb.HGetAll(ctx, r.key(id)).Result()
	if err != nil {
		return Session{}, fmt.Errorf("sessions: redis get: %w", err)
	}
	s, err := decode(h)
	if err != nil {
		return Session{}, err
	}
	now := r.o.now()
	// Past the grace the key is about to expire; answer as if it had, so
	// both stores agree to the millisecond.
	if !now.Before(s.ExpiresAt.Add(r.o.grace)) {
		return Session{}, ErrNotFound
	}
	if s.Expired(now) {
		return s, ErrExpired
	}
	return s, nil
}

// Attempt implements Store.
func (r *Redis) Attempt(ctx context.Context, id, claim string) (Session, error) {
	if !ValidID(id) {
		return Session{}, ErrNotFound
	}
	if !validClaim(claim) {
		return Session{}, fmt.Errorf("%w: claim", ErrInvalid)
	}
	res, err := r.attempt.Run(ctx, r.rdb, []string{r.key(id)}, r.attemptArgs(claim)...).Slice()
	if err != nil {
		return Session{}, fmt.Errorf("sessions: redis attempt: %w", err)
	}
	return attemptReply(res)
}

// AttemptLimited implements Store: one script with the limits when l is
// a ratelimit.Redis on this store's client (not a Cluster), the attempt
// after them otherwise.
func (r *Redis) AttemptLimited(ctx context.Context, l ratelimit.Limiter, takes []ratelimit.Take, id, claim string) ([]ratelimit.Result, Session, error) {
	lr, ok := l.(*ratelimit.Redis)
	if !ok || !ValidID(id) || !validClaim(claim) {
		return attemptAfter(ctx, l, takes, func() (Session, error) { return r.Attempt(ctx, id, claim) })
	}
	then := redisx.Then{Client: r.rdb, Lua: attemptBody, Keys: []string{r.key(id)}, Args: r.attemptArgs(claim)}
	res, reply, ran, err := lr.AllowBatchThen(ctx, takes, then)
	if err != nil {
		return nil, Session{}, limiterFailed(err)
	}
	if !ran {
		return res, Session{}, nil
	}
	flat, _ := reply.([]any)
	s, err := attemptReply(flat)
	return res, s, err
}

func (r *Redis) attemptArgs(claim string) []any {
	return []any{r.o.now().UnixMilli(), r.o.grace.Milliseconds(), claim, r.o.claimTTL.Milliseconds()}
}

// attemptReply reads attemptBody's answer.
func attemptReply(res []any) (Session, error) {
	if len(res) != 2 {
		return Session{}, errors.New("sessions: redis attempt: unexpected reply")
	}
	status, _ := res[0].(string)
	if status == "missing" {
		return Session{}, ErrNotFound
	}
	flat, _ := res[1].([]any)
	h := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		h[k] = v
	}
	s, err := decode(h)
	if err != nil {
		return Session{}, err
	}
	switch status {
	case "ok":
		return s, nil
	case "expired":
		return s, ErrExpired
	case "completed":
		return s, ErrCompleted
	case "busy":
		return s, ErrBusy
	case "too_many":
		return s, ErrTooManyAttempts
	}
	return Session{}, fmt.Errorf("sessions: redis attempt: unexpected status %q", status)
}

// Release implements Store.
func (r *Redis) Release(ctx context.Context, id, claim string) error {
	if !ValidID(id) || !validClaim(claim) {
		return nil
	}
	if err := r.release.Run(ctx, r.rdb, []string{r.key(id)}, claim).Err(); err != nil {
		return fmt.Errorf("sessions: redis release: %w", err)
	}
	return nil
}

// Complete implements Store.
func (r *Redis) Complete(ctx context.Context, id, token string) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	if !validToken(token) {
		return fmt.Errorf("%w: token", ErrInvalid)
	}
	status, err := r.complete.Run(ctx, r.rdb, []string{r.key(id)}, r.o.now().UnixMilli(), r.o.grace.Milliseconds(), token).Text()
	if err != nil {
		return fmt.Errorf("sessions: redis complete: %w", err)
	}
	return completeReply(status)
}

// CompleteThen is Complete of session id as work for the token store to
// run after writing the token (redisx.Then; tokens.Redis.PutThen appends
// the token's id), and read, which turns the work's reply into Complete's
// answer. ok is false for an id Complete would refuse before asking Redis.
func (r *Redis) CompleteThen(id string) (then redisx.Then, read func(reply any) error, ok bool) {
	if !ValidID(id) {
		return redisx.Then{}, nil, false
	}
	then = redisx.Then{Client: r.rdb, Lua: completeBody, Keys: []string{r.key(id)}, Args: []any{r.o.now().UnixMilli(), r.o.grace.Milliseconds()}}
	return then, func(reply any) error {
		status, _ := reply.(string)
		return completeReply(status)
	}, true
}

func completeReply(status string) error {
	switch status {
	case "ok":
		return nil
	case "missing":
		return ErrNotFound
	case "expired":
		return ErrExpired
	case "completed":
		return ErrCompleted
	}
	return fmt.Errorf("sessions: redis complete: unexpected status %q", status)
}
