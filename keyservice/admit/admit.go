// Package admit lets a signed request in: it claims the request's jti in
// the replay cache (Contract 2) and counts the limits of its operation,
// together. On Redis the two are one script, so a signed inspect costs the
// key service one round trip before its decrypt instead of one per check;
// elsewhere (in memory, or on a Cluster, whose slots a script cannot
// span) they run one after the other with the same outcome.
//
// The claim comes first: a replayed request is refused before any limit
// counts it, and a request a limit refuses has used its jti, as when the
// two were separate calls. Both fail closed: an admitter that cannot
// answer refuses.
//
// A reveal's first effect is not a limit but its nonce's take (the
// approval comes before its limits): Take claims the jti and takes the
// nonce, one script on Redis too, the claim first. A reveal challenge's
// effects are its client's challenge budget and its nonce's write: Issue
// claims the jti, counts the budget and stores the nonce, one script on
// Redis, in that order.
package admit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/nonce"
	"github.com/blindgate/blindgate/keyservice/replay"
)

// Errors of Admit. Both mean the request was not admitted.
var (
	// ErrReplay: the jti was claimed before; nothing was counted.
	ErrReplay = errors.New("admit: request replayed")
	// ErrUnavailable: the claim could not be made, or it was made in the
	// same call as limits that failed (whether it stuck is unknown). The
	// request must be refused; a retry is a new signed request.
	ErrUnavailable = errors.New("admit: replay cache unavailable")
)

// Claim is the jti a request must claim, until when. A zero Claim is a
// request whose jti its caller has claimed already: Admit only counts.
type Claim struct {
	JTI   string // scoped to the client (sigauth: iss + ":" + jti)
	Until time.Time
}

// Admitter claims c and counts takes (ratelimit.Take), in that order. The
// results are ratelimit.AllowBatch's. An error other than ErrReplay and
// ErrUnavailable is the limiter's, once the claim is made (ratelimit's
// ErrUnavailable or ErrInvalidLimit): refuse as for any limiter failure.
//
// Take claims c, then takes nonce n from ns (nonce.Store.Take) and
// returns its binding; a replayed request (ErrReplay) leaves the nonce
// where it is. Its other errors are ErrUnavailable (the claim could not
// be made, or was made in the same call as a take that failed) and, once
// the claim is made, the store's (nonce.ErrUnknown, nonce.ErrUnavailable).
//
// Issue claims c, counts takes as Admit does and then, unless a Stop take
// was refused, stores nonce n bound to binding in ns for ttl
// (nonce.Store.Put); stored says whether it did. A replayed request
// (ErrReplay) counts and stores nothing; a refused take leaves the jti
// used and stores nothing. Its other errors are ErrUnavailable (the claim
// could not be made, or was made in the same call as what failed) and,
// once the claim is made, the limiter's or the store's
// (ratelimit.ErrUnavailable, nonce.ErrUnavailable).
type Admitter interface {
	Admit(ctx context.Context, c Claim, takes []ratelimit.Take) ([]ratelimit.Result, error)
	Take(ctx context.Context, c Claim, ns nonce.Store, n string) (binding string, err error)
	Issue(ctx context.Context, c Claim, takes []ratelimit.Take, ns nonce.Store, n, binding string, ttl time.Duration) (res []ratelimit.Result, stored bool, err error)
}

// ClaimOnly claims c alone, counting nothing, for a signed request refused
// before its admission, so that a replay is a replay whatever it asks: its
// errors are Admit's (ErrReplay, ErrUnavailable). A zero Claim, already
// claimed by the caller, costs nothing, not even a round trip.
func ClaimOnly(ctx context.Context, a Admitter, c Claim) error {
	if c.JTI == "" {
		return nil
	}
	_, err := a.Admit(ctx, c, nil)
	return err
}

// ReplayCache is the replay cache's claim (keyservice/sigauth.ReplayCache).
type ReplayCache interface {
	Claim(ctx context.Context, jti string, until time.Time) (fresh bool, err error)
}

// New returns the admitter for rc and l: one script when both are on one
// Redis client (*replay.Redis and *ratelimit.Redis), a Take's too when its
// *nonce.Redis is on that client; the claim, then the limits or the take,
// otherwise. A nil rc refuses every claim.
func New(rc ReplayCache, l ratelimit.Limiter) Admitter {
	rr, ok1 := rc.(*replay.Redis)
	lr, ok2 := l.(*ratelimit.Redis)
	if ok1 && ok2 && rr.Client() == lr.Client() {
		return script{rc: rr, l: lr}
	}
	return split{rc: rc, l: l}
}

// split claims, then counts.
type split struct {
	rc ReplayCache
	l  ratelimit.Limiter
}

