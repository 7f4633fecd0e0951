package websession

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/testenv"
	bolt "go.etcd.io/bbolt"
)

// The operator service ends sessions through this interface.
var (
	_ operators.SessionRevoker = (*Redis)(nil)
	_ operators.SessionRevoker = (*Bolt)(nil)
)

// dumper returns every key and value a backend holds, for the
// "no cookie value at rest" check.
type dumper func(t *testing.T) string

type backend struct {
	name string
	open func(t *testing.T, cfg Config) (Store, dumper)
}

func backends() []backend {
	return []backend{
		{"bolt", func(t *testing.T, cfg Config) (Store, dumper) {
			t.Helper()
			db, err := bolt.Open(filepath.Join(t.TempDir(), "gw.db"), 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			s, err := NewBolt(db, cfg)
			if err != nil {
				t.Fatal(err)
			}
			return s, func(t *testing.T) string {
				var sb strings.Builder
				var walk func(b *bolt.Bucket)
				walk = func(b *bolt.Bucket) {
					_ = b.ForEach(func(k, v []byte) error {
						fmt.Fprintf(&sb, "%s=%s\n", k, v)
						if v == nil {
							if nb := b.Bucket(k); nb != nil {
								walk(nb)
							}
						}
						return nil
					})
				}
				_ = db.View(func(tx *bolt.Tx) error {
					return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
						fmt.Fprintf(&sb, "[%s]\n", name)
						walk(b)
						return nil
					})
				})
				return sb.String()
			}
		}},
		{"redis", func(t *testing.T, cfg Config) (Store, dumper) {
			t.Helper()
			rdb := testenv.Redis(t)
			s, err := NewRedis(rdb, "bgtest", cfg)
			if err != nil {
				t.Fatal(err)
			}
			return s, func(t *testing.T) string {
				ctx := context.Background()
				var sb strings.Builder
				keys, err := rdb.Keys(ctx, "*").Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range keys {
					fmt.Fprintf(&sb, "%s=", k)
					switch rdb.Type(ctx, k).Val() {
					case "string":
						sb.WriteString(rdb.Get(ctx, k).Val())
					case "set":
						sb.WriteString(strings.Join(rdb.SMembers(ctx, k).Val(), ","))
					}
					sb.WriteString("\n")
				}
				return sb.String()
			}
		}},
	}
}

func forEachBackend(t *testing.T, cfg Config, fn func(t *testing.T, s Store, dump dumper)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s, d := b.open(t, cfg)
			fn(t, s, d)
		})
	}
}

var t0 = time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)

func mustCreate(t *testing.T, s Store, op string, at time.Time) Session {
	t.Helper()
	sess, err := s.Create(context.Background(), op, at)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

func TestCreateGet(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, s Store, dump dumper) {
		ctx := context.Background()
		a := mustCreate(t, s, "op_a", t0)
		b := mustCreate(t, s, "op_a", t0)
		t.Run("201/random-ids", func(t *testing.T) {
			if len(a.ID) != 43 || len(a.CSRF) != 43 || a.ID == b.ID || a.CSRF == b.CSRF || a.ID == a.CSRF {
				t.Fatalf("ids %q %q csrf %q %q", a.ID, b.ID, a.CSRF, b.CSRF)
			}
			if a.OperatorID != "op_a" || !a.CreatedAt.Equal(t0) || !a.LastSeen.Equal(t0) || !a.AuthAt.Equal(t0) {
				t.Fatalf("times %v %v %v", a.CreatedAt, a.LastSeen, a.AuthAt)
			}
		})
		t.Run("200/get-round-trips", func(t *testing.T) {
			got, err := s.Get(ctx, a.ID, t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != a.ID || got.OperatorID != "op_a" || got.CSRF != a.CSRF ||
				!got.CreatedAt.Equal(t0) || !got.AuthAt.Equal(t0) || !got.LastSeen.Equal(t0.Add(time.Minute)) {
				t.Fatalf("got %+v", got)
			}
		})
		t.Run("404/unknown-and-malformed", func(t *testing.T) {
			for _, id := range []string{randomToken(), "", "short", strings.Repeat("!", 43), a.ID + "x"} {
				if _, err := s.Get(ctx, id, t0); !errors.Is(err, ErrNotFound) {
					t.Fatalf("%q: %v", id, err)
				}
			}
		})
		t.Run("400/empty-operator", func(t *testing.T) {
			if _, err := s.Create(ctx, "", t0); err == nil {
				t.Fatal("session without operator")
			}
		})
		t.Run("ok/store-holds-no-cookie-value", func(t *testing.T) {
			d := dump(t)
			if !strings.Contains(d, idHash(a.ID)) {
				t.Fatalf("dump does not show the hashed key; the check is blind:\n%s", d)
			}
			for _, sess := range []Session{a, b} {
				if strings.Contains(d, sess.ID) {
					t.Fatalf("a cookie value is stored in clear:\n%s", d)
				}
			}
		})
		t.Run("204/delete", func(t *testing.T) {
			if err := s.Delete(ctx, a.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, a.ID, t0); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after delete: %v", err)
			}
			if err := s.Delete(ctx, a.ID); err != nil {
				t.Fatalf("second delete: %v", err)
			}
			if _, err := s.Get(ctx, b.ID, t0); err != nil {
				t.Fatalf("other session gone: %v", err)
			}
		})
	})
}

