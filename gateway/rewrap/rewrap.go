// Package rewrap moves stored card ciphertexts to the newest KEK and brings
// their masked fields (brand, BIN, last 4, fingerprint) up to date. The key
// service re-encrypts and recomputes without ever returning the card; the
// gateway swaps the ciphertext and fields only if the token is still under
// the version and fingerprint it read (compare-and-set), so a concurrent or
// repeated job is harmless.
//
// A pass walks the token store in one fixed order and keeps its position
// (State) as it goes, so a pass cut short (a crash, a deploy, Ctrl-C) resumes
// where it stopped: no token is sent to the key service twice and none is
// skipped. It paces its calls to the key service (Job.Rate) and waits when
// the key service says it is busy, so checkouts keep their latency while it
// runs.
//
// Scopes: every token under one version (`blindgate rewrap -kid`, after a
// rotation and before `keyservice keys retire`), every token (-all, after a
// change of fingerprint scheme or truncation: masked fields recomputed), or
// every token not under a version the key service publishes (the gateway's
// background job, Background).
package rewrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Rewrapper is the key service's signed rewrap.
type Rewrapper interface {
	Rewrap(ctx context.Context, req wire.RewrapRequest) (wire.RewrapResponse, error)
}

// Store is the part of the token store the job needs.
type Store interface {
	Walk(ctx context.Context, after string, fn func(tokens.Token, string) error) error
	Count(ctx context.Context) (int, error)
	UpdateCiphertext(ctx context.Context, id, oldKid, oldFingerprint string, u tokens.Rewrapped) error
}

// Result counts what a pass did to the tokens in its scope.
type Result struct {
	Moved     int `json:"moved"`     // ciphertexts now under the newest KEK
	Refreshed int `json:"refreshed"` // masked fields changed, ciphertext already under the newest KEK
	Unchanged int `json:"unchanged"` // already up to date
	Skipped   int `json:"skipped"`   // changed or deleted meanwhile (someone else moved them)
	Failed    int `json:"failed"`    // the key service refused; the token keeps its old ciphertext and fields
}

// Outcome is what became of one token.
type Outcome string

// Outcomes; OutOfScope tokens were only counted (not sent anywhere).
const (
	Moved      Outcome = "moved"
	Refreshed  Outcome = "refreshed"
	Unchanged  Outcome = "unchanged"
	Skipped    Outcome = "skipped"
	Failed     Outcome = "failed"
	OutOfScope Outcome = "out_of_scope"
)

func (r *Result) add(o Outcome) {
	switch o {
	case Moved:
		r.Moved++
	case Refreshed:
		r.Refreshed++
	case Unchanged:
		r.Unchanged++
	case Skipped:
		r.Skipped++
	case Failed:
		r.Failed++
	}
}

// Scope says which tokens a pass sends to the key service. Exactly one of
// Kid, All and Current is set.
type Scope struct {
	// Kid: the tokens under this version.
	Kid string
	// All: every token, with its masked fields recomputed (refresh).
	All bool
	// Current: every token whose version is not one of these (the
	// versions the key service publishes).
	Current []string
}

// Name identifies the scope's pass in the state store: a pass resumes only
// a pass of the same name.
func (s Scope) Name() string {
	switch {
	case s.All:
		return "all"
	case s.Kid != "":
		return "kid:" + s.Kid
	default:
		return "current"
	}
}

// target is what a pass of this scope aims at: a resumed pass must aim at
// the same (Current changes with every rotation).
func (s Scope) target() string {
	c := slices.Clone(s.Current)
	slices.Sort(c)
	return strings.Join(c, ",")
}

func (s Scope) validate() error {
	n := 0
	if s.Kid != "" {
		n++
	}
	if s.All {
		n++
	}
	if len(s.Current) > 0 {
		n++
	}
	if n != 1 {
		return errors.New("rewrap: a scope is one of a kid, all tokens, or the current versions")
	}
	return nil
}

func (s Scope) wants(t tokens.Token) bool {
	switch {
	case s.All:
		return true
	case s.Kid != "":
		return t.Kid == s.Kid
	default:
		return !slices.Contains(s.Current, t.Kid)
	}
}

