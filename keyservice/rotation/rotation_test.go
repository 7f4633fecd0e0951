package rotation

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/seal"
)

const maxAge = 90 * 24 * time.Hour

// fakeClock is the test's clock; the keyring's versions are dated by it too.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// zone is one keyring file, unsealed in a holder, with an audit log.
type zone struct {
	path   string
	master []byte
	holder *seal.Holder
	audit  *audit.Log
	apath  string
}

func newZone(t *testing.T, created time.Time) *zone {
	t.Helper()
	kr, err := keyring.New(keyring.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	// Date the first version by the fake clock: rotate once at "created"
	// and retire nothing (the first, real-clock version is only older).
	if _, err := kr.RotateAt("", created); err != nil {
		t.Fatal(err)
	}
	master, _ := keyring.GenerateMasterKey()
	dir := t.TempDir()
	z := &zone{path: filepath.Join(dir, "keyring.sealed"), master: master, apath: filepath.Join(dir, "audit.log")}
	if err := keyring.Save(z.path, kr, master); err != nil {
		t.Fatal(err)
	}
	z.holder = z.replica(t)
	z.audit, err = audit.Open(z.apath, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = z.audit.Close() })
	return z
}

// replica is another key service on the same keyring file.
func (z *zone) replica(t *testing.T) *seal.Holder {
	t.Helper()
	h := seal.New(z.path, 1)
	if err := h.UnsealWithKey(z.master); err != nil {
		t.Fatal(err)
	}
	return h
}

func (z *zone) active(t *testing.T) keyring.VersionInfo {
	t.Helper()
	kr, err := keyring.Load(z.path, z.master)
	if err != nil {
		t.Fatal(err)
	}
	return kr.Newest()
}

func (z *zone) rotations(t *testing.T) []audit.Event {
	t.Helper()
	evs, _, err := audit.FileTrail(z.apath).Query(context.Background(), audit.Filter{Event: audit.EventKeyRotate})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestRotationByAge drives one rotator on a fake clock through a
// cryptoperiod: nothing before the age, one rotation at it (audited, in
// the file, served, the old version decrypt-only), nothing right after,
// and the next one a full period later.
func TestRotationByAge(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	z := newZone(t, clock.Now())
	first := z.active(t)
	r, err := New(z.holder, Config{MaxAge: maxAge, Now: clock.Now, Audit: z.audit})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		advance time.Duration
		rotate  bool
	}{
		{"none/young", 0, false},
		{"none/a-second-early", maxAge - time.Second, false},
		{"rotates/at-max-age", time.Second, true},
		{"none/right-after", time.Minute, false},
		{"none/new-version-is-young", maxAge - 2*time.Minute, false},
		{"rotates/a-period-later", time.Minute, true},
	}
	prev := first
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clock.Advance(s.advance)
			v, rotated, err := r.Check(ctx)
			if err != nil || rotated != s.rotate {
				t.Fatalf("Check: rotated=%v err=%v", rotated, err)
			}
			active := z.active(t)
			if !s.rotate {
				if active.Kid != prev.Kid {
					t.Fatalf("file's active version %s, want %s unchanged", active.Kid, prev.Kid)
				}
				return
			}
			if v.Kid == prev.Kid || active.Kid != v.Kid || !active.Created.Equal(clock.Now().Truncate(time.Second)) {
				t.Fatalf("rotated to %+v; file's active %+v", v, active)
			}
			served, _ := z.holder.Keyring()
			pub := served.PublicKeys()
			if len(pub) != 1 || pub[0].Kid != v.Kid {
				t.Fatalf("JWKS serves %v, want only %s", pub, v.Kid)
			}
			if _, err := served.Lookup(prev.Kid); err != nil {
				t.Fatalf("previous version no longer decrypts: %v", err)
			}
			evs := z.rotations(t)
			if len(evs) == 0 {
				t.Fatal("no key.rotate on record")
			}
			e := evs[0] // newest first
			if e.Actor != Actor || e.Outcome != audit.OutcomeSuccess || e.Kid != v.Kid || e.Resource != prev.Kid || !strings.Contains(e.Reason, "cryptoperiod") {
				t.Fatalf("audit record %+v", e)
			}
			prev = active
		})
	}
	if n := len(z.rotations(t)); n != 2 {
		t.Fatalf("%d rotations on record, want 2", n)
	}
}

// TestRotationSealed: a sealed service has no keyring to age.
func TestRotationSealed(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	z := newZone(t, clock.Now())
	z.holder.Seal()
	r, _ := New(z.holder, Config{MaxAge: maxAge, Now: clock.Now, Audit: z.audit})
	clock.Advance(2 * maxAge)
	if _, rotated, err := r.Check(context.Background()); rotated || err != nil {
		t.Fatalf("sealed: rotated=%v err=%v", rotated, err)
	}
}

// memLocker is a Locker in this process (what Redis gives replicas).
type memLocker struct {
	mu   sync.Mutex
	held bool
}

func (l *memLocker) TryLock(context.Context) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		return nil, nil
	}
	l.held = true
	return func() { l.mu.Lock(); l.held = false; l.mu.Unlock() }, nil
}

