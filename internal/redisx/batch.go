package redisx

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// batched is a single-node (or Sentinel) client whose Lua scripts from
// concurrent callers share round trips: at most two are out at once (a
// caller's own, for a lone script, or a flusher's); while both are, scripts
// join a queue, and the next free flusher sends whatever has queued as one
// pipeline. A request on the hot path (the key service's admission and
// enumeration guard, the gateway's checkout) is one or two scripts; alone,
// each costs a write and a read on both ends of the socket and a wakeup of
// Redis's event loop, which on loopback is more CPU than the script
// itself. Batched, a busy service pays those once per batch.
// Measured with `blindgate bench` (P-256 inspect at saturation), Redis
// spent 52-56 µs of CPU per inspect instead of 76-86, and the key service
// 317-346 instead of 360-380.
//
// Only scripts ride the batch (EVAL, EVALSHA and their read-only forms):
// they are what requests send, and each runs atomically on its own, so
// sharing a pipeline with another request's script changes nothing a
// script can see. Everything else, pipelines and transactions included,
// goes straight to the client as before. A lone script is sent at once,
// by its own caller: when nothing has queued and a round trip is free, the
// caller sends it as an unbatched client would, because handing it to a
// flusher and being woken by it again costs two goroutine hand-offs, which
// at low load are a thread wakeup each (BenchmarkScripts, one caller: 61
// µs of the client's CPU per script through a flusher, 28-35 sent by the
// caller, as unbatched). The batch never waits for company, it only takes
// what queued while round trips were on the wire; at most two are
// (flushers), so under load scripts queue and share them.
//
// The bound of every call is kept: a caller waits at most until its
// deadline (the hook's timeout unless its context's is sooner). A caller
// whose script queued stops waiting as soon as its context ends; one that
// sends its own waits, as for an unbatched client, until the deadline
// (go-redis watches a socket's deadline, not a context's cancellation). A
// script whose caller gave up before a flusher took it is never sent, so a
// stall does not leave a backlog of abandoned writes to replay on
// recovery; one already sent may still run, exactly as a single command
// whose reply timed out may have.
type batched struct {
	redis.UniversalClient
	b *batcher
}

// batchable reports whether New batches c's scripts: a Cluster client is
// left alone (its scripts are confined to one slot each, and the stores
// check for *redis.ClusterClient to choose their Cluster paths).
func batchable(c redis.UniversalClient) bool {
	_, ok := c.(*redis.Client)
	return ok
}

func newBatched(c redis.UniversalClient, d deadline) *batched {
	b := &batcher{
		client: c,
		bound:  d,
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
	}
	b.running.Add(flushers)
	for range flushers {
		go b.flush()
	}
	return &batched{UniversalClient: c, b: b}
}

// The Scripter methods: redis.Script.Run and every store's scripts come
// through these. The command is built by go-redis itself (a pipeline's
// typed method only records it), so its arguments are laid out exactly as
// the client would lay them out.

func (c *batched) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.b.do(ctx, c.UniversalClient.Pipeline().Eval(ctx, script, keys, args...))
}

func (c *batched) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return c.b.do(ctx, c.UniversalClient.Pipeline().EvalSha(ctx, sha1, keys, args...))
}

func (c *batched) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.b.do(ctx, c.UniversalClient.Pipeline().EvalRO(ctx, script, keys, args...))
}

func (c *batched) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return c.b.do(ctx, c.UniversalClient.Pipeline().EvalShaRO(ctx, sha1, keys, args...))
}

// Close stops the flushers, after they have sent what was queued, waits for
// the callers sending their own scripts, then closes the client.
func (c *batched) Close() error {
	c.b.close()
	return c.UniversalClient.Close()
}

// BatchStats counts a batched client's scripts and the round trips that
// carried them.
type BatchStats struct {
	Scripts, Batches uint64
}

// Batching returns c's batch counters, and false for a client that does not
// batch its scripts.
func Batching(c redis.UniversalClient) (BatchStats, bool) {
	bc, ok := c.(*batched)
	if !ok {
		return BatchStats{}, false
	}
	return BatchStats{Scripts: bc.b.scripts.Load(), Batches: bc.b.batches.Load()}, true
}

// A call's state: queued until a flusher takes it or its caller gives
// up, whichever comes first; the loser of that race leaves it alone.
const (
	queued int32 = iota
	taken
	abandoned
)

type call struct {
	cmd   *redis.Cmd
	state atomic.Int32
	done  chan struct{}
}

type batcher struct {
	client redis.UniversalClient
	bound  deadline

	mu     sync.Mutex
	queue  []*call
	closed bool

	// onWire counts the round trips out (a flusher's batch or a caller's
	// own script), at most flushers: past that, scripts queue.
	onWire int

	wake    chan struct{} // one pending wakeup is enough: a flusher takes all that queued
	quit    chan struct{}
	running sync.WaitGroup
	direct  sync.WaitGroup // callers sending their own script; Close waits for them

	scripts, batches atomic.Uint64
}