func TestIdleExpiry(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, s Store, _ dumper) {
		ctx := context.Background()
		for _, tc := range []struct {
			name  string
			after time.Duration
			want  error
		}{
			{"200/14m59s-idle", 15*time.Minute - time.Second, nil},
			{"200/exactly-15m-idle", 15 * time.Minute, nil},
			{"401/15m1s-idle", 15*time.Minute + time.Second, ErrExpired},
			{"401/a-day-idle", 24 * time.Hour, ErrExpired},
		} {
			t.Run(tc.name, func(t *testing.T) {
				sess := mustCreate(t, s, "op_idle", t0)
				_, err := s.Get(ctx, sess.ID, t0.Add(tc.after))
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if tc.want != nil {
					if _, err := s.Get(ctx, sess.ID, t0); !errors.Is(err, ErrNotFound) {
						t.Fatalf("expired session not deleted: %v", err)
					}
				}
			})
		}
		t.Run("200/sliding-expiry", func(t *testing.T) {
			sess := mustCreate(t, s, "op_slide", t0)
			at := t0
			for range 12 { // two hours, one request every 10 minutes
				at = at.Add(10 * time.Minute)
				if _, err := s.Get(ctx, sess.ID, at); err != nil {
					t.Fatalf("at %v: %v", at.Sub(t0), err)
				}
			}
			if _, err := s.Get(ctx, sess.ID, at.Add(16*time.Minute)); !errors.Is(err, ErrExpired) {
				t.Fatalf("idle after sliding: %v", err)
			}
		})
	})
}

func TestAbsoluteExpiry(t *testing.T) {
	cfg := Config{IdleTimeout: 15 * time.Minute, AbsoluteTimeout: time.Hour}
	forEachBackend(t, cfg, func(t *testing.T, s Store, _ dumper) {
		ctx := context.Background()
		sess := mustCreate(t, s, "op_abs", t0)
		// A timeline of requests 10 minutes apart: the idle timeout never
		// fires, so only the absolute limit can end the session.
		for _, tc := range []struct {
			name string
			at   time.Duration
			want error
		}{
			{"200/busy-at-10m", 10 * time.Minute, nil},
			{"200/busy-at-20m", 20 * time.Minute, nil},
			{"200/busy-at-30m", 30 * time.Minute, nil},
			{"200/busy-at-40m", 40 * time.Minute, nil},
			{"200/busy-at-50m", 50 * time.Minute, nil},
			{"200/busy-at-exactly-1h", time.Hour, nil},
			{"401/busy-at-1h5m", time.Hour + 5*time.Minute, ErrExpired},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := s.Get(ctx, sess.ID, t0.Add(tc.at)); !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			})
		}
	})
}

func TestReauthFreshness(t *testing.T) {
	window := 5 * time.Minute
	forEachBackend(t, Config{}, func(t *testing.T, s Store, _ dumper) {
		ctx := context.Background()
		sess := mustCreate(t, s, "op_fresh", t0)
		for _, tc := range []struct {
			name string
			sess Session
			now  time.Time
			want bool
		}{
			{"fresh/at-login", sess, t0, true},
			{"fresh/exactly-5m", sess, t0.Add(window), true},
			{"stale/5m1s", sess, t0.Add(window + time.Second), false},
			{"stale/auth-in-future", sess, t0.Add(-time.Second), false},
			{"stale/never-authenticated", Session{}, t0, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := tc.sess.FreshFor(window, tc.now); got != tc.want {
					t.Fatalf("FreshFor = %v", got)
				}
			})
		}
		t.Run("fresh/after-reauth", func(t *testing.T) {
			at := t0.Add(10 * time.Minute)
			got, err := s.Reauth(ctx, sess.ID, at)
			if err != nil {
				t.Fatal(err)
			}
			if !got.AuthAt.Equal(at) || !got.FreshFor(window, at.Add(window)) {
				t.Fatalf("AuthAt %v", got.AuthAt)
			}
			again, err := s.Get(ctx, sess.ID, at.Add(time.Minute))
			if err != nil || !again.AuthAt.Equal(at) || !again.CreatedAt.Equal(t0) {
				t.Fatalf("AuthAt not stored: %v %v", again.AuthAt, err)
			}
		})
		t.Run("401/reauth-expired-session", func(t *testing.T) {
			old := mustCreate(t, s, "op_fresh", t0)
			if _, err := s.Reauth(ctx, old.ID, t0.Add(time.Hour)); !errors.Is(err, ErrExpired) {
				t.Fatalf("got %v", err)
			}
		})
	})
}