// Progress is a pass as it stands, also what is persisted (State).
type Progress struct {
	Scope  string `json:"scope"`
	Target string `json:"target,omitempty"`
	// Cursor is the walk position of the last token finished.
	Cursor string `json:"cursor,omitempty"`
	// Total is the number of tokens when the pass started; Seen those the
	// walk has passed (in scope or not).
	Total int `json:"total"`
	Seen  int `json:"seen"`
	Result
	// ByKid counts the tokens seen, under the version each is under once
	// the pass is done with it: after a finished pass, how many tokens
	// still reference each KEK version.
	ByKid map[string]int `json:"by_kid"`
	// TargetSince is when the background job first saw this target (the
	// rotation reaching the gateway); zero when no change was seen.
	TargetSince time.Time `json:"target_since,omitzero"`
	Started     time.Time `json:"started"`
	Updated     time.Time `json:"updated"`
	Finished    time.Time `json:"finished,omitzero"`
	// Resumed is set when this run took the pass over from an earlier one.
	Resumed bool `json:"-"`
	// Last is the outcome of the token just finished (for Job.Progress).
	Last Outcome `json:"-"`
}

// Done reports whether the pass went through every token.
func (p Progress) Done() bool { return !p.Finished.IsZero() }

// Ratio is the share of the tokens the walk has passed, 0-1.
func (p Progress) Ratio() float64 {
	switch {
	case p.Done():
		return 1
	case p.Total <= 0:
		return 0
	}
	return min(1, float64(p.Seen)/float64(p.Total))
}

// State keeps passes across restarts, by scope name. It lives beside the
// tokens (Redis or bbolt), so any gateway replica, and `blindgate rewrap`,
// can take a pass over.
type State interface {
	Load(ctx context.Context, name string) (Progress, bool, error)
	Save(ctx context.Context, name string, p Progress) error
}

// Job runs passes.
type Job struct {
	Store Store
	KS    Rewrapper
	State State
	// Rate caps calls to the key service per second; 0 means no cap.
	Rate float64
	// KeepAlive is called whenever the position is saved; an error stops
	// the pass (a lease lost to another replica). nil: nothing to keep.
	KeepAlive func(context.Context) error
	// Progress is called after every token (a progress bar, metrics).
	Progress func(Progress)
	Log      *slog.Logger
	// Now and Sleep are the clock (tests replace them).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// LogEvery spaces progress log lines; 30 s when 0.
	LogEvery time.Duration
}

// storeTimeout bounds the store write that finishes a token once the key
// service has answered, which runs even when the pass is being stopped.
const storeTimeout = 10 * time.Second

// maxBackoff caps the wait after the key service said it is busy.
const maxBackoff = time.Minute

// Run runs a pass of scope, taking over an unfinished pass of the same
// scope and target from the state store, until every token is done (the
// returned Progress is Done) or ctx ends (the position is saved; the error
// is ctx's). A key-service outage stops the pass with its position saved:
// nothing is lost, the tokens left keep decrypting under their version
// until it is retired. fresh discards a saved position and starts over.
func (j *Job) Run(ctx context.Context, scope Scope, fresh bool) (Progress, error) {
	if err := scope.validate(); err != nil {
		return Progress{}, err
	}
	j.defaults()
	name := scope.Name()
	p, found, err := j.State.Load(ctx, name)
	switch {
	case errors.Is(err, errCorruptState):
		j.Log.Warn("rewrap: the saved position cannot be read; starting the pass over", "scope", name, "err", err)
		found = false
	case err != nil:
		return Progress{}, fmt.Errorf("rewrap: load state: %w", err)
	}
	switch {
	case found && !fresh && !p.Done() && p.Target == scope.target() && tokens.ValidWalkPos(p.Cursor):
		p.Resumed = true
		j.Log.Info("rewrap: resuming an interrupted pass", "scope", name, "seen", p.Seen, "total", p.Total, "started", p.Started)
	default:
		total, err := j.Store.Count(ctx)
		if err != nil {
			return Progress{}, fmt.Errorf("rewrap: count: %w", err)
		}
		now := j.Now()
		since := time.Time{}
		switch {
		case found && p.Target == scope.target():
			since = p.TargetSince
		case found:
			since = now
		}
		p = Progress{Scope: name, Target: scope.target(), TargetSince: since, Total: total, ByKid: map[string]int{}, Started: now, Updated: now}
		j.Log.Info("rewrap: pass started", "scope", name, "total", total)
	}
	if p.ByKid == nil {
		p.ByKid = map[string]int{}
	}
	r := run{Job: j, ctx: ctx, scope: scope, name: name, p: p, lastLog: j.Now()}
	walkErr := j.Store.Walk(ctx, p.Cursor, r.token)
	if walkErr == nil {
		r.p.Finished = j.Now()
	}
	// Saved whatever happened, even as ctx ends: the position is what lets
	// the next run go on from here.
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := r.save(saveCtx); err != nil && walkErr == nil {
		walkErr = err
	}
	if walkErr != nil {
		j.Log.Warn("rewrap: pass stopped; the next run resumes it", "scope", name, "seen", r.p.Seen, "total", r.p.Total, "err", walkErr)
		return r.p, walkErr
	}
	j.Log.Info("rewrap: pass finished", "scope", name, "seen", r.p.Seen, "moved", r.p.Moved, "refreshed", r.p.Refreshed,
		"unchanged", r.p.Unchanged, "skipped", r.p.Skipped, "failed", r.p.Failed, "by_kid", r.p.ByKid, "took", r.p.Finished.Sub(r.p.Started))
	return r.p, nil
}

