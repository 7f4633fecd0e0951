package operators

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/testenv"
	bolt "go.etcd.io/bbolt"
)

// backend opens a fresh, empty Store.
type backend struct {
	name string
	open func(t *testing.T) Store
}

// backends lists every Store implementation; contract tests run against all.
func backends() []backend {
	return []backend{
		{"bolt", func(t *testing.T) Store {
			t.Helper()
			db, err := bolt.Open(filepath.Join(t.TempDir(), "gw.db"), 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			s, err := NewBolt(db)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"redis", func(t *testing.T) Store {
			t.Helper()
			return NewRedis(testenv.Redis(t), "bgtest")
		}},
	}
}

// forEachBackend runs fn as a subtest per backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, s Store)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { fn(t, b.open(t)) })
	}
}

var t0 = time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)

func testOp(id, username, merchant string) Operator {
	return Operator{ID: id, Username: username, Role: RoleViewer, MerchantID: merchant,
		PasswordHash: "$argon2id$dummy", CreatedAt: t0}
}

func TestStoreCRUD(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		a := testOp("op_a", "alice", "m_1")
		b := testOp("op_b", "bob", "")
		c := testOp("op_c", "carol", "m_2")
		for _, op := range []Operator{a, b, c} {
			if err := s.Create(ctx, op); err != nil {
				t.Fatalf("create %s: %v", op.Username, err)
			}
		}
		t.Run("409/username-taken", func(t *testing.T) {
			if err := s.Create(ctx, testOp("op_x", "alice", "")); !errors.Is(err, ErrExists) {
				t.Fatalf("got %v, want ErrExists", err)
			}
		})
		t.Run("400/bad-role", func(t *testing.T) {
			op := testOp("op_y", "yves", "")
			op.Role = "root"
			if err := s.Create(ctx, op); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
		t.Run("200/get-round-trips", func(t *testing.T) {
			got, err := s.Get(ctx, "op_a")
			if err != nil {
				t.Fatal(err)
			}
			if got.Username != "alice" || got.MerchantID != "m_1" || got.Role != RoleViewer ||
				got.PasswordHash != a.PasswordHash || !got.CreatedAt.Equal(t0) {
				t.Fatalf("got %+v", got)
			}
			byName, err := s.GetByUsername(ctx, "alice")
			if err != nil || byName.ID != "op_a" {
				t.Fatalf("by username: %v %v", byName.ID, err)
			}
		})
		t.Run("404/unknown", func(t *testing.T) {
			if _, err := s.Get(ctx, "op_nope"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get: %v", err)
			}
			if _, err := s.GetByUsername(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get by username: %v", err)
			}
			if _, err := s.Update(ctx, "op_nope", func(*Operator) error { return nil }); !errors.Is(err, ErrNotFound) {
				t.Fatalf("update: %v", err)
			}
		})
		t.Run("200/list-scoped", func(t *testing.T) {
			for _, tc := range []struct {
				merchant string
				want     []string
			}{
				{"", []string{"alice", "bob", "carol"}},
				{"m_1", []string{"alice"}},
				{"m_2", []string{"carol"}},
				{"m_3", nil},
			} {
				ops, err := s.List(ctx, tc.merchant)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, o := range ops {
					names = append(names, o.Username)
				}
				if len(names) != len(tc.want) {
					t.Fatalf("list %q: got %v want %v", tc.merchant, names, tc.want)
				}
				for i := range names {
					if names[i] != tc.want[i] {
						t.Fatalf("list %q: got %v want %v", tc.merchant, names, tc.want)
					}
				}
			}
		})
		t.Run("200/update", func(t *testing.T) {
			got, err := s.Update(ctx, "op_b", func(o *Operator) error {
				o.Role, o.Disabled, o.TOTPLastStep = RoleAdmin, true, 42
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			again, _ := s.Get(ctx, "op_b")
			for _, o := range []Operator{got, again} {
				if o.Role != RoleAdmin || !o.Disabled || o.TOTPLastStep != 42 {
					t.Fatalf("got %+v", o)
				}
			}
		})
		t.Run("400/update-may-not-rename", func(t *testing.T) {
			_, err := s.Update(ctx, "op_b", func(o *Operator) error { o.Username = "mallory"; return nil })
			if err == nil {
				t.Fatal("rename accepted")
			}
			if _, err := s.GetByUsername(ctx, "mallory"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("renamed operator reachable: %v", err)
			}
		})
		t.Run("error/fn-aborts-update", func(t *testing.T) {
			boom := errors.New("boom")
			_, err := s.Update(ctx, "op_c", func(o *Operator) error { o.Role = RoleAdmin; return boom })
			if !errors.Is(err, boom) {
				t.Fatalf("got %v", err)
			}
			if o, _ := s.Get(ctx, "op_c"); o.Role != RoleViewer {
				t.Fatalf("aborted update was stored: %v", o.Role)
			}
		})
	})
}

func TestStoreFailures(t *testing.T) {
	p := LockoutPolicy{MaxFailures: 3, LockFor: 30 * time.Minute, Window: time.Hour}
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		rec := func(u string, at time.Time) Lockout {
			t.Helper()
			l, err := s.RecordFailure(ctx, u, at, p)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		t.Run("locked/at-max", func(t *testing.T) {
			for i := 1; i <= 2; i++ {
				if l := rec("u1", t0); l.Failures != i || l.Locked(t0) {
					t.Fatalf("failure %d: %+v", i, l)
				}
			}
			l := rec("u1", t0.Add(time.Second))
			if l.Failures != 3 || !l.LockedUntil.Equal(t0.Add(time.Second+30*time.Minute)) {
				t.Fatalf("third failure: %+v", l)
			}
			stored, err := s.Lockout(ctx, "u1")
			if err != nil || stored.Failures != 3 || !stored.LockedUntil.Equal(l.LockedUntil) {
				t.Fatalf("stored %+v, %v", stored, err)
			}
		})
		t.Run("locked/not-counted-while-locked", func(t *testing.T) {
			l := rec("u1", t0.Add(10*time.Minute))
			if l.Failures != 3 || !l.LockedUntil.Equal(t0.Add(time.Second+30*time.Minute)) {
				t.Fatalf("got %+v", l)
			}
		})
		t.Run("ok/starts-over-after-lock", func(t *testing.T) {
			l := rec("u1", t0.Add(time.Second+30*time.Minute))
			if l.Failures != 1 || l.Locked(t0.Add(31*time.Minute)) {
				t.Fatalf("got %+v", l)
			}
		})
		t.Run("ok/window-forgets", func(t *testing.T) {
			rec("u2", t0)
			rec("u2", t0.Add(time.Minute))
			if l := rec("u2", t0.Add(time.Minute+time.Hour)); l.Failures != 1 || l.Locked(t0.Add(2*time.Hour)) {
				t.Fatalf("got %+v", l)
			}
		})
		t.Run("ok/reset", func(t *testing.T) {
			rec("u3", t0)
			if err := s.ResetFailures(ctx, "u3"); err != nil {
				t.Fatal(err)
			}
			if l, err := s.Lockout(ctx, "u3"); err != nil || l != (Lockout{}) {
				t.Fatalf("got %+v %v", l, err)
			}
		})
		t.Run("ok/operator-shows-lockout", func(t *testing.T) {
			if err := s.Create(ctx, testOp("op_l", "lou", "")); err != nil {
				t.Fatal(err)
			}
			rec("lou", t0)
			o, err := s.Get(ctx, "op_l")
			if err != nil || o.FailedLogins != 1 {
				t.Fatalf("got %d %v", o.FailedLogins, err)
			}
		})
	})
}

// Concurrent failures are all counted and lock exactly at the limit.
func TestStoreFailuresAtomic(t *testing.T) {
	p := LockoutPolicy{MaxFailures: 10, LockFor: 30 * time.Minute, Window: time.Hour}
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		var wg sync.WaitGroup
		for range 25 {
			wg.Go(func() {
				if _, err := s.RecordFailure(ctx, "racer", t0, p); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		l, err := s.Lockout(ctx, "racer")
		if err != nil || l.Failures != 10 || !l.Locked(t0) {
			t.Fatalf("got %+v %v, want 10 failures and locked", l, err)
		}
	})
}

// Concurrent updates serialise: exactly one claim of a TOTP step wins.
func TestStoreUpdateAtomic(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		if err := s.Create(ctx, testOp("op_r", "rita", "")); err != nil {
			t.Fatal(err)
		}
		used := errors.New("used")
		var mu sync.Mutex
		wins := 0
		var wg sync.WaitGroup
		for range 12 {
			wg.Go(func() {
				_, err := s.Update(ctx, "op_r", func(o *Operator) error {
					if o.TOTPLastStep >= 7 {
						return used
					}
					o.TOTPLastStep = 7
					return nil
				})
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errors.Is(err, used) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d updates claimed the step, want 1", wins)
		}
	})
}