func (s split) Admit(ctx context.Context, c Claim, takes []ratelimit.Take) ([]ratelimit.Result, error) {
	if err := s.claim(ctx, c); err != nil {
		return nil, err
	}
	return ratelimit.AllowBatch(ctx, s.l, takes)
}

func (s split) Take(ctx context.Context, c Claim, ns nonce.Store, n string) (string, error) {
	if err := s.claim(ctx, c); err != nil {
		return "", err
	}
	return ns.Take(ctx, n)
}

func (s split) Issue(ctx context.Context, c Claim, takes []ratelimit.Take, ns nonce.Store, n, binding string, ttl time.Duration) ([]ratelimit.Result, bool, error) {
	if err := s.claim(ctx, c); err != nil {
		return nil, false, err
	}
	var res []ratelimit.Result
	if len(takes) > 0 {
		var err error
		if res, err = ratelimit.AllowBatch(ctx, s.l, takes); err != nil {
			return nil, false, err
		}
		if ratelimit.Stopped(takes, res) {
			return res, false, nil
		}
	}
	if err := ns.Put(ctx, n, binding, ttl); err != nil {
		return res, false, err
	}
	return res, true, nil
}

func (s split) claim(ctx context.Context, c Claim) error {
	if c.JTI == "" {
		return nil
	}
	if s.rc == nil {
		return fmt.Errorf("%w: no replay cache", ErrUnavailable)
	}
	fresh, err := s.rc.Claim(ctx, c.JTI, c.Until)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !fresh {
		return ErrReplay
	}
	return nil
}

// script is one round trip: ratelimit's batch script with the replay
// cache's entry as its once key.
type script struct {
	rc *replay.Redis
	l  *ratelimit.Redis
}

func (s script) Admit(ctx context.Context, c Claim, takes []ratelimit.Take) ([]ratelimit.Result, error) {
	once, err := s.once(c)
	if err != nil {
		return nil, err
	}
	res, err := s.l.AllowBatchOnce(ctx, once, takes)
	switch {
	case errors.Is(err, ratelimit.ErrClaimed):
		return nil, ErrReplay
	case err != nil && once.Key != "" && errors.Is(err, ratelimit.ErrUnavailable):
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case err != nil:
		return nil, err
	}
	return res, nil
}

// Take claims and takes in the batch script, the nonce's GETDEL as its
// work after the claim (nonce.Redis.TakeThen); a nonce store elsewhere
// than Redis is taken after the claim.
func (s script) Take(ctx context.Context, c Claim, ns nonce.Store, n string) (string, error) {
	nr, ok := ns.(*nonce.Redis)
	if !ok || c.JTI == "" {
		return split{rc: s.rc, l: s.l}.Take(ctx, c, ns, n)
	}
	once, err := s.once(c)
	if err != nil {
		return "", err
	}
	_, reply, ran, err := s.l.AllowBatchOnceThen(ctx, once, nil, nr.TakeThen(n))
	switch {
	case errors.Is(err, ratelimit.ErrClaimed):
		return "", ErrReplay
	case err != nil:
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	case !ran:
		return "", fmt.Errorf("%w: the nonce was not taken", ErrUnavailable)
	}
	return nonce.Taken(reply)
}

// Issue claims c, counts takes and writes the nonce in one script (on a
// Cluster, or with ns on another client, one after the other with the
// same outcome: ratelimit.Redis.AllowBatchOnceThen).
func (s script) Issue(ctx context.Context, c Claim, takes []ratelimit.Take, ns nonce.Store, n, binding string, ttl time.Duration) ([]ratelimit.Result, bool, error) {
	nr, ok := ns.(*nonce.Redis)
	if !ok {
		return split{rc: s.rc, l: s.l}.Issue(ctx, c, takes, ns, n, binding, ttl)
	}
	once, err := s.once(c)
	if err != nil {
		return nil, false, err
	}
	res, reply, ran, err := s.l.AllowBatchOnceThen(ctx, once, takes, nr.PutThen(n, binding, ttl))
	switch {
	case errors.Is(err, ratelimit.ErrClaimed):
		return nil, false, ErrReplay
	case err != nil && once.Key != "":
		return nil, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case err != nil:
		return nil, false, err
	case !ran && ratelimit.Stopped(takes, res):
		return res, false, nil
	case !ran:
		return nil, false, fmt.Errorf("%w: the nonce was not written", nonce.ErrUnavailable)
	}
	if err := nonce.Stored(reply); err != nil {
		return res, false, err
	}
	return res, true, nil
}

// once is the replay cache's entry for c as the batch script's once key
// (none for a zero Claim).
func (s script) once(c Claim) (ratelimit.Once, error) {
	if c.JTI == "" {
		return ratelimit.Once{}, nil
	}
	key, ttl, err := s.rc.Entry(c.JTI, c.Until)
	if err != nil {
		return ratelimit.Once{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return ratelimit.Once{Key: key, TTL: ttl}, nil
}
