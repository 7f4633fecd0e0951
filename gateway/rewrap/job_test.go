package rewrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/unwrap"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// counting counts the key service's rewraps per token and can stop the
// pass from inside the n-th one, as a SIGTERM arriving while the key
// service works would.
type counting struct {
	Rewrapper
	mu     sync.Mutex
	calls  map[string]int
	total  int
	stopAt int
	stop   context.CancelFunc
}

func (c *counting) Rewrap(ctx context.Context, req wire.RewrapRequest) (wire.RewrapResponse, error) {
	out, err := c.Rewrapper.Rewrap(ctx, req)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[req.Token]++
	c.total++
	if c.total == c.stopAt && c.stop != nil {
		c.stop()
	}
	return out, err
}

type storeKind struct {
	name  string
	open  func(t *testing.T) (Store, State)
	redis bool
}

func boltStores(t *testing.T) (Store, State) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	st, err := tokens.NewBolt(db)
	if err != nil {
		t.Fatal(err)
	}
	state, err := NewBoltState(db)
	if err != nil {
		t.Fatal(err)
	}
	return st, state
}

func redisStores(t *testing.T) (Store, State) {
	t.Helper()
	rdb := testenv.Redis(t)
	return tokens.NewRedis(rdb, "bg"), NewRedisState(rdb, "")
}

var storeKinds = []storeKind{{"bolt", boltStores, false}, {"redis", redisStores, true}}

// keyZone is the real key-service domain in process, with a keyring to
// rotate.
func keyZone(t *testing.T) (*keyring.Keyring, Rewrapper) {
	t.Helper()
	kr, err := keyring.New(keyring.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(filepath.Join(t.TempDir(), "a.log"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = al.Close() })
	svc := unwrap.New(keys{kr}, al, ratelimit.NewMemory(), slog.New(slog.NewTextHandler(io.Discard, nil)), unwrap.Config{})
	return kr, inProcess{svc}
}

// putCards stores n real card ciphertexts under the keyring's newest
// version, spread over three merchants.
func putCards(t *testing.T, st Store, kr *keyring.Keyring, n int) []string {
	t.Helper()
	put := st.(tokens.Store)
	pub := kr.PublicKeys()[0]
	var ids []string
	for i := range n {
		pt := fmt.Sprintf(`{"pan":"4242424242424242","exp_month":1,"exp_year":2031,"name":"","iat":%d}`, time.Now().Unix())
		jwe, err := jose.Encrypt([]byte(pt), pub.Key, pub.Kid, map[string]string{jose.HeaderSessionID: "cs_1"})
		if err != nil {
			t.Fatal(err)
		}
		m := fmt.Sprintf("m_merchant%d", i%3)
		tok, _, err := put.Put(context.Background(), tokens.Token{MerchantID: m, JWE: string(jwe), Kid: pub.Kid, Brand: "visa", BIN: "424242", Last4: "4242", ExpMonth: 1, ExpYear: 2031, Fingerprint: "fp_x"}, "", 0, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tok.ID)
	}
	return ids
}

// TestResumeAfterKill: a pass stopped half way (its context cancelled
// while the key service works on a token) saves its position; a new job
// (a restarted process) resumes it and finishes, and every token in scope
// went to the key service exactly once: none twice, none skipped.
func TestResumeAfterKill(t *testing.T) {
	for _, sk := range storeKinds {
		for _, all := range []bool{false, true} {
			name := sk.name + "/kid"
			if all {
				name = sk.name + "/all"
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				st, state := sk.open(t)
				kr, ks := keyZone(t)
				oldKid := kr.Newest().Kid
				old := putCards(t, st, kr, 25)
				newest, err := kr.Rotate("")
				if err != nil {
					t.Fatal(err)
				}
				current := putCards(t, st, kr, 4) // already under the newest: out of a -kid scope
				scope := Scope{Kid: oldKid}
				inScope := old
				if all {
					scope, inScope = Scope{All: true}, append(append([]string{}, old...), current...)
				}

				runCtx, kill := context.WithCancel(ctx)
				c := &counting{Rewrapper: ks, calls: map[string]int{}, stopAt: 11, stop: kill}
				first := &Job{Store: st, KS: c, State: state}
				p, err := first.Run(runCtx, scope, false)
				if !errors.Is(err, context.Canceled) || p.Done() || c.total != 11 {
					t.Fatalf("first run: %d calls, done=%v, err=%v; want 11 calls and a stop", c.total, p.Done(), err)
				}
				saved, ok, err := state.Load(ctx, scope.Name())
				if err != nil || !ok || saved.Done() || saved.Moved+saved.Refreshed != 11 || saved.Cursor == "" {
					t.Fatalf("saved state %+v ok=%v err=%v", saved, ok, err)
				}

				second := &Job{Store: st, KS: c, State: state}
				p, err = second.Run(ctx, scope, false)
				if err != nil || !p.Done() || !p.Resumed {
					t.Fatalf("resumed run: done=%v resumed=%v err=%v", p.Done(), p.Resumed, err)
				}
				for _, id := range inScope {
					if c.calls[id] != 1 {
						t.Errorf("token %s sent to the key service %d times", id, c.calls[id])
					}
				}
				if c.total != len(inScope) {
					t.Errorf("%d calls for %d tokens in scope", c.total, len(inScope))
				}
				if p.Moved != len(old) || p.Seen != len(old)+len(current) || p.ByKid[newest.Kid] != len(old)+len(current) || p.ByKid[oldKid] != 0 {
					t.Errorf("final progress %+v", p)
				}
				for _, id := range old {
					tok, err := st.(tokens.Store).Lookup(ctx, id)
					if err != nil || tok.Kid != newest.Kid {
						t.Errorf("token %s under %s after the pass (%v)", id, tok.Kid, err)
					}
				}
				// Once finished, the next run is a new pass from the start.
				c2 := &counting{Rewrapper: ks, calls: map[string]int{}}
				p, err = (&Job{Store: st, KS: c2, State: state}).Run(ctx, scope, false)
				if err != nil || p.Resumed || p.Seen != len(old)+len(current) || p.Moved != 0 {
					t.Errorf("next pass: %+v %v", p, err)
				}
			})
		}
	}
}