func TestCheckCSRF(t *testing.T) {
	s := Session{CSRF: randomToken()}
	for _, tc := range []struct {
		name  string
		sess  Session
		token string
		want  bool
	}{
		{"ok/match", s, s.CSRF, true},
		{"deny/empty-token", s, "", false},
		{"deny/other-token", s, randomToken(), false},
		{"deny/prefix", s, s.CSRF[:42], false},
		{"deny/longer", s, s.CSRF + "A", false},
		{"deny/session-without-token", Session{}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sess.CheckCSRF(tc.token); got != tc.want {
				t.Fatalf("CheckCSRF = %v", got)
			}
		})
	}
}

func TestDeleteForOperator(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, s Store, dump dumper) {
		ctx := context.Background()
		var a []Session
		for range 3 {
			a = append(a, mustCreate(t, s, "op_a", t0))
		}
		b := mustCreate(t, s, "op_b", t0)
		if err := s.DeleteForOperator(ctx, "op_a"); err != nil {
			t.Fatal(err)
		}
		for i, sess := range a {
			if _, err := s.Get(ctx, sess.ID, t0); !errors.Is(err, ErrNotFound) {
				t.Fatalf("session %d of op_a survived: %v", i, err)
			}
		}
		if _, err := s.Get(ctx, b.ID, t0); err != nil {
			t.Fatalf("op_b's session ended: %v", err)
		}
		if err := s.DeleteForOperator(ctx, "op_none"); err != nil {
			t.Fatalf("operator without sessions: %v", err)
		}
		c := mustCreate(t, s, "op_a", t0.Add(time.Minute))
		if _, err := s.Get(ctx, c.ID, t0.Add(time.Minute)); err != nil {
			t.Fatalf("new login after revocation: %v", err)
		}
		if strings.Contains(dump(t), idHash(a[0].ID)) {
			t.Fatal("revoked session left in the index")
		}
	})
}

// Revocation racing with requests: once DeleteForOperator returns, no
// earlier session of that operator is usable.
func TestDeleteForOperatorRacesTouch(t *testing.T) {
	forEachBackend(t, Config{}, func(t *testing.T, s Store, _ dumper) {
		ctx := context.Background()
		var ids []string
		for range 5 {
			ids = append(ids, mustCreate(t, s, "op_r", t0).ID)
		}
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Go(func() {
				for i := range 20 {
					_, _ = s.Get(ctx, id, t0.Add(time.Duration(i)*time.Second))
				}
			})
		}
		if err := s.DeleteForOperator(ctx, "op_r"); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for _, id := range ids {
			if _, err := s.Get(ctx, id, t0.Add(time.Minute)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("session survived revocation: %v", err)
			}
		}
	})
}

func TestPrintingHidesSecrets(t *testing.T) {
	s := Session{ID: randomToken(), CSRF: randomToken(), OperatorID: "op_x", CreatedAt: t0}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "s", s)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %s", s, s, s, s), logged.String()} {
		if strings.Contains(out, s.ID) || strings.Contains(out, s.CSRF) {
			t.Fatalf("printed a secret: %s", out)
		}
		if !strings.Contains(out, "op_x") {
			t.Fatalf("operator missing: %s", out)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok/defaults", Config{}, true},
		{"bad/absolute-below-idle", Config{IdleTimeout: time.Hour, AbsoluteTimeout: time.Minute}, false},
		{"bad/idle-too-short", Config{IdleTimeout: time.Millisecond}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("got %v", err)
			}
			if tc.ok && (tc.cfg.IdleTimeout != 15*time.Minute || tc.cfg.AbsoluteTimeout != 12*time.Hour || tc.cfg.ReauthWindow != 5*time.Minute) {
				t.Fatalf("defaults not filled: %+v", tc.cfg)
			}
		})
	}
}
