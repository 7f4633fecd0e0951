package redisx

import (
	"context"
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