// fakeKS moves a token to kid "kek-new" without cryptography, and answers
// the first `busy` calls with 429 rate_limited.
type fakeKS struct {
	busy       int
	retryAfter time.Duration
	calls      int
}

func (f *fakeKS) Rewrap(_ context.Context, req wire.RewrapRequest) (wire.RewrapResponse, error) {
	f.calls++
	if f.busy > 0 {
		f.busy--
		return wire.RewrapResponse{}, &client.Error{Status: 429, Code: apierr.RateLimited.Code, RetryAfter: f.retryAfter}
	}
	return wire.RewrapResponse{JWE: fakeJWE("moved" + req.Token), Kid: "kek-new"}, nil
}

func fakeJWE(tag string) string {
	return "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIsImVuYyI6IkEyNTZHQ00ifQ.ZW5jcnlwdGVkLWtleQ.aXYtaXYtaXY." + tag + ".dGFn"
}

func putFake(t *testing.T, st Store, kid string, n int) {
	t.Helper()
	for i := range n {
		tok := tokens.Token{MerchantID: "m_fake", JWE: fakeJWE(fmt.Sprintf("c%d", i)), Kid: kid, Brand: "visa", BIN: "424242", Last4: "4242", ExpMonth: 1, ExpYear: 2031}
		if _, _, err := st.(tokens.Store).Put(context.Background(), tok, "", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeTime is a clock whose Sleep advances it and keeps the total.
type fakeTime struct {
	now   time.Time
	slept time.Duration
}

func (f *fakeTime) Now() time.Time { return f.now }
func (f *fakeTime) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.now, f.slept = f.now.Add(d), f.slept+d
	return nil
}

// TestPacing: calls to the key service are spaced 1/Rate apart, and a
// busy key service (429) is given the time it asks for, then the same
// token is retried, not counted as failed.
func TestPacing(t *testing.T) {
	cases := []struct {
		name       string
		rate       float64
		busy       int
		retryAfter time.Duration
		wantSlept  time.Duration
		wantCalls  int
	}{
		{"paced/5-per-second", 5, 0, 0, 9 * 200 * time.Millisecond, 10},
		{"unpaced/rate-0", 0, 0, 0, 0, 10},
		// Busy twice: waits max(Retry-After, backoff 1 s then 2 s).
		{"busy/waits-and-retries", 0, 2, 3 * time.Second, 3*time.Second + 3*time.Second, 12},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, state := boltStores(t)
			putFake(t, st, "kek-old", 10)
			clock := &fakeTime{now: time.Unix(1_000_000, 0)}
			ks := &fakeKS{busy: tc.busy, retryAfter: tc.retryAfter}
			j := &Job{Store: st, KS: ks, State: state, Rate: tc.rate, Now: clock.Now, Sleep: clock.Sleep}
			p, err := j.Run(context.Background(), Scope{Kid: "kek-old"}, false)
			if err != nil || p.Moved != 10 || p.Failed != 0 {
				t.Fatalf("pass: %+v %v", p.Result, err)
			}
			if clock.slept != tc.wantSlept || ks.calls != tc.wantCalls {
				t.Fatalf("slept %s over %d calls, want %s over %d", clock.slept, ks.calls, tc.wantSlept, tc.wantCalls)
			}
		})
	}
}

