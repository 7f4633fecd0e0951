package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/internal/boltx"
	"github.com/blindgate/blindgate/internal/ratelimit"
)

// Bolt is the embedded Store for the single-binary demo: bucket "sessions",
// id -> JSON Session. Each operation is one bbolt transaction. Expired
// sessions are removed by Sweep (run it periodically with RunSweeper).
type Bolt struct {
	st boltx.Store
	o  options
}

var _ Store = (*Bolt)(nil)

var bSessions = []byte("sessions")

// NewBolt creates the bucket it needs in db.
func NewBolt(db *bolt.DB, opts ...Option) (*Bolt, error) {
	o := buildOptions(opts)
	st, err := boltx.NewStore(db, boltx.StoreOptions{
		Name: "sessions", Now: o.now, Buckets: [][]byte{bSessions},
		Sentinels: []error{ErrNotFound, ErrExpired, ErrTooManyAttempts, ErrCompleted, ErrInvalid, ErrConflict, ErrBusy},
	})
	if err != nil {
		return nil, err
	}
	return &Bolt{st: st, o: o}, nil
}

// record is a stored session with its claim, which is store state rather
// than part of the Session a caller sees. Records written before claims
// existed decode with no claim.
type record struct {
	Session
	Claim        string    `json:"claim,omitempty"`
	ClaimExpires time.Time `json:"claim_expires,omitzero"`
}

func loadRecord(tx *bolt.Tx, id string) (record, error) {
	return boltx.Get[record](tx.Bucket(bSessions), id, ErrNotFound)
}

func load(tx *bolt.Tx, id string) (Session, error) {
	r, err := loadRecord(tx, id)
	return r.Session, err
}

func storeRecord(tx *bolt.Tx, r record) error {
	return boltx.Put(tx.Bucket(bSessions), r.ID, r)
}

func store(tx *bolt.Tx, s Session) error { return storeRecord(tx, record{Session: s}) }

// gone: past expiry and grace, the session reads as absent, like a Redis key
// that expired, even before Sweep removed it.
func (b *Bolt) gone(s Session, now time.Time) bool {
	return !now.Before(s.ExpiresAt.Add(b.o.grace))
}

// Create implements Store.
func (b *Bolt) Create(ctx context.Context, s Session) (Session, error) {
	if err := b.st.Check(ctx); err != nil {
		return Session{}, err
	}
	s, err := prepare(s, b.st.Now())
	if err != nil {
		return Session{}, err
	}
	err = b.st.DB().Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bSessions).Get([]byte(s.ID)) != nil {
			return ErrConflict
		}
		return store(tx, s)
	})
	if err != nil {
		return Session{}, b.st.Wrap("create", err)
	}
	return s, nil
}

// Get implements Store.
func (b *Bolt) Get(ctx context.Context, id string) (Session, error) {
	if err := b.st.Check(ctx); err != nil {
		return Session{}, err
	}
	if !ValidID(id) {
		return Session{}, ErrNotFound
	}
	var s Session
	err := b.st.DB().View(func(tx *bolt.Tx) error {
		var err error
		s, err = load(tx, id)
		return err
	})
	if err != nil {
		return Session{}, b.st.Wrap("get", err)
	}
	now := b.st.Now()
	if b.gone(s, now) {
		return Session{}, ErrNotFound
	}
	if s.Expired(now) {
		return s, ErrExpired
	}
	return s, nil
}

// Attempt implements Store.
func (b *Bolt) Attempt(ctx context.Context, id, claim string) (Session, error) {
	if err := b.st.Check(ctx); err != nil {
		return Session{}, err
	}
	if !ValidID(id) {
		return Session{}, ErrNotFound
	}
	if !validClaim(claim) {
		return Session{}, fmt.Errorf("%w: claim", ErrInvalid)
	}
	var r record
	var refused error
	now := b.st.Now()
	err := b.st.DB().Update(func(tx *bolt.Tx) error {
		var err error
		if r, err = loadRecord(tx, id); err != nil {
			return err
		}
		switch {
		case b.gone(r.Session, now):
			return ErrNotFound
		case r.Expired(now):
			refused = ErrExpired
		case r.Completed():
			refused = ErrCompleted
		case r.Claim != "" && now.Before(r.ClaimExpires):
			refused = ErrBusy
		case r.Attempts >= r.MaxAttempts:
			refused = ErrTooManyAttempts
		default:
			r.Attempts++
			r.Claim, r.ClaimExpires = claim, now.Add(b.o.claimTTL)
			return storeRecord(tx, r)
		}
		return nil
	})
	if err != nil {
		return Session{}, b.st.Wrap("attempt", err)
	}
	return r.Session, refused
}

// AttemptLimited implements Store: the limits, then the attempt.
func (b *Bolt) AttemptLimited(ctx context.Context, l ratelimit.Limiter, takes []ratelimit.Take, id, claim string) ([]ratelimit.Result, Session, error) {
	return attemptAfter(ctx, l, takes, func() (Session, error) { return b.Attempt(ctx, id, claim) })
}

// Release implements Store.
func (b *Bolt) Release(ctx context.Context, id, claim string) error {
	if err := b.st.Check(ctx); err != nil {
		return err
	}
	if !ValidID(id) || !validClaim(claim) {
		return nil
	}
	err := b.st.DB().Update(func(tx *bolt.Tx) error {
		r, err := loadRecord(tx, id)
		if errors.Is(err, ErrNotFound) || r.Claim != claim {
			return nil
		}
		if err != nil {
			return err
		}
		r.Claim, r.ClaimExpires = "", time.Time{}
		return storeRecord(tx, r)
	})
	return b.st.Wrap("release", err)
}

// Complete implements Store.
func (b *Bolt) Complete(ctx context.Context, id, token string) error {
	if err := b.st.Check(ctx); err != nil {
		return err
	}
	if !ValidID(id) {
		return ErrNotFound
	}
	if !validToken(token) {
		return fmt.Errorf("%w: token", ErrInvalid)
	}
	now := b.st.Now()
	err := b.st.DB().Update(func(tx *bolt.Tx) error {
		s, err := load(tx, id)
		if err != nil {
			return err
		}
		switch {
		case b.gone(s, now):
			return ErrNotFound
		case s.Expired(now):
			return ErrExpired
		case s.Token == token:
			return nil
		case s.Completed():
			return ErrCompleted
		}
		s.Token = token
		return store(tx, s)
	})
	return b.st.Wrap("complete", err)
}

// Sweep deletes sessions past expiry and grace; it returns how many.
func (b *Bolt) Sweep(ctx context.Context) (int, error) {
	return b.st.Sweep(ctx, bSessions, func(v []byte, now time.Time) bool {
		var s Session
		return json.Unmarshal(v, &s) != nil || b.gone(s, now)
	})
}

// RunSweeper calls Sweep every interval until ctx ends.
func (b *Bolt) RunSweeper(ctx context.Context, every time.Duration) {
	boltx.Every(ctx, every, func(ctx context.Context) { _, _ = b.Sweep(ctx) })
}
