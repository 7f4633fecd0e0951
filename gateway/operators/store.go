package operators

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Store keeps operators and lockout counters. Implementations: *Redis
// (production) and *Bolt (embedded demo); one contract test runs against both.
//
// Lockout counters are kept per (normalised) username, whether or not an
// operator has that name: an unknown name locks exactly like a known one, so
// lockout cannot be used to find out which usernames exist.
type Store interface {
	// Create adds op; ErrExists when the username is taken.
	Create(ctx context.Context, op Operator) error
	// Get and GetByUsername return ErrNotFound when absent. The result's
	// FailedLogins and LockedUntil come from the username's lockout record.
	Get(ctx context.Context, id string) (Operator, error)
	GetByUsername(ctx context.Context, username string) (Operator, error)
	// List returns the operators of merchantID, or all operators when
	// merchantID is "", ordered by username.
	List(ctx context.Context, merchantID string) ([]Operator, error)
	// Update applies fn to the stored operator atomically (bolt transaction,
	// Redis WATCH/MULTI) and stores the result. fn may not change ID or
	// Username, and must not rely on the FailedLogins/LockedUntil it is given
	// (use Lockout). An error from fn aborts the update and is returned as is.
	// fn may run more than once (optimistic retry), so it must be pure.
	Update(ctx context.Context, id string, fn func(*Operator) error) (Operator, error)

	// Lockout returns the stored lockout state of username (zero when
	// none); check it with Lockout.Locked(now).
	Lockout(ctx context.Context, username string) (Lockout, error)
	// RecordFailure counts one failed login atomically. When the count
	// reaches p.MaxFailures the username is locked until now+p.LockFor. While
	// locked, nothing is counted. Once a lock has run out, or p.Window has
	// passed since the last failure, counting starts again from zero.
	RecordFailure(ctx context.Context, username string, now time.Time, p LockoutPolicy) (Lockout, error)
	// ResetFailures clears the counter and any lock of username.
	ResetFailures(ctx context.Context, username string) error

	// PutChallenge records a single-use challenge key, valid for ttl from
	// now (ErrExists if it is already there).
	PutChallenge(ctx context.Context, key string, now time.Time, ttl time.Duration) error
	// TakeChallenge spends key: true exactly once while it is valid at now,
	// false when unknown, expired or already taken.
	TakeChallenge(ctx context.Context, key string, now time.Time) (bool, error)
}

// LockoutPolicy says when repeated failures lock a username.
type LockoutPolicy struct {
	MaxFailures int           // consecutive failures that lock (10)
	LockFor     time.Duration // lock duration (30 min)
	// Window forgets failures this long after the last one (24 h), so the
	// counters of names that never log in again do not live forever.
	Window time.Duration
}

// Lockout is the failure state of one username.
type Lockout struct {
	Failures    int
	LockedUntil time.Time // zero when not locked
}

// Locked reports whether the lock is in force at now.
func (l Lockout) Locked(now time.Time) bool { return now.Before(l.LockedUntil) }

// record is the stored form of an Operator: the lockout fields live in the
// per-username counter, so they are not duplicated here.
type record struct {
	ID           string    `json:"id"`
	Username     string    `json:"username"`
	Role         Role      `json:"role"`
	MerchantID   string    `json:"merchant_id,omitempty"`
	PasswordHash string    `json:"password_hash"`
	TOTPSecret   string    `json:"totp_secret,omitempty"`
	TOTPEnabled  bool      `json:"totp_enabled,omitempty"`
	TOTPPending  string    `json:"totp_pending,omitempty"`
	TOTPLastStep int64     `json:"totp_last_step,omitempty"`
	Passkeys     []Passkey `json:"passkeys,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	Disabled     bool      `json:"disabled,omitempty"`
}

func toRecord(o Operator) record {
	return record{
		ID: o.ID, Username: o.Username, Role: o.Role, MerchantID: o.MerchantID,
		PasswordHash: o.PasswordHash, TOTPSecret: o.TOTPSecret, TOTPEnabled: o.TOTPEnabled,
		TOTPPending: o.TOTPPending, TOTPLastStep: o.TOTPLastStep, Passkeys: o.Passkeys, CreatedAt: o.CreatedAt, Disabled: o.Disabled,
	}
}

func (r record) operator(l Lockout) Operator {
	return Operator{
		ID: r.ID, Username: r.Username, Role: r.Role, MerchantID: r.MerchantID,
		PasswordHash: r.PasswordHash, TOTPSecret: r.TOTPSecret, TOTPEnabled: r.TOTPEnabled,
		TOTPPending: r.TOTPPending, TOTPLastStep: r.TOTPLastStep, Passkeys: r.Passkeys, CreatedAt: r.CreatedAt, Disabled: r.Disabled,
		FailedLogins: l.Failures, LockedUntil: l.LockedUntil,
	}
}

func encodeRecord(o Operator) ([]byte, error) {
	b, err := json.Marshal(toRecord(o))
	if err != nil {
		return nil, fmt.Errorf("operators: encode: %w", err)
	}
	return b, nil
}

func decodeRecord(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("operators: decode stored operator: %w", err)
	}
	return r, nil
}

// checkNew validates an operator before a store accepts it.
func checkNew(op Operator) error {
	switch {
	case op.ID == "" || op.Username == "":
		return fmt.Errorf("%w: id and username are required", ErrInvalid)
	case !op.Role.Valid():
		return fmt.Errorf("%w: unknown role", ErrInvalid)
	case !validMerchantID(op.MerchantID):
		return fmt.Errorf("%w: bad merchant id", ErrInvalid)
	}
	return nil
}

var errImmutable = errors.New("operators: update may not change id or username")

func sortByUsername(ops []Operator) {
	sort.Slice(ops, func(i, j int) bool { return ops[i].Username < ops[j].Username })
}

// failureState is the stored lockout counter. Last is the time of the last
// counted failure (for Window).
type failureState struct {
	N     int       `json:"n"`
	Until time.Time `json:"until,omitzero"`
	Last  time.Time `json:"last,omitzero"`
}

// current is the state as seen at now: an expired lock or a stale counter
// reads as zero.
func (f failureState) current(now time.Time, window time.Duration) failureState {
	if !f.Until.IsZero() && !now.Before(f.Until) {
		return failureState{}
	}
	if f.Until.IsZero() && window > 0 && !f.Last.IsZero() && now.Sub(f.Last) >= window {
		return failureState{}
	}
	return f
}

// next counts one failure at now.
func (f failureState) next(now time.Time, p LockoutPolicy) failureState {
	f = f.current(now, p.Window)
	if now.Before(f.Until) {
		return f // already locked: nothing to count
	}
	f.N++
	f.Last = now
	if f.N >= p.MaxFailures {
		f.Until = now.Add(p.LockFor)
	}
	return f
}

func (f failureState) lockout() Lockout { return Lockout{Failures: f.N, LockedUntil: f.Until} }
