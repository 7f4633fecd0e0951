package redisx

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/testenv"
)

// TestBatchIsNeverSentTwice: when a batch fails part-way, the scripts of it
// that Redis already ran must not run again. go-redis retries a failed
// pipeline whole (MaxRetries), so without a guard a connection lost after
// the first answers, or a retryable refusal of the first script, makes
// every script of the batch run a second time: a jti claimed twice answers
// "replayed" to the request that made it, a nonce stored twice answers
// "held", a token written twice answers "id taken" after it was stored.
// An unbatched script is retried only when its own answer is lost.
//
// The batches are built as the flusher builds them, so that which scripts
// share one is certain; "count" is a script that counts its runs.
func TestBatchIsNeverSentTwice(t *testing.T) {
	const count = `redis.call('INCR', KEYS[1]) return 1`
	for _, tc := range []struct {
		name  string
		batch func(ctx context.Context) []*redis.Cmd
		// own: the script, by index, that must keep its own answer (-1:
		// none can; the connection broke before the batch was read).
		own int
	}{
		// Redis answers CLIENT KILL of its own connection, then closes it:
		// "ran" answered, "unsent" is never read.
		{"connection-lost-after-an-answer", func(ctx context.Context) []*redis.Cmd {
			return []*redis.Cmd{
				redis.NewCmd(ctx, "eval", count, 1, "ran"),
				redis.NewCmd(ctx, "client", "kill", "type", "normal", "skipme", "no"),
				redis.NewCmd(ctx, "eval", count, 1, "unsent"),
			}
		}, -1},
		// The first script's refusal is one go-redis retries (LOADING,
		// READONLY, ...): the pipeline is sent again, and the second script,
		// which ran, runs again.
		{"first-script-refused-retryably", func(ctx context.Context) []*redis.Cmd {
			return []*redis.Cmd{
				redis.NewCmd(ctx, "eval", `return redis.error_reply('LOADING pretend')`, 0),
				redis.NewCmd(ctx, "eval", count, 1, "ran"),
			}
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testenv.StartRedisServer(t)
			rdb, err := New(Config{Addrs: srv.Addr, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			bc, ok := rdb.(*batched)
			if !ok {
				t.Fatalf("redisx.New gave %T, not a batched client", rdb)
			}
			ctx := context.Background()
			var batch []*call
			for _, cmd := range tc.batch(ctx) {
				batch = append(batch, &call{cmd: cmd, done: make(chan struct{})})
			}
			bc.b.send(batch)
			for _, c := range batch {
				select {
				case <-c.done:
				default:
					t.Fatalf("%v: caller not woken", c.cmd.Args())
				}
			}
			if tc.own >= 0 {
				if got, err := batch[tc.own].cmd.Int(); err != nil || got != 1 {
					t.Errorf("the script that ran answered %d, %v; want its own answer", got, err)
				}
			}
			check := srv.Client(t)
			if n, err := check.Get(ctx, "ran").Int(); err != nil || n != 1 {
				t.Errorf("the script that answered ran %d times (%v), want once", n, err)
			}
			if n, _ := check.Get(ctx, "unsent").Int(); n != 0 {
				t.Errorf("the script after the lost connection ran %d times, want never", n)
			}
		})
	}
}

// TestNoResendMarksWhatMayNotRunTwice: the hook marks exactly the commands
// whose second run may answer differently (scripts, SET, GETDEL), alone and
// in a pipeline, on every kind of client (a Cluster client retries on
// its own, unless a command says no). TestLostAnswerIsNotRunTwice shows
// what the mark does on a real connection.
func TestNoResendMarksWhatMayNotRunTwice(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []any
		once bool
	}{
		{[]any{"eval", "return 1", 0}, true},
		{[]any{"evalsha", "abc", 1, "k"}, true},
		{[]any{"eval_ro", "return 1", 0}, true},
		{[]any{"evalsha_ro", "abc", 0}, true},
		{[]any{"set", "jti", "1", "nx", "px", 1000}, true},
		{[]any{"SET", "k", "v"}, true},
		{[]any{"getdel", "nonce"}, true},
		{[]any{"hdel", "endpoints", "ep"}, true},
		{[]any{"get", "k"}, false},
		{[]any{"hset", "h", "f", "v"}, false},
		{[]any{"pexpire", "k", 1000}, false},
		{[]any{"ping"}, false},
	} {
		var single bool
		_ = noResend{}.ProcessHook(func(_ context.Context, cmd redis.Cmder) error {
			single = cmd.NoRetry()
			return nil
		})(ctx, redis.NewCmd(ctx, tc.args...))
		var piped bool
		_ = noResend{}.ProcessPipelineHook(func(_ context.Context, cmds []redis.Cmder) error {
			for _, c := range cmds {
				piped = piped || c.NoRetry()
			}
			return nil
		})(ctx, []redis.Cmder{redis.NewCmd(ctx, "get", "x"), redis.NewCmd(ctx, tc.args...)})
		if single != tc.once || piped != tc.once {
			t.Errorf("%v: marked alone %v, in a pipeline %v; want %v", tc.args, single, piped, tc.once)
		}
	}
}

// TestNoResendMarksEveryCommandOfAPipeline: a Cluster client splits a
// pipeline by node and resends each node's share after a broken
// connection unless that share holds a NoRetry command (go-redis
// osscluster.go, cmdsContainNoRetry per node), so marking only the first
// command of a pipeline would leave the others, on other nodes, to run
// twice. Every command that may not run twice is marked; the others are
// passed as they are.
func TestNoResendMarksEveryCommandOfAPipeline(t *testing.T) {
	ctx := context.Background()
	in := []redis.Cmder{
		redis.NewCmd(ctx, "evalsha", "abc", 1, "{a}k"),
		redis.NewCmd(ctx, "get", "{b}k"),
		redis.NewCmd(ctx, "set", "{b}jti", "1", "nx", "px", 1000),
		redis.NewCmd(ctx, "getdel", "{c}nonce"),
	}
	var got []redis.Cmder
	_ = noResend{}.ProcessPipelineHook(func(_ context.Context, cmds []redis.Cmder) error {
		got = cmds
		return nil
	})(ctx, in)
	for i, cmd := range got {
		if want := answersOnce(in[i]); cmd.NoRetry() != want {
			t.Errorf("%v in a pipeline: marked %v, want %v", cmd.Args(), cmd.NoRetry(), want)
		}
	}
	for _, cmd := range in {
		if cmd.NoRetry() {
			t.Errorf("%v: the caller's command was changed", cmd.Args())
		}
	}
}

// TestLoneScriptIsSentByItsCaller: a script that finds nothing queued and a
// round trip free goes out from its caller's goroutine, not through a
// flusher (a hand-off there and back, a thread wakeup each at low load).
// The batcher here has no flushers at all: a script handed to one would
// wait out its deadline.
func TestLoneScriptIsSentByItsCaller(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	rdb, err := New(Config{Addrs: srv.Addr, Timeout: time.Second, Unbatched: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	b := &batcher{client: rdb, bound: deadline(time.Second), wake: make(chan struct{}, 1), quit: make(chan struct{})}
	ctx := context.Background()
	for i := range 3 {
		cmd := b.do(ctx, redis.NewCmd(ctx, "eval", "return redis.call('INCR', KEYS[1])", 1, "n"))
		if got, err := cmd.Int(); err != nil || got != i+1 {
			t.Fatalf("script %d: %d, %v; want %d from its own round trip", i, got, err, i+1)
		}
	}
	if len(b.wake) != 0 {
		t.Error("a lone script woke a flusher")
	}
	if st := (BatchStats{Scripts: b.scripts.Load(), Batches: b.batches.Load()}); st != (BatchStats{Scripts: 3, Batches: 3}) {
		t.Errorf("counters %+v, want 3 scripts on 3 round trips", st)
	}
}

// TestScriptsQueueWhenRoundTripsAreOut: with two round trips out (two
// callers' own scripts, held by a stalled Redis), a third script queues
// for a flusher instead of opening a third, so under load scripts share
// round trips; and Close waits for the callers' own round trips.
func TestScriptsQueueWhenRoundTripsAreOut(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	proxy := testenv.NewFaultProxy(t, srv.Addr)
	rdb, err := New(Config{Addrs: proxy.Addr, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	bc := rdb.(*batched)
	ctx := context.Background()
	script := func(ctx context.Context, key string) *redis.Cmd {
		return bc.Eval(ctx, "return redis.call('INCR', KEYS[1])", []string{key})
	}
	if err := script(ctx, "warm").Err(); err != nil {
		t.Fatal(err)
	}
	proxy.Stall()
	own := make(chan error, 2)
	for _, k := range []string{"a", "b"} {
		go func() { own <- script(ctx, k).Err() }()
	}
	waitFor(t, "two round trips out", func() bool {
		bc.b.mu.Lock()
		defer bc.b.mu.Unlock()
		return bc.b.onWire == 2
	})
	// The third's caller gives up before a round trip comes back, so a
	// flusher has nothing to send at Close: what Close waits for is the
	// callers' own round trips.
	third := make(chan error, 1)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	go func() { third <- script(short, "c").Err() }()
	waitFor(t, "the third script queued", func() bool {
		bc.b.mu.Lock()
		defer bc.b.mu.Unlock()
		return len(bc.b.queue) == 1 && bc.b.onWire == 2
	})
	if err := <-third; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the queued script: %v, want its caller's deadline", err)
	}
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waited for the callers' own round trips: each ended by its
	// deadline, not by the client closing under it.
	for range 2 {
		var ne net.Error
		if err := <-own; !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
			t.Errorf("a caller's own script through a stalled Redis: %v, want its deadline", err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestQueuedScriptsReloadAfterFlush: scripts that queued and went out as one
// pipeline each get their own NOSCRIPT after SCRIPT FLUSH, and Script.Run
// falls back to EVAL for each (TestBatchedScriptReloadsAfterFlush covers a
// lone script, which its caller sends). Both round trips are held out by
// hand, so that every EVALSHA queues before any EVAL can load the script.
func TestQueuedScriptsReloadAfterFlush(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	rdb, err := New(Config{Addrs: srv.Addr, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	bc := rdb.(*batched)
	count := redis.NewScript(`return redis.call('INCR', KEYS[1])`)
	ctx := context.Background()
	if err := count.Load(ctx, rdb).Err(); err != nil {
		t.Fatal(err)
	}
	check := srv.Client(t)
	if err := check.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	before := errorCount(t, check, "NOSCRIPT")
	bc.b.mu.Lock()
	bc.b.onWire = flushers
	bc.b.mu.Unlock()
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() { errs <- count.Run(ctx, rdb, []string{"n"}).Err() }()
	}
	waitFor(t, "every script queued", func() bool {
		bc.b.mu.Lock()
		defer bc.b.mu.Unlock()
		return len(bc.b.queue) == n
	})
	bc.b.mu.Lock()
	bc.b.onWire = 0
	bc.b.mu.Unlock()
	bc.b.wakeFlusher()
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("a queued script after SCRIPT FLUSH: %v", err)
		}
	}
	if got := errorCount(t, check, "NOSCRIPT") - before; got != n {
		t.Errorf("%d NOSCRIPT answers, want %d: one for each EVALSHA of the pipeline", got, n)
	}
	if got, err := check.Get(ctx, "n").Int(); err != nil || got != n {
		t.Errorf("counter %d, %v; want each script run once by its EVAL (%d)", got, err, n)
	}
}

// errorCount is how many times Redis answered the error code (INFO
// errorstats).
func errorCount(t *testing.T, c *redis.Client, code string) int {
	t.Helper()
	info, err := c.Info(context.Background(), "errorstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "errorstat_"+code+":count="); ok {
			n, err := strconv.Atoi(rest)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}