// TestRotationReplicas: several replicas on one keyring file, each
// believing the version due. With the lease held elsewhere nobody rotates;
// after one rotated, a replica whose served keyring is stale still does not
// rotate again, because it re-reads the file under the lease.
func TestRotationReplicas(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	z := newZone(t, clock.Now())
	lock := &memLocker{}
	a, _ := New(z.holder, Config{MaxAge: maxAge, Now: clock.Now, Audit: z.audit, Locker: lock})
	b, _ := New(z.replica(t), Config{MaxAge: maxAge, Now: clock.Now, Audit: z.audit, Locker: lock})
	clock.Advance(maxAge)

	release, _ := lock.TryLock(ctx) // a third replica is rotating
	for name, r := range map[string]*Rotator{"a": a, "b": b} {
		if _, rotated, err := r.Check(ctx); rotated || err != nil {
			t.Fatalf("%s rotated while another holds the lease: %v %v", name, rotated, err)
		}
	}
	release()

	if _, rotated, err := a.Check(ctx); !rotated || err != nil {
		t.Fatalf("a: rotated=%v err=%v", rotated, err)
	}
	if _, rotated, err := b.Check(ctx); rotated || err != nil {
		t.Fatalf("b rotated again after a: rotated=%v err=%v", rotated, err)
	}
	if n := len(z.rotations(t)); n != 1 {
		t.Fatalf("%d rotations on record, want 1", n)
	}
}

// TestRotationReplicasRedis: the same race, concurrent, on the Redis lease
// the key service uses when Redis is configured.
func TestRotationReplicasRedis(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	z := newZone(t, clock.Now())
	clock.Advance(maxAge)
	var rs []*Rotator
	for i := 0; i < 4; i++ {
		h := z.holder
		if i > 0 {
			h = z.replica(t)
		}
		r, _ := New(h, Config{MaxAge: maxAge, Now: clock.Now, Audit: z.audit, Locker: RedisLocker{RDB: rdb}})
		rs = append(rs, r)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	rotated := 0
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := r.Check(ctx)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				rotated++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if rotated != 1 || len(z.rotations(t)) != 1 {
		t.Fatalf("%d replicas rotated, %d rotations on record; want 1", rotated, len(z.rotations(t)))
	}
}

// failingHolder applies the change to a copy and then fails to write it.
type failingHolder struct {
	kr      *keyring.Keyring
	applied int
}

func (f *failingHolder) Keyring() (*keyring.Keyring, error) { return f.kr, nil }
func (f *failingHolder) Update(change func(*keyring.Keyring) error) (*keyring.Keyring, error) {
	kr, err := keyring.New(keyring.DefaultAlg)
	if err != nil {
		return nil, err
	}
	if _, err := kr.RotateAt("", f.kr.Newest().Created); err != nil {
		return nil, err
	}
	if err := change(kr); err != nil {
		return nil, err
	}
	f.applied++
	return nil, errors.New("disk full")
}

type failingAudit struct{}

func (failingAudit) Append(context.Context, audit.Event) (audit.Event, error) {
	return audit.Event{}, audit.ErrUnavailable
}

// TestRotationFailures: an audit log that cannot record refuses the
// rotation before anything is written; a write that fails after the record
// is followed by a failure record; either way the next attempt waits
// RetryAfter rather than filling the trail every minute.
func TestRotationFailures(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}

	t.Run("no-audit-no-rotation", func(t *testing.T) {
		z := newZone(t, clock.Now())
		first := z.active(t)
		c := &fakeClock{t: clock.Now()}
		r, _ := New(z.holder, Config{MaxAge: maxAge, Now: c.Now, Audit: failingAudit{}})
		c.Advance(maxAge)
		if _, rotated, err := r.Check(ctx); rotated || err == nil {
			t.Fatalf("rotated=%v err=%v, want a refusal", rotated, err)
		}
		if got := z.active(t); got.Kid != first.Kid {
			t.Fatalf("file rotated to %s without an audit record", got.Kid)
		}
	})

	t.Run("write-fails-recorded-and-spaced", func(t *testing.T) {
		z := newZone(t, clock.Now())
		kr, _ := z.holder.Keyring()
		fh := &failingHolder{kr: kr}
		c := &fakeClock{t: clock.Now()}
		r, _ := New(fh, Config{MaxAge: maxAge, Now: c.Now, Audit: z.audit, RetryAfter: time.Hour})
		c.Advance(maxAge)
		if _, rotated, err := r.Check(ctx); rotated || err == nil {
			t.Fatalf("rotated=%v err=%v, want the write's failure", rotated, err)
		}
		evs := z.rotations(t)
		if len(evs) != 2 || evs[0].Outcome != audit.OutcomeFailure || evs[0].Code != FailureCode || evs[1].Outcome != audit.OutcomeSuccess {
			t.Fatalf("records %+v, want the attempt then its failure", evs)
		}
		c.Advance(time.Hour - time.Second)
		if _, _, err := r.Check(ctx); err != nil || fh.applied != 1 {
			t.Fatalf("retried within RetryAfter: attempts=%d err=%v", fh.applied, err)
		}
		c.Advance(time.Second)
		if _, _, err := r.Check(ctx); err == nil || fh.applied != 2 {
			t.Fatalf("not retried after RetryAfter: attempts=%d err=%v", fh.applied, err)
		}
	})
}
