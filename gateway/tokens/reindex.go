package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ReindexOptions configure a Reindex pass.
type ReindexOptions struct {
	// Rate caps the tokens listed per second, so checkouts keep their
	// latency while a pass runs; 0 means no cap.
	Rate float64
	// Restart discards the position of an unfinished pass and starts over.
	Restart bool
	// Progress is called after every batch (a progress line).
	Progress func(ReindexProgress)
	// Now and Sleep are the clock (tests replace them).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// ReindexProgress is a pass as it stands, also what the store keeps so
// that a pass cut short resumes.
type ReindexProgress struct {
	// Position is the walk position of the last token listed.
	Position string `json:"position,omitempty"`
	// Merchant is the merchant of Position, whose mark waits for the walk
	// to leave it.
	Merchant string `json:"merchant,omitempty"`
	Total    int    `json:"total"`
	Seen     int    `json:"seen"`
	// Listed tokens were put in the index (again: listing is idempotent);
	// Skipped ones changed or went meanwhile, and their writers kept the
	// index.
	Listed  int `json:"listed"`
	Skipped int `json:"skipped"`
	// Merchants counts the merchants marked complete by this pass.
	Merchants int       `json:"merchants"`
	Started   time.Time `json:"started"`
	Updated   time.Time `json:"updated"`
	Finished  time.Time `json:"finished,omitzero"`
	// Resumed is set when this run took over an earlier run's pass.
	Resumed bool `json:"-"`
}

// Done reports whether the pass went through every token.
func (p ReindexProgress) Done() bool { return !p.Finished.IsZero() }

// reindexBatch is how many tokens one index write lists.
const reindexBatch = 100

// saveEvery spaces the saved positions of a pass (and a merchant's end
// saves at once).
const saveEvery = 2000

// Reindex lists every stored token in the search index and marks each
// merchant complete once the walk has gone through its tokens, so that its
// searches use the index (`blindgate tokens reindex`, once after an upgrade
// from a version without the index, when every gateway writes the index).
// It walks the store in its one fixed order and saves its position as it
// goes: a pass cut short (Ctrl-C, a crash) resumes where it stopped. Tokens
// written, deleted or rewrapped meanwhile keep the index through their own
// writes. Listing is idempotent, so a second pass, or two at once, is
// harmless.
func Reindex(ctx context.Context, s Store, o ReindexOptions) (ReindexProgress, error) {
	ix, ok := s.(indexer)
	if !ok {
		return ReindexProgress{}, errors.New("tokens: this store has no search index")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	var p ReindexProgress
	b, err := ix.reindexState(ctx)
	if err != nil {
		return p, err
	}
	if len(b) > 0 && !o.Restart {
		// A state that cannot be read starts the pass over: listing again
		// is harmless.
		if json.Unmarshal(b, &p) != nil || p.Done() || !ValidWalkPos(p.Position) {
			p = ReindexProgress{}
		} else {
			p.Resumed = true
		}
	}
	if !p.Resumed {
		total, err := s.Count(ctx)
		if err != nil {
			return p, err
		}
		now := o.Now()
		p = ReindexProgress{Total: total, Started: now, Updated: now}
	}
	r := &reindexRun{ctx: ctx, ix: ix, o: o, p: p}
	walkErr := s.Walk(ctx, p.Position, r.token)
	if walkErr == nil {
		walkErr = r.flush(ctx)
	}
	if walkErr == nil && r.p.Merchant != "" {
		walkErr = r.mark(ctx)
	}
	if walkErr == nil {
		r.p.Finished = o.Now()
	}
	// Saved whatever happened: the position is what lets the next run go on.
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.save(saveCtx); err != nil && walkErr == nil {
		walkErr = err
	}
	return r.p, walkErr
}

type reindexRun struct {
	ctx     context.Context // the pass's (Walk's callback has none)
	ix      indexer
	o       ReindexOptions
	p       ReindexProgress
	batch   []Token
	pos     []string
	next    time.Time // earliest next batch (pacing)
	unsaved int
}

func (r *reindexRun) token(t Token, pos string) error {
	if r.p.Merchant != "" && t.MerchantID != r.p.Merchant {
		// The walk left the merchant: its tokens are all listed.
		if err := r.flush(r.ctx); err != nil {
			return err
		}
		if err := r.mark(r.ctx); err != nil {
			return err
		}
	}
	r.p.Merchant = t.MerchantID
	r.batch = append(r.batch, t)
	r.pos = append(r.pos, pos)
	if len(r.batch) < reindexBatch {
		return nil
	}
	return r.flush(r.ctx)
}

// flush lists the batch, paced, and moves the position past it.
func (r *reindexRun) flush(ctx context.Context) error {
	if len(r.batch) == 0 {
		return nil
	}
	if err := r.pace(ctx, len(r.batch)); err != nil {
		return err
	}
	n, err := r.ix.indexBatch(ctx, r.batch)
	if err != nil {
		return err
	}
	r.p.Seen += len(r.batch)
	r.p.Listed += n
	r.p.Skipped += len(r.batch) - n
	r.p.Position = r.pos[len(r.pos)-1]
	r.p.Updated = r.o.Now()
	r.unsaved += len(r.batch)
	r.batch, r.pos = r.batch[:0], r.pos[:0]
	if r.o.Progress != nil {
		r.o.Progress(r.p)
	}
	if r.unsaved >= saveEvery {
		return r.save(ctx)
	}
	return nil
}

func (r *reindexRun) mark(ctx context.Context) error {
	if err := r.ix.markIndexed(ctx, r.p.Merchant); err != nil {
		return err
	}
	r.p.Merchants++
	return r.save(ctx)
}

func (r *reindexRun) save(ctx context.Context) error {
	b, err := json.Marshal(r.p)
	if err != nil {
		return err
	}
	r.unsaved = 0
	if err := r.ix.saveReindexState(ctx, b); err != nil {
		return fmt.Errorf("tokens: save reindex position: %w", err)
	}
	return nil
}

// pace spaces batches so that n tokens take n/Rate seconds.
func (r *reindexRun) pace(ctx context.Context, n int) error {
	if r.o.Rate <= 0 {
		return nil
	}
	now := r.o.Now()
	if r.next.After(now) {
		if err := r.o.Sleep(ctx, r.next.Sub(now)); err != nil {
			return err
		}
		now = r.next
	}
	r.next = now.Add(time.Duration(float64(n) * float64(time.Second) / r.o.Rate))
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
