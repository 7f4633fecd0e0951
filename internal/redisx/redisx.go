// Package redisx builds the one go-redis client type Blindgate uses,
// redis.UniversalClient, from flags: a single node, a Sentinel group (with a
// master name) or a Cluster (several addresses) all come out the same.
package redisx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/secret"
)

// Config names the Redis deployment.
type Config struct {
	Addrs       string // comma-separated host:port list
	MasterName  string // Sentinel master name; empty for single node or Cluster
	Username    string
	PasswordRef string // env:NAME or file:PATH
	DB          int
	TLS         bool
	// Timeout bounds every call to Redis, start to end: waiting for a pooled
	// connection, dialing, writing, reading and go-redis's retries all fit
	// in it. Zero means DefaultTimeout.
	Timeout time.Duration
	// Unbatched sends every script on a round trip of its own instead of
	// sharing round trips between concurrent callers (see batched); the
	// flags' -redis-batch=false. Cluster clients are never batched.
	Unbatched bool
}

// DefaultTimeout is -redis-timeout's default: a healthy Redis answers in
// well under a millisecond, and a request waiting on a sick one gets its
// 503 within a second instead of piling up.
const DefaultTimeout = time.Second

// Bounds of -redis-timeout.
const (
	MinTimeout = 10 * time.Millisecond
	MaxTimeout = 30 * time.Second
)

// Validate checks the configuration's form.
func (c Config) Validate() error {
	if strings.TrimSpace(c.Addrs) == "" {
		return errors.New("redis: addrs is empty")
	}
	if err := secret.Validate(c.PasswordRef); err != nil {
		return fmt.Errorf("redis: password: %w", err)
	}
	if c.Timeout != 0 && (c.Timeout < MinTimeout || c.Timeout > MaxTimeout) {
		return fmt.Errorf("redis: timeout must be %s-%s", MinTimeout, MaxTimeout)
	}
	return nil
}

// New returns a UniversalClient. It does not dial; callers Ping when they need to.
func New(c Config) (redis.UniversalClient, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	pw, err := secret.Resolve(c.PasswordRef)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	var addrs []string
	for _, a := range strings.Split(c.Addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	opts := &redis.UniversalOptions{
		Addrs:      addrs,
		MasterName: c.MasterName,
		Username:   c.Username,
		Password:   string(pw),
		DB:         c.DB,
		// Each step is capped by the timeout on its own, and the deadline
		// the hook puts on every call caps them together: go-redis applies
		// a context's deadline to the socket only with ContextTimeoutEnabled.
		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		// A retry after a broken pooled connection (Redis restarted) is what
		// lets the service recover without a restart of its own; one is
		// enough, and it runs within the same deadline. It is never a
		// second run of a command whose first may have run (noResend).
		MaxRetries: 1,
		// One dial per attempt: go-redis's own dial retries (five, 100 ms
		// apart) would spend the deadline on a refused port and report a
		// Redis that is down as one that is slow.
		DialerRetries: 1,
		PoolSize:      64,
	}
	if c.TLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	rdb := redis.NewUniversalClient(opts)
	rdb.AddHook(deadline(timeout))
	rdb.AddHook(noResend{})
	if !c.Unbatched && batchable(rdb) {
		return newBatched(rdb, deadline(timeout)), nil
	}
	return rdb, nil
}

// deadline is a hook that gives every command and pipeline a deadline of d
// unless its context already ends sooner. Request contexts carry no deadline
// of their own (Fiber's is context.Background), so without it a Redis that
// accepts connections and never answers would hold each request, and its
// goroutine and connection, for as long as the socket timeouts and retries
// add up to.
type deadline time.Duration

func (d deadline) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= time.Duration(d) {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, time.Duration(d))
}

func (d deadline) DialHook(next redis.DialHook) redis.DialHook { return next }

func (d deadline) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		ctx, cancel := d.bound(ctx)
		defer cancel()
		return next(ctx, cmd)
	}
}

func (d deadline) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		ctx, cancel := d.bound(ctx)
		defer cancel()
		return next(ctx, cmds)
	}
}

// noResend is a hook that keeps go-redis from sending a command a second
// time when a second run could answer differently from the first: a script,
// SET (the replay cache's claim and the nonces' SET NX), GETDEL (a nonce's
// take) and HDEL (a webhook endpoint's delete, which answers "not found" to
// its own request on a second run). go-redis retries a command, and a
// pipeline whole, when the connection fails after it was written or when
// Redis refuses it retryably (LOADING, READONLY), and a Cluster client
// retries on another node besides: the first run may have happened, and the
// caller would get the second's answer (a jti "already claimed" by its own
// first run, a 409 audited as a replay; a nonce already taken). Such a
// command fails with its connection instead, and its caller refuses (503): a
// retry is a new request. Everything else (reads, HSET, EXPIRE, ...) is the
// same on a second run and keeps go-redis's retry, and a pipeline that holds
// one of these commands is not retried at all.
type noResend struct{}

func (noResend) DialHook(next redis.DialHook) redis.DialHook { return next }

func (noResend) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if answersOnce(cmd) {
			cmd = sentOnce{cmd}
		}
		return next(ctx, cmd)
	}
}

func (noResend) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		// One marked command keeps a pipeline from being sent again on
		// one connection, but a Cluster client splits a pipeline by node
		// and resends each node's share unless that share holds a marked
		// command: every one is marked.
		var marked []redis.Cmder
		for i, cmd := range cmds {
			if answersOnce(cmd) {
				if marked == nil {
					marked = slices.Clone(cmds)
				}
				marked[i] = sentOnce{cmd}
			}
		}
		if marked == nil {
			return next(ctx, cmds)
		}
		return next(ctx, marked)
	}
}

// answersOnce reports a command whose second run may answer differently
// from its first (see noResend).
func answersOnce(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "set", "getdel", "hdel":
		return true
	}
	return false
}

// sentOnce is a command go-redis does not send again (noResend).
type sentOnce struct{ redis.Cmder }

func (sentOnce) NoRetry() bool { return true }

// Pinger adapts a client to a readiness check.
type Pinger struct {
	C redis.UniversalClient
	// Key, when set, makes Ping a write (SET Key with a short expiry)
	// instead of PING: a Redis at maxmemory with noeviction answers PING
	// but refuses every write the services need.
	Key string
}

// Ping reports whether Redis answers (and, with Key, takes a write).
func (p Pinger) Ping(ctx context.Context) error {
	if p.Key == "" {
		return p.C.Ping(ctx).Err()
	}
	return p.C.Set(ctx, p.Key, "1", 10*time.Second).Err()
}
