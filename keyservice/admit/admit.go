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
package admit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/blindgate/blindgate/internal/ratelimit"
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
type Admitter interface {
	Admit(ctx context.Context, c Claim, takes []ratelimit.Take) ([]ratelimit.Result, error)
}

// ReplayCache is the replay cache's claim (keyservice/sigauth.ReplayCache).
type ReplayCache interface {
	Claim(ctx context.Context, jti string, until time.Time) (fresh bool, err error)
}

// New returns the admitter for rc and l: one script when both are on one
// Redis client (*replay.Redis and *ratelimit.Redis); the claim, then the
// limits, otherwise. A nil rc refuses every claim.
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
	if c.JTI != "" {
		if s.rc == nil {
			return nil, fmt.Errorf("%w: no replay cache", ErrUnavailable)
		}
		fresh, err := s.rc.Claim(ctx, c.JTI, c.Until)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if !fresh {
			return nil, ErrReplay
		}
	}
	return ratelimit.AllowBatch(ctx, s.l, takes)
}

// script is one round trip: ratelimit's batch script with the replay
// cache's entry as its once key.
type script struct {
	rc *replay.Redis
	l  *ratelimit.Redis
}

func (s script) Admit(ctx context.Context, c Claim, takes []ratelimit.Take) ([]ratelimit.Result, error) {
	var once ratelimit.Once
	if c.JTI != "" {
		key, ttl, err := s.rc.Entry(c.JTI, c.Until)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		once = ratelimit.Once{Key: key, TTL: ttl}
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
