// Package rotation ends the active KEK's cryptoperiod on schedule: once the
// active version is older than the configured maximum age (-kek-max-age),
// the key service makes a new version active by itself, audits it and
// writes the sealed keyring, as `keyservice keys rotate` would (PCI DSS
// 3.7.4: keys changed at the end of their defined cryptoperiod). The old
// version keeps decrypting until an operator retires it after the rewrap
// (3.7.4, 3.7.5); the gateway picks the new public key up with its next
// JWKS refresh.
//
// With several key-service replicas sharing one keyring file, a Redis lease
// lets one of them rotate; the others see the file change and reload it
// (keyservice/app's watcher). The rotation itself re-reads the file under
// the lease, so a replica that lost the race, or a rotation made by hand,
// is never rotated a second time.
package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/seal"
)

// Actor is the audit actor of a scheduled rotation: the service itself,
// where a rotation by hand names the operator's account.
const Actor = "keyservice"

// FailureCode is the audit code of a scheduled rotation that was recorded
// and then could not be written.
const FailureCode = "rotation_failed"

// Holder is the unsealed keyring and the way to change its file
// (*seal.Holder).
type Holder interface {
	Keyring() (*keyring.Keyring, error)
	Update(change func(*keyring.Keyring) error) (*keyring.Keyring, error)
}

// Locker elects the replica that rotates. TryLock returns a release
// function, or nil when another replica holds the lease.
type Locker interface {
	TryLock(ctx context.Context) (release func(), err error)
}

// Auditor records the rotation (*audit.Log).
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Config configures a Rotator.
type Config struct {
	// MaxAge is the cryptoperiod of a KEK version as the active one.
	MaxAge time.Duration
	// Alg of the new version; "" keeps the active version's.
	Alg string
	// Now is the clock ages are measured on; time.Now when nil.
	Now func() time.Time
	// Locker elects one replica; nil when there is only this one.
	Locker Locker
	Audit  Auditor
	Log    *slog.Logger
	// RetryAfter spaces attempts after a failure (a keyring file that
	// cannot be written, an audit log that cannot be appended to), so a
	// lasting fault is not retried and recorded every minute; 1h when 0.
	RetryAfter time.Duration
}

// Rotator checks the active version's age and rotates when it is due.
type Rotator struct {
	h       Holder
	cfg     Config
	nextTry time.Time // after a failure; zero otherwise
}

// New returns a Rotator; cfg.MaxAge must be positive.
func New(h Holder, cfg Config) (*Rotator, error) {
	if cfg.MaxAge <= 0 {
		return nil, errors.New("rotation: max age must be positive")
	}
	if cfg.Audit == nil {
		return nil, errors.New("rotation: an audit log is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Hour
	}
	return &Rotator{h: h, cfg: cfg}, nil
}

// Due reports whether the active version of kr has been active for maxAge
// or longer at now.
func Due(kr *keyring.Keyring, maxAge time.Duration, now time.Time) bool {
	v := kr.Newest()
	return v.Kid != "" && !now.Before(v.Created.Add(maxAge))
}

// errNotDue ends an Update whose fresh copy of the file shows a rotation
// made meanwhile (by another replica, or by hand).
var errNotDue = errors.New("rotation: not due")

// Check rotates if the active version is past its cryptoperiod and reports
// the version it made. Nothing happens while sealed, before the age is
// reached, while another replica holds the lease, or within RetryAfter of
// a failure. The rotation is audited (key.rotate, actor "keyservice")
// before the file is written; no record, no rotation.
func (r *Rotator) Check(ctx context.Context) (keyring.VersionInfo, bool, error) {
	kr, err := r.h.Keyring()
	if errors.Is(err, seal.ErrSealed) {
		return keyring.VersionInfo{}, false, nil
	}
	if err != nil {
		return keyring.VersionInfo{}, false, err
	}
	now := r.cfg.Now()
	if !Due(kr, r.cfg.MaxAge, now) || now.Before(r.nextTry) {
		return keyring.VersionInfo{}, false, nil
	}
	if r.cfg.Locker != nil {
		release, err := r.cfg.Locker.TryLock(ctx)
		if err != nil {
			// No lease, no rotation: two replicas rotating at once would
			// each publish a key the other does not know for a while.
			return keyring.VersionInfo{}, false, fmt.Errorf("rotation: lease: %w", err)
		}
		if release == nil {
			return keyring.VersionInfo{}, false, nil
		}
		defer release()
	}
	var (
		prev, next keyring.VersionInfo
		recorded   audit.Event
	)
	_, err = r.h.Update(func(kr *keyring.Keyring) error {
		if !Due(kr, r.cfg.MaxAge, now) {
			return errNotDue
		}
		prev = kr.Newest()
		v, err := kr.RotateAt(r.cfg.Alg, now)
		if err != nil {
			return err
		}
		next = v
		ev := audit.Event{
			Event: audit.EventKeyRotate, Actor: Actor, Outcome: audit.OutcomeSuccess, Kid: v.Kid, Resource: prev.Kid,
			Reason: fmt.Sprintf("%s; cryptoperiod: %s active since %s, -kek-max-age %s", v.Alg, prev.Kid, prev.Created.UTC().Format(time.RFC3339), r.cfg.MaxAge),
		}
		if recorded, err = r.cfg.Audit.Append(ctx, ev); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return nil
	})
	switch {
	case errors.Is(err, errNotDue):
		return keyring.VersionInfo{}, false, nil
	case err != nil:
		r.nextTry = now.Add(r.cfg.RetryAfter)
		if recorded.Seq != 0 {
			// Recorded as done, then not done: say so (as an admin
			// command's failure is followed by its failure record).
			f := audit.Event{Event: audit.EventKeyRotate, Actor: Actor, Outcome: audit.OutcomeFailure, Kid: next.Kid, Resource: prev.Kid, Code: FailureCode, Reason: truncate("failed: "+err.Error(), audit.MaxFieldLen)}
			if _, aerr := r.cfg.Audit.Append(context.WithoutCancel(ctx), f); aerr != nil {
				err = fmt.Errorf("%w (and its failure could not be recorded: %w)", err, aerr)
			}
		}
		r.cfg.Log.Error("scheduled KEK rotation failed; the active version stays in use", "kid", kr.Newest().Kid, "retry_after", r.nextTry, "err", err)
		return keyring.VersionInfo{}, false, fmt.Errorf("rotation: %w", err)
	}
	r.nextTry = time.Time{}
	r.cfg.Log.Info("KEK rotated at the end of its cryptoperiod", "kid", next.Kid, "previous", prev.Kid, "max_age", r.cfg.MaxAge)
	return next, true, nil
}

// Run checks every interval until ctx ends. Failures are logged by Check.
func (r *Rotator) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_, _, _ = r.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// RedisLocker is a Locker on a Redis lease shared by the replicas.
type RedisLocker struct {
	RDB redis.UniversalClient
	Key string        // "bg:ks:kek-rotation" when empty
	TTL time.Duration // 5 minutes when 0: longer than any key generation and write
}

// TryLock implements Locker.
func (l RedisLocker) TryLock(ctx context.Context) (func(), error) {
	key, ttl := l.Key, l.TTL
	if key == "" {
		key = "bg:ks:kek-rotation"
	}
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	lk, err := redisx.TryLock(ctx, l.RDB, key, ttl)
	if err != nil || lk == nil {
		return nil, err
	}
	return func() { _ = lk.Release(context.WithoutCancel(ctx)) }, nil
}