func (b *batcher) do(ctx context.Context, cmd *redis.Cmd) *redis.Cmd {
	ctx, cancel := b.bound.bound(ctx)
	defer cancel()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cmd.SetErr(redis.ErrClosed)
		return cmd
	}
	if len(b.queue) == 0 && b.onWire < flushers {
		b.onWire++
		b.direct.Add(1) // under the lock, before close can see closed
		b.mu.Unlock()
		b.sendOwn(ctx, cmd)
		return cmd
	}
	c := &call{cmd: cmd, done: make(chan struct{})}
	b.queue = append(b.queue, c)
	b.mu.Unlock()
	b.wakeFlusher()
	select {
	case <-c.done:
		return cmd
	case <-ctx.Done():
	}
	err := fmt.Errorf("redis: script not answered: %w", ctx.Err())
	if c.state.CompareAndSwap(queued, abandoned) {
		cmd.SetErr(err) // the flusher will skip it: never sent
		return cmd
	}
	// On the wire already: its reply will be written into cmd by the
	// flusher, so the caller gets a command of its own.
	out := redis.NewCmd(ctx, cmd.Args()...)
	out.SetErr(err)
	return out
}

// sendOwn sends a caller's script on a round trip of its own, from the
// caller's goroutine, within the caller's bound (the hook applies it, as
// for an unbatched client). Scripts that queued meanwhile go to a flusher.
func (b *batcher) sendOwn(ctx context.Context, cmd *redis.Cmd) {
	defer b.direct.Done()
	_ = b.client.Process(ctx, cmd) // the error is cmd's
	b.batches.Add(1)
	b.scripts.Add(1)
	b.mu.Lock()
	b.onWire--
	queued := len(b.queue) > 0
	b.mu.Unlock()
	if queued {
		b.wakeFlusher()
	}
}

func (b *batcher) wakeFlusher() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// flush sends what queued, one pipeline at a time, until close.
func (b *batcher) flush() {
	defer b.running.Done()
	var spare []*call
	for {
		select {
		case <-b.wake:
		case <-b.quit:
			// close set closed under the lock first: nothing joins the
			// queue now, and what is in it is sent.
			b.mu.Lock()
			batch := b.queue
			b.queue = nil
			b.mu.Unlock()
			b.send(batch)
			return
		}
		for {
			batch := b.take(spare)
			if len(batch) == 0 {
				spare = batch
				break
			}
			b.exec(batch)
			// The round trip is given back before its callers wake, so
			// a caller's next script can go out on it by itself.
			b.mu.Lock()
			b.onWire--
			b.mu.Unlock()
			answer(batch)
			clear(batch) // let the calls go
			spare = batch[:0]
		}
	}
}

// take swaps the queue for spare (emptied) and returns what had queued,
// unless nothing has or every round trip is out: then it returns nothing,
// and whoever brings one back sends the queue (a flusher loops, a caller
// sending its own script wakes one).
func (b *batcher) take(spare []*call) []*call {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 || b.onWire >= flushers {
		return spare[:0]
	}
	b.onWire++
	batch := b.queue
	b.queue = spare[:0]
	return batch
}

// send runs the calls its callers still wait for as one pipeline and wakes
// every caller.
func (b *batcher) send(batch []*call) {
	b.exec(batch)
	answer(batch)
}

// exec runs the calls its callers still wait for as one pipeline. The
// pipeline's deadline comes from the client's hook; each command keeps its
// own reply or error, as in any pipeline.
func (b *batcher) exec(batch []*call) {
	pipe := b.client.Pipeline()
	n := 0
	for _, c := range batch {
		if c.state.CompareAndSwap(queued, taken) {
			_ = pipe.Process(context.Background(), c.cmd)
			n++
		}
	}
	if n > 0 {
		// Exec's error is the first command's; every command holds its own.
		_, _ = pipe.Exec(context.Background())
		b.batches.Add(1)
		b.scripts.Add(uint64(n))
	}
}

// answer wakes every caller of a batch that was sent.
func answer(batch []*call) {
	for _, c := range batch {
		close(c.done)
	}
}

func (b *batcher) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.running.Wait()
		b.direct.Wait()
		return
	}
	b.closed = true
	b.mu.Unlock()
	close(b.quit)
	b.running.Wait()
	b.direct.Wait()
}

// BatchFlag is the -redis-batch flag over Config.Unbatched: a boolean
// that is true (batch) unless Unbatched is set.
func BatchFlag(unbatched *bool) flag.Value { return batchFlag{unbatched} }

type batchFlag struct{ unbatched *bool }

func (f batchFlag) String() string {
	if f.unbatched == nil {
		return "true"
	}
	return strconv.FormatBool(!*f.unbatched)
}

func (f batchFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*f.unbatched = !v
	return nil
}

func (f batchFlag) IsBoolFlag() bool { return true }

// flushers is how many round trips (a flusher's batch, or a caller's own
// script) may be on the wire at once, and how many flushers run. With one, a
// script that arrives while a batch is out waits a whole round trip before
// its own, so under a Redis slow enough that two round trips pass the
// timeout, calls would fail that alone would not. With two, a script waits
// only when both are out; the bench measured the same CPU per request
// with one and with two.
const flushers = 2