func (j *Job) defaults() {
	if j.Log == nil {
		j.Log = slog.New(slog.DiscardHandler)
	}
	if j.Now == nil {
		j.Now = time.Now
	}
	if j.Sleep == nil {
		j.Sleep = sleep
	}
	if j.LogEvery <= 0 {
		j.LogEvery = 30 * time.Second
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// run is one Run in progress.
type run struct {
	*Job
	ctx     context.Context // the pass's; a run lives for one call of Run
	scope   Scope
	name    string
	p       Progress
	next    time.Time // earliest next call to the key service
	unsaved int       // tokens finished since the last save
	lastLog time.Time
}

// token handles one token of the walk. A token is finished (and its
// position taken) only once the store holds its outcome.
func (r *run) token(t tokens.Token, pos string) error {
	// Stop between tokens, never half way through one.
	if err := r.ctx.Err(); err != nil {
		return err
	}
	out, kid := OutOfScope, t.Kid
	if r.scope.wants(t) {
		var err error
		if out, kid, err = r.one(t); err != nil {
			return err
		}
	}
	r.p.Seen++
	r.p.Cursor = pos
	r.p.ByKid[kid]++
	r.p.Result.add(out)
	r.p.Last = out
	r.unsaved++
	if r.Progress != nil {
		r.Progress(r.p)
	}
	// The position is saved after every token that reached the key
	// service, so a crash repeats at most the one in flight, and at least
	// every batch otherwise.
	if out != OutOfScope || r.unsaved >= 100 {
		if err := r.save(r.ctx); err != nil {
			return err
		}
	}
	if now := r.Now(); now.Sub(r.lastLog) >= r.LogEvery {
		r.lastLog = now
		r.Log.Info("rewrap: progress", "scope", r.name, "seen", r.p.Seen, "total", r.p.Total, "percent", int(100*r.p.Ratio()),
			"moved", r.p.Moved, "refreshed", r.p.Refreshed, "failed", r.p.Failed)
	}
	return nil
}

func (r *run) save(ctx context.Context) error {
	r.p.Updated = r.Now()
	if err := r.State.Save(ctx, r.name, r.p); err != nil {
		return fmt.Errorf("rewrap: save state: %w", err)
	}
	r.unsaved = 0
	if r.KeepAlive != nil && !r.p.Done() {
		if err := r.KeepAlive(ctx); err != nil {
			return fmt.Errorf("rewrap: %w", err)
		}
	}
	return nil
}

// one moves (and with refresh, re-masks) one token, and returns its outcome
// and the version it is under afterwards. A refresh is guarded by the key
// service like an inspect, so a merchant with many cards sharing a first 6
// and last 4 may see some refused with card_enumeration: they count as
// failed and a later run picks them up once the window has slid.
func (r *run) one(t tokens.Token) (Outcome, string, error) {
	ctx := r.ctx
	// The binding goes along so the key service can bind the new
	// ciphertext; a token without one gets one only while the key service
	// runs with -bind-legacy.
	req := wire.RewrapRequest{JWE: t.JWE, Merchant: t.MerchantID, Token: t.ID, Refresh: r.scope.All, Binding: t.Binding}
	var (
		out     wire.RewrapResponse
		err     error
		backoff = time.Second
	)
	for {
		if err := r.pace(ctx); err != nil {
			return "", "", err
		}
		out, err = r.KS.Rewrap(ctx, req)
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Code != apierr.RateLimited.Code {
			break
		}
		// The key service is busy: give way to the checkouts, then retry
		// the same token.
		wait := max(ce.RetryAfter, backoff)
		backoff = min(2*backoff, maxBackoff)
		r.Log.Debug("rewrap: key service busy, waiting", "wait", wait)
		if err := r.Sleep(ctx, min(wait, maxBackoff)); err != nil {
			return "", "", err
		}
	}
	var ce *client.Error
	switch {
	case errors.As(err, &ce) && ((ce.Status < 500 && ce.Status != 429) || ce.Code == apierr.CardEnumeration.Code):
		return Failed, t.Kid, nil
	case err != nil:
		return "", "", fmt.Errorf("rewrap %s: %w", t.ID, err)
	}
	u := tokens.Rewrapped{JWE: out.JWE, Kid: out.Kid, Brand: out.Brand, BIN: out.BIN, Last4: out.Last4, Fingerprint: out.Fingerprint, Binding: out.Binding}
	if u.Binding == "" && out.JWE == t.JWE {
		u.Binding = t.Binding // the same ciphertext keeps its binding
	}
	moved := out.Kid != t.Kid
	if !moved && u.Binding == t.Binding && (!r.scope.All || out.Brand == t.Brand && out.BIN == t.BIN && out.Last4 == t.Last4 && out.Fingerprint == t.Fingerprint) {
		return Unchanged, t.Kid, nil
	}
	// The key service has done its part: the store write finishes the
	// token even if the pass is being stopped, or the work is lost and a
	// resumed pass would ask again.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	switch err := r.Store.UpdateCiphertext(sctx, t.ID, t.Kid, t.Fingerprint, u); {
	case errors.Is(err, tokens.ErrConflict), errors.Is(err, tokens.ErrNotFound):
		return Skipped, t.Kid, nil
	case err != nil:
		return "", "", fmt.Errorf("store %s: %w", t.ID, err)
	case moved:
		return Moved, out.Kid, nil
	default:
		return Refreshed, out.Kid, nil
	}
}

// pace spaces calls to the key service 1/Rate apart.
func (r *run) pace(ctx context.Context) error {
	if r.Rate <= 0 {
		return nil
	}
	now := r.Now()
	if r.next.After(now) {
		if err := r.Sleep(ctx, r.next.Sub(now)); err != nil {
			return err
		}
		now = r.next
	}
	r.next = now.Add(time.Duration(float64(time.Second) / r.Rate))
	return nil
}

// Run is a pass over the tokens under oldKid without pacing or saved
// position (a pass that stops starts over), for callers that have no state
// store.
func Run(ctx context.Context, st Store, ks Rewrapper, oldKid string) (Result, error) {
	j := &Job{Store: st, KS: ks, State: NewMemoryState()}
	p, err := j.Run(ctx, Scope{Kid: oldKid}, true)
	return p.Result, err
}

// RunAll is Run over every token, with masked fields recomputed: they
// change without a key rotation (merchant-scoped fingerprints, 6+4
// truncation), and only the key service can recompute them.
func RunAll(ctx context.Context, st Store, ks Rewrapper) (Result, error) {
	j := &Job{Store: st, KS: ks, State: NewMemoryState()}
	p, err := j.Run(ctx, Scope{All: true}, true)
	return p.Result, err
}

// CountByKid walks every token and counts them by KEK version: what
// `keyservice keys retire` needs to know before it retires one.
func CountByKid(ctx context.Context, st Store) (map[string]int, int, error) {
	counts := map[string]int{}
	total := 0
	err := st.Walk(ctx, tokens.WalkStart, func(t tokens.Token, _ string) error {
		counts[t.Kid]++
		total++
		return nil
	})
	return counts, total, err
}

// Kids lists the versions of a count, sorted.
func Kids(counts map[string]int) []string { return slices.Sorted(maps.Keys(counts)) }
