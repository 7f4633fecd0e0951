package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/gateway/ingest"
	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/gateway/webhooks"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

const merchantID = "m_aaaaaaaaaaaaaaaaaaaaaaaaaa"

// slowInspector answers every inspect after a pause, so concurrent
// submissions overlap inside the key service call as they do in production.
type slowInspector struct {
	calls atomic.Int64
	delay time.Duration
	fail  error
}

func (s *slowInspector) Inspect(ctx context.Context, req wire.InspectRequest) (wire.InspectResponse, error) {
	s.calls.Add(1)
	time.Sleep(s.delay)
	if s.fail != nil {
		return wire.InspectResponse{}, s.fail
	}
	return wire.InspectResponse{Kid: "kek-1", Brand: "visa", BIN: "42424242", Last4: "4242", ExpMonth: 12, ExpYear: 2031, Fingerprint: "fp_x"}, nil
}

type stores struct {
	name     string
	sessions interface {
		ingest.Sessions
		Create(ctx context.Context, s sessions.Session) (sessions.Session, error)
	}
	tokens tokens.Store
	// limiter is the one the submissions are limited by: on Redis, one in
	// memory (the limits and the attempt one after the other) and one on
	// the stores' own client (one script).
	limiter ratelimit.Limiter
}

func allStores(t *testing.T) []func(t *testing.T) stores {
	return []func(t *testing.T) stores{
		func(t *testing.T) stores {
			db, err := bolt.Open(filepath.Join(t.TempDir(), "gw.db"), 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			ss, err := sessions.NewBolt(db)
			if err != nil {
				t.Fatal(err)
			}
			ts, err := tokens.NewBolt(db)
			if err != nil {
				t.Fatal(err)
			}
			return stores{"bolt", ss, ts, ratelimit.NewMemory()}
		},
		func(t *testing.T) stores {
			rdb := testenv.Redis(t)
			return stores{"redis", sessions.NewRedis(rdb, "t"), tokens.NewRedis(rdb, "t"), ratelimit.NewMemory()}
		},
		func(t *testing.T) stores {
			rdb := testenv.Redis(t)
			return stores{"redis-one-script", sessions.NewRedis(rdb, "t"), tokens.NewRedis(rdb, "t"), ratelimit.NewRedis(rdb, "t:rl:")}
		},
	}
}

func newSession(t *testing.T, st stores) sessions.Session {
	t.Helper()
	cs, err := st.sessions.Create(context.Background(), sessions.Session{MerchantID: merchantID, AllowedOrigins: []string{"https://shop.example"}, MaxAttempts: 20})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func jwe(i int) string { return fmt.Sprintf("eyJhbGciOiJ4In0.k%d.iv.ct.tag", i) }

// benchJWE is jwe(i) the size of a P-256 card ciphertext (about 500
// bytes: its header carries the ephemeral key), so that the benchmarks
// store what production stores (Redis keeps a hash with a value this long
// in another encoding than a short one's).
func benchJWE(i int) string {
	return fmt.Sprintf("eyJhbGciOiJ4In0%s.k%d.iv.%s.tag", strings.Repeat("A", 270), i, strings.Repeat("B", 180))
}

// sessionTokens lists the tokens minted for a session.
func sessionTokens(t *testing.T, st stores, sessionID string) []tokens.Token {
	t.Helper()
	all, _, err := st.tokens.List(context.Background(), merchantID, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []tokens.Token
	for _, tok := range all {
		if tok.SessionID == sessionID {
			out = append(out, tok)
		}
	}
	return out
}

func noLimits() ingest.Limits {
	return ingest.Limits{
		PerIP:      ratelimit.Limit{Name: "ip", Rate: 1000, Period: time.Minute, Burst: 1000},
		PerSession: ratelimit.Limit{Name: "session", Rate: 1000, Period: time.Minute, Burst: 1000},
	}
}

// TestConcurrentSubmitsMintOneToken: ten submissions race on one session,
// with different ciphertexts and with the same one. Exactly one token exists
// afterwards, and every answer is that token or a clear refusal.
func TestConcurrentSubmitsMintOneToken(t *testing.T) {
	for _, mk := range allStores(t) {
		for _, same := range []bool{false, true} {
			st := mk(t)
			t.Run(fmt.Sprintf("%s/same-ciphertext=%v", st.name, same), func(t *testing.T) {
				cs := newSession(t, st)
				in := &slowInspector{delay: 30 * time.Millisecond}
				svc := ingest.New(st.sessions, st.tokens, in, st.limiter, noLimits(), time.Minute)
				type answer struct {
					tok tokens.Token
					err error
				}
				answers := make([]answer, 10)
				var wg sync.WaitGroup
				for i := range answers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						card := jwe(i)
						if same {
							card = jwe(0)
						}
						tok, err := svc.Submit(context.Background(), ingest.Submission{SessionID: cs.ID, CardJWE: card, ClientIP: "192.0.2.1"})
						answers[i] = answer{tok, err}
					}()
				}
				wg.Wait()
				minted := sessionTokens(t, st, cs.ID)
				if len(minted) != 1 {
					t.Fatalf("%d tokens for one session, want 1", len(minted))
				}
				for i, a := range answers {
					switch {
					case a.err == nil:
						if a.tok.ID != minted[0].ID {
							t.Errorf("answer %d: token %s, the session's is %s", i, a.tok.ID, minted[0].ID)
						}
					case errors.Is(a.err, sessions.ErrBusy), errors.Is(a.err, sessions.ErrCompleted):
					default:
						t.Errorf("answer %d: unclear refusal %v", i, a.err)
					}
				}
				got, err := st.sessions.Get(context.Background(), cs.ID)
				if err != nil || got.Token != minted[0].ID {
					t.Fatalf("session completed with %q (%v), want %s", got.Token, err, minted[0].ID)
				}
				// Idempotency: a retry of the winning ciphertext gets the same token.
				again, err := svc.Submit(context.Background(), ingest.Submission{SessionID: cs.ID, CardJWE: minted[0].JWE, ClientIP: "192.0.2.1"})
				if err != nil || again.ID != minted[0].ID {
					t.Fatalf("retry after success: %s %v", again.ID, err)
				}
				if _, err := svc.Submit(context.Background(), ingest.Submission{SessionID: cs.ID, CardJWE: jwe(99), ClientIP: "192.0.2.1"}); !errors.Is(err, sessions.ErrCompleted) {
					t.Fatalf("another card after success: %v", err)
				}
			})
		}
	}
}

// TestFailedSubmitReleasesClaim: a refused card frees the session at once,
// so the shopper's corrected card is not answered "busy".
func TestFailedSubmitReleasesClaim(t *testing.T) {
	for _, mk := range allStores(t) {
		st := mk(t)
		t.Run(st.name, func(t *testing.T) {
			cs := newSession(t, st)
			in := &slowInspector{fail: &client.Error{Status: 422, Code: "card_invalid"}}
			svc := ingest.New(st.sessions, st.tokens, in, st.limiter, noLimits(), time.Minute)
			if _, err := svc.Submit(context.Background(), ingest.Submission{SessionID: cs.ID, CardJWE: jwe(1), ClientIP: "192.0.2.1"}); err == nil {
				t.Fatal("refused card minted a token")
			}
			in.fail = nil
			if _, err := svc.Submit(context.Background(), ingest.Submission{SessionID: cs.ID, CardJWE: jwe(2), ClientIP: "192.0.2.1"}); err != nil {
				t.Fatalf("corrected card after a refusal: %v", err)
			}
		})
	}
}

// TestLimiterRefusalKeepsAttempts: a submission the per-session limiter
// refuses does not use up one of the session's attempts.
func TestLimiterRefusalKeepsAttempts(t *testing.T) {
	for _, mk := range allStores(t) {
		st := mk(t)
		t.Run(st.name, func(t *testing.T) {
			cs := newSession(t, st)
			limits := noLimits()
			limits.PerSession = ratelimit.Limit{Name: "session", Rate: 1, Period: time.Hour, Burst: 1}
			in := &slowInspector{fail: &client.Error{Status: 422, Code: "card_invalid"}}
			svc := ingest.New(st.sessions, st.tokens, in, st.limiter, limits, time.Minute)
			for i := range 5 {
				_, err := svc.Submit(context.Background(), ingest.Submission{SessionID: cs.ID, CardJWE: jwe(i), ClientIP: "192.0.2.1"})
				if i > 0 && !errors.Is(err, ingest.ErrLimited) {
					t.Fatalf("submit %d: %v, want rate limited", i, err)
				}
			}
			got, err := st.sessions.Get(context.Background(), cs.ID)
			if err != nil || got.Attempts != 1 {
				t.Fatalf("attempts %d (%v), want 1: limiter refusals were counted", got.Attempts, err)
			}
			if in.calls.Load() != 1 {
				t.Fatalf("inspect called %d times, want 1", in.calls.Load())
			}
		})
	}
}

// TestPerSessionLimit: the per-session submit limit refuses a session past
// its burst whatever address the submissions come from (it is keyed by the
// session, not the address), names itself, and leaves another session from
// the same address alone. The refused submission never reaches the key
// service.
func TestPerSessionLimit(t *testing.T) {
	for _, mk := range allStores(t) {
		st := mk(t)
		t.Run(st.name, func(t *testing.T) {
			limits := noLimits()
			limits.PerSession = ratelimit.Limit{Name: "session", Rate: 2, Period: time.Hour, Burst: 2}
			// Every card is refused by the key service, so the session stays
			// open and only the limiter can stop the next try.
			in := &slowInspector{fail: &client.Error{Status: 422, Code: "card_invalid"}}
			svc := ingest.New(st.sessions, st.tokens, in, st.limiter, limits, time.Minute)
			cs, other := newSession(t, st), newSession(t, st)
			submit := func(sessionID, ip string, i int) error {
				_, err := svc.Submit(context.Background(), ingest.Submission{SessionID: sessionID, CardJWE: jwe(i), ClientIP: ip})
				return err
			}
			for i, ip := range []string{"192.0.2.1", "192.0.2.2"} {
				if err := submit(cs.ID, ip, i); errors.Is(err, ingest.ErrLimited) {
					t.Fatalf("submit %d within the session's burst: %v", i+1, err)
				}
			}
			calls := in.calls.Load()
			var rf *ratelimit.Refused
			for i, ip := range []string{"192.0.2.1", "198.51.100.9"} {
				if err := submit(cs.ID, ip, 10+i); !errors.As(err, &rf) || rf.Limit != "session" || !errors.Is(err, ingest.ErrLimited) {
					t.Fatalf("submit from %s past the session's burst: %v, want refused by the session limit", ip, err)
				}
			}
			if n := in.calls.Load() - calls; n != 0 {
				t.Fatalf("refused submissions reached the key service %d times", n)
			}
			if err := submit(other.ID, "192.0.2.1", 20); errors.Is(err, ingest.ErrLimited) {
				t.Fatalf("another session from the same address: %v, want not limited", err)
			}
		})
	}
}

// BenchmarkSubmitRedis is the gateway's side of a checkout submit on
// Redis with the limiter on the stores' client, as in production: limits,
// attempt, token write, session completion (the key service answers at
// once); "with-audit-webhooks" adds what the production app also does per
// submit: the durable token.create record (a group-committed audit log in
// a temporary directory) and token.created's webhook emit (the merchant
// has no endpoint: what every submit pays is the look-up). Sessions are
// made before the timer starts; 32 submissions run at once (the
// published bench's saturation point). Redis is a dedicated server, so that its
// CPU per submit (redis-cpu-us/op) and the scripts it ran (scripts/op) are
// this benchmark's alone; cpu-us/op is this process's.
func BenchmarkSubmitRedis(b *testing.B) {
	srv := testenv.StartRedisServer(b)
	for _, tc := range []struct {
		name  string
		extra bool
	}{{"stores", false}, {"with-audit-webhooks", true}} {
		b.Run(tc.name, func(b *testing.B) {
			rdb := srv.Client(b)
			if err := rdb.FlushAll(context.Background()).Err(); err != nil {
				b.Fatal(err)
			}
			ss, ts := sessions.NewRedis(rdb, "b"), tokens.NewRedis(rdb, "b")
			var opts []ingest.Option
			if tc.extra {
				log, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), audit.Options{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = log.Close() })
				opts = append(opts, ingest.WithAudit(log, slog.New(slog.DiscardHandler)), ingest.WithEvents(webhooks.New(webhooks.NewRedis(rdb, "b"), webhooks.Config{})))
			}
			svc := ingest.New(ss, ts, &slowInspector{}, ratelimit.NewRedis(rdb, "b:rl:"), noLimits(), time.Minute, opts...)
			ids := make([]string, b.N)
			for i := range ids {
				cs, err := ss.Create(context.Background(), sessions.Session{MerchantID: merchantID, AllowedOrigins: []string{"https://shop.example"}})
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = cs.ID
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(submitWorkers / runtime.GOMAXPROCS(0))
			cpu, red := testenv.CPUTime(), testenv.ReadRedisStats(b, rdb)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1) - 1
					if _, err := svc.Submit(context.Background(), ingest.Submission{SessionID: ids[i], CardJWE: benchJWE(int(i)), ClientIP: fmt.Sprintf("192.0.2.%d", i%200)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			reportCost(b, cpu, red, rdb)
		})
	}
}

// BenchmarkSubmitRedisStages measures the Redis stages of a submit one at
// a time (as BenchmarkSubmitRedis: dedicated server, parallel callers):
// the limits and attempt script, the token write and completion script,
// the webhook endpoints' look-up, and token.created's queueing for a
// merchant that has an endpoint.
func BenchmarkSubmitRedisStages(b *testing.B) {
	srv := testenv.StartRedisServer(b)
	ctx := context.Background()
	// setup empties the server and makes b.N sessions when the stage uses
	// them (a fast stage's b.N is in the millions).
	setup := func(b *testing.B, withSessions bool) (*redis.Client, *sessions.Redis, *tokens.Redis, []string) {
		rdb := srv.Client(b)
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		ss, ts := sessions.NewRedis(rdb, "b"), tokens.NewRedis(rdb, "b")
		if !withSessions {
			return rdb, ss, ts, nil
		}
		ids := make([]string, b.N)
		for i := range ids {
			cs, err := ss.Create(ctx, sessions.Session{MerchantID: merchantID, AllowedOrigins: []string{"https://shop.example"}})
			if err != nil {
				b.Fatal(err)
			}
			ids[i] = cs.ID
		}
		return rdb, ss, ts, ids
	}
	run := func(b *testing.B, rdb *redis.Client, op func(i int) error) {
		var next atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(submitWorkers / runtime.GOMAXPROCS(0))
		cpu, red := testenv.CPUTime(), testenv.ReadRedisStats(b, rdb)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(int(next.Add(1) - 1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		reportCost(b, cpu, red, rdb)
	}
	b.Run("limits-attempt", func(b *testing.B) {
		rdb, ss, _, ids := setup(b, true)
		l := ratelimit.NewRedis(rdb, "b:rl:")
		limits := noLimits()
		run(b, rdb, func(i int) error {
			takes := ratelimit.Takes([]ratelimit.Step{ratelimit.CheckStep(limits.PerIP, fmt.Sprintf("192.0.2.%d", i%200)), ratelimit.CheckStep(limits.PerSession, ids[i])})
			_, _, err := ss.AttemptLimited(ctx, l, takes, ids[i], fmt.Sprintf("%064x", i))
			return err
		})
	})
	b.Run("token-completion", func(b *testing.B) {
		rdb, ss, ts, ids := setup(b, true)
		run(b, rdb, func(i int) error {
			t := tokens.Token{MerchantID: merchantID, SessionID: ids[i], JWE: benchJWE(i), Kid: "kek-1", Brand: "visa", BIN: "42424242", Last4: "4242",
				ExpMonth: 12, ExpYear: 2031, Fingerprint: "fp_x", CreatedAt: time.Now().UTC()}
			var err error
			if t.ID, err = tokens.NewID(); err != nil {
				return err
			}
			then, read, _ := ss.CompleteThen(ids[i])
			_, _, reply, err := ts.PutThen(ctx, t, "", time.Minute, fmt.Sprintf("idem-%d", i), then)
			if err != nil {
				return err
			}
			return read(reply)
		})
	})
	b.Run("webhook-endpoints", func(b *testing.B) {
		rdb, _, _, _ := setup(b, false)
		hooks := webhooks.New(webhooks.NewRedis(rdb, "b"), webhooks.Config{})
		run(b, rdb, func(int) error { return hooks.Emit(ctx, merchantID, webhooks.EventTokenCreated, nil) })
	})
	// A merchant with one endpoint: token.created is queued for it.
	b.Run("webhook-emit-one-endpoint", func(b *testing.B) {
		rdb, _, _, _ := setup(b, false)
		hooks := webhooks.New(webhooks.NewRedis(rdb, "b"), webhooks.Config{})
		if _, err := hooks.CreateEndpoint(ctx, merchantID, "https://shop.example/hooks"); err != nil {
			b.Fatal(err)
		}
		run(b, rdb, func(i int) error {
			return hooks.Emit(ctx, merchantID, webhooks.EventTokenCreated, webhooks.TokenData{Token: "tok_x", Brand: "visa", Last4: "4242", ExpMonth: 12, ExpYear: 2031})
		})
	})
}

// submitWorkers is how many submissions the benchmarks run at once (at
// least one per P).
const submitWorkers = 32

// reportCost reports the CPU of this process and of the dedicated Redis
// server per operation since cpu and red, the scripts and commands Redis
// ran per operation (a script's own commands counted) and the time it
// spent in the scripts.
func reportCost(b *testing.B, cpu time.Duration, red testenv.RedisStats, rdb *redis.Client) {
	b.Helper()
	n := float64(b.N)
	// CPU time is what a busy machine leaves alone (wall time is not).
	b.ReportMetric(float64((testenv.CPUTime()-cpu).Microseconds())/n, "cpu-us/op")
	d := testenv.ReadRedisStats(b, rdb).Since(red)
	var scripts, cmds, inScripts int64
	for name, c := range d.Commands {
		if name == "info" {
			continue
		}
		cmds += c.Calls
		if name == "evalsha" || name == "eval" {
			scripts += c.Calls
			inScripts += c.USec
		}
	}
	b.ReportMetric(float64(d.CPU.Microseconds())/n, "redis-cpu-us/op")
	b.ReportMetric(float64(scripts)/n, "scripts/op")
	// Wall time inside the scripts: the rest of Redis's CPU is its network
	// and event loop.
	b.ReportMetric(float64(inScripts)/n, "script-us/op")
	b.ReportMetric(float64(cmds)/n, "redis-cmds/op")
}