// heldElsewhere is a Leaser whose lease another replica holds.
type heldElsewhere struct{}

func (heldElsewhere) TryLease(context.Context) (Lease, error) { return nil, nil }

// TestBackground: a pass runs when the published versions change and once
// more when the retire grace has passed, resumes when one was cut short,
// runs again after Interval, not otherwise, and not while another replica
// holds the lease; its counts by version reach the metrics.
func TestBackground(t *testing.T) {
	ctx := context.Background()
	st, state := boltStores(t)
	putFake(t, st, "kek-old", 6)
	clock := &fakeTime{now: time.Unix(1_000_000, 0)}
	ks := &fakeKS{}
	published := []string{"kek-old"}
	reg := prometheus.NewRegistry()
	b := &Background{
		Job:      &Job{Store: st, KS: ks, State: state, Now: clock.Now, Sleep: clock.Sleep},
		Kids:     func(context.Context) ([]string, error) { return published, nil },
		Interval: 24 * time.Hour,
		Metrics:  NewMetrics(reg),
	}
	check := func(wantRan bool, wantCalls int) Progress {
		t.Helper()
		p, ran, err := b.Check(ctx)
		if err != nil || ran != wantRan || ks.calls != wantCalls {
			t.Fatalf("Check: ran=%v calls=%d err=%v; want ran=%v calls=%d", ran, ks.calls, err, wantRan, wantCalls)
		}
		return p
	}
	check(true, 0) // first pass: everything is under a published version
	if got, _ := metric(t, reg, "blindgate_gateway_tokens", "kid", "kek-old"); got != 6 {
		t.Fatalf("tokens{kid=kek-old} = %v, want 6", got)
	}
	clock.now = clock.now.Add(time.Hour)
	check(false, 0) // nothing changed

	published = []string{"kek-new"} // a rotation reached the JWKS
	b.Leaser = heldElsewhere{}
	check(false, 0)
	b.Leaser = nil
	p := check(true, 6)
	byNew, series := metric(t, reg, "blindgate_gateway_tokens", "kid", "kek-new")
	moved, _ := metric(t, reg, "blindgate_gateway_rewrap_tokens_total", "result", "moved")
	ratio, _ := metric(t, reg, "blindgate_gateway_rewrap_progress_ratio", "", "")
	if p.Moved != 6 || byNew != 6 || series != 1 || moved != 6 || ratio != 1 {
		t.Fatalf("after the rotation's pass: %+v; tokens{kek-new}=%v over %d series, moved=%v, ratio=%v", p.Result, byNew, series, moved, ratio)
	}

	// Pages that still had kek-old's public key made two more tokens; the
	// follow-up pass at the end of the grace moves them.
	putFake(t, st, "kek-old", 2)
	clock.now = clock.now.Add(wire.RetireGrace - time.Minute)
	check(false, 6)
	clock.now = clock.now.Add(time.Minute)
	if p := check(true, 8); p.Moved != 2 || p.ByKid["kek-old"] != 0 {
		t.Fatalf("follow-up pass: %+v by kid %v", p.Result, p.ByKid)
	}
	clock.now = clock.now.Add(time.Hour)
	check(false, 8) // no second follow-up

	clock.now = clock.now.Add(22 * time.Hour)
	check(false, 8)
	clock.now = clock.now.Add(time.Hour)
	check(true, 8) // the daily pass: counts refreshed, nothing to send

	// A pass cut short is taken over at the next check.
	putFake(t, st, "kek-old", 4)
	published = []string{"kek-newer"} // the fake moves to kek-new: 12 tokens to send
	cctx, cancel := context.WithCancel(ctx)
	b.Job.KS = &counting{Rewrapper: ks, calls: map[string]int{}, stopAt: 3, stop: cancel}
	if _, ran, err := b.Check(cctx); !ran || !errors.Is(err, context.Canceled) {
		t.Fatalf("cut-short check: ran=%v err=%v", ran, err)
	}
	b.Job.KS = ks
	p = check(true, 8+12)
	if !p.Resumed || p.Moved+p.Unchanged != 12 || p.Moved != 4 {
		t.Fatalf("resumed background pass: %+v resumed=%v", p.Result, p.Resumed)
	}
}

// metric reads one series of a gathered metric (label "" for none) and
// how many series the metric has.
func metric(t *testing.T, reg *prometheus.Registry, name, label, value string) (float64, int) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if match {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue(), len(mf.GetMetric())
			}
		}
		return 0, len(mf.GetMetric())
	}
	return 0, 0
}
