// Package readiness answers "can this service do its job now?" from a short
// list of named checks, for /readyz and for metrics. Both services build
// their list where they are wired and serve the same Report.
//
// A probe that leaves the process (Redis, the key service, a file) is run at
// most once per TTL, however often a load balancer polls, and each probe has
// its own deadline: a dependency that hangs makes its check fail with
// "timeout", it does not hold the answer. Probes that read only this
// process's memory (the seal state, the audit log's failed flag) are free and
// run on every report, so a change there shows at once.
//
// What a report says in public is a check's name and a status word from a
// fixed vocabulary; the error behind a failure is logged, once per
// transition, and never sent to the caller (readyz is unauthenticated and
// the error may name a path or an address).
package readiness

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"sort"
	"sync"
	"time"
)

// Status words of a check in a Report.
const (
	StatusOK      = "ok"
	StatusFailing = "failing" // the probe returned an error that is not a Failure
	StatusTimeout = "timeout" // the probe did not answer within Options.Timeout
)

// Defaults for Options.
const (
	DefaultTimeout = 2 * time.Second
	DefaultTTL     = time.Second
)

// Failure is a probe error that names its own status word (e.g. "sealed",
// "unreachable", "skewed"): a stable token of [a-z_], shown in the report
// instead of StatusFailing.
type Failure struct {
	Status string
	Err    error // the cause, logged but never shown; may be nil
}

// Fail returns a *Failure with status word status and cause err.
func Fail(status string, err error) error { return &Failure{Status: status, Err: err} }

func (f *Failure) Error() string {
	if f.Err == nil {
		return f.Status
	}
	return f.Status + ": " + f.Err.Error()
}

func (f *Failure) Unwrap() error { return f.Err }

// Check is one named condition.
type Check struct {
	// Name is stable: the key in the report and the metric label
	// (lower-case letters, digits and '_').
	Name string
	// Probe returns nil when the dependency can do its part, else why not.
	// It must honour ctx.
	Probe func(ctx context.Context) error
	// Local marks a probe that reads only this process's memory: it runs on
	// every report and is never cached.
	Local bool
}

// Options tune a Checker; the zero value is ready for production.
type Options struct {
	Timeout time.Duration    // per probe; default DefaultTimeout
	TTL     time.Duration    // how long remote results are reused; default DefaultTTL
	Now     func() time.Time // the cache's clock; default time.Now
	Log     *slog.Logger     // transitions; default slog.Default()
}

// Report is the answer of /readyz.
type Report struct {
	Ready bool `json:"ready"`
	// Checks maps each check's name to its status word.
	Checks map[string]string `json:"checks"`
	// Failing names the checks that are not ok, sorted; empty when ready.
	Failing []string `json:"failing"`
}

// OK reports whether the check named name passed in r.
func (r Report) OK(name string) bool { return r.Checks[name] == StatusOK }

// Checker runs the checks. It is safe for concurrent use.
type Checker struct {
	local, remote []Check
	opts          Options

	mu     sync.Mutex
	cached map[string]string // remote check name -> status, from the last run
	at     time.Time         // when cached was filled
	flight chan struct{}     // closed when the run in progress ends; nil when none
	last   map[string]bool   // per check, whether it last passed (for transition logs)
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// New returns a Checker of checks. It panics on a malformed or repeated
// name: the list is fixed at wiring time, and a bad name is a programming
// error that would otherwise reach a metric label.
func New(opts Options, checks ...Check) *Checker {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	c := &Checker{opts: opts, last: map[string]bool{}}
	seen := map[string]bool{}
	for _, ch := range checks {
		if !nameRE.MatchString(ch.Name) || seen[ch.Name] || ch.Probe == nil {
			panic("readiness: bad or repeated check " + ch.Name)
		}
		seen[ch.Name] = true
		if ch.Local {
			c.local = append(c.local, ch)
		} else {
			c.remote = append(c.remote, ch)
		}
	}
	return c
}

// Names lists the checks, sorted.
func (c *Checker) Names() []string {
	var out []string
	for _, ch := range append(append([]Check(nil), c.local...), c.remote...) {
		out = append(out, ch.Name)
	}
	sort.Strings(out)
	return out
}

// Report runs the local checks, and the remote ones unless a result younger
// than the TTL is cached. Callers arriving while a run is in progress wait
// for it instead of starting their own; one whose ctx ends first gets the
// remote checks as "timeout".
func (c *Checker) Report(ctx context.Context) Report {
	statuses := make(map[string]string, len(c.local)+len(c.remote))
	for name, st := range c.remoteStatuses(ctx) {
		statuses[name] = st
	}
	// After the remote probes: a local check may read what they just
	// learnt (the gateway's clock check reads the Date of the key-service
	// probe's answer).
	for _, ch := range c.local {
		statuses[ch.Name] = c.run(ch)
	}
	r := Report{Ready: true, Checks: statuses, Failing: []string{}}
	for name, st := range statuses {
		if st != StatusOK {
			r.Ready = false
			r.Failing = append(r.Failing, name)
		}
	}
	sort.Strings(r.Failing)
	return r
}

func (c *Checker) remoteStatuses(ctx context.Context) map[string]string {
	if len(c.remote) == 0 {
		return nil
	}
	c.mu.Lock()
	if c.cached != nil && c.opts.Now().Sub(c.at) < c.opts.TTL {
		out := c.cached
		c.mu.Unlock()
		return out
	}
	if c.flight == nil {
		c.flight = make(chan struct{})
		go c.refresh(c.flight)
	}
	f := c.flight
	c.mu.Unlock()
	select {
	case <-f:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.cached
	case <-ctx.Done():
		out := make(map[string]string, len(c.remote))
		for _, ch := range c.remote {
			out[ch.Name] = StatusTimeout
		}
		return out
	}
}

// refresh runs the remote checks in parallel, on a context of its own: a
// poller that gives up must not leave a cancelled result in the cache.
func (c *Checker) refresh(done chan struct{}) {
	out := make(map[string]string, len(c.remote))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ch := range c.remote {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := c.run(ch)
			mu.Lock()
			out[ch.Name] = st
			mu.Unlock()
		}()
	}
	wg.Wait()
	c.mu.Lock()
	c.cached, c.at, c.flight = out, c.opts.Now(), nil
	c.mu.Unlock()
	close(done)
}

// run probes one check within the timeout. A probe that ignores its context
// is abandoned at the deadline (its goroutine ends when the probe returns).
func (c *Checker) run(ch Check) string {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- ch.Probe(ctx) }()
	var err error
	select {
	case err = <-res:
	case <-ctx.Done():
		err = ctx.Err()
	}
	st := statusOf(err)
	c.transition(ch.Name, st, err)
	return st
}

func statusOf(err error) string {
	var f *Failure
	switch {
	case err == nil:
		return StatusOK
	case errors.As(err, &f) && nameRE.MatchString(f.Status):
		return f.Status
	case errors.Is(err, context.DeadlineExceeded):
		return StatusTimeout
	default:
		return StatusFailing
	}
}

// transition logs a check that changes state, once: a failing check that
// stays failing is not logged again on every poll.
func (c *Checker) transition(name, status string, err error) {
	ok := status == StatusOK
	c.mu.Lock()
	was, seen := c.last[name]
	c.last[name] = ok
	c.mu.Unlock()
	switch {
	case !ok && (!seen || was):
		c.opts.Log.Warn("readiness: check failing", "check", name, "status", status, "err", err)
	case ok && seen && !was:
		c.opts.Log.Info("readiness: check recovered", "check", name)
	}
}
