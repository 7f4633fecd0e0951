// Package audit is the tamper-evident audit trail shared by the key service
// and the gateway: an append-only file of JSON lines, each an Event chained
// to the one before by a SHA-256 hash (see Verify for what that does and does
// not prove).
//
// Append is durable: it returns only after the event's line is written and
// fsynced. Concurrent appends are group-committed by a single writer
// goroutine (one write and one fsync per batch), so durability costs one
// fsync per batch rather than one per request. The log fails closed: after
// any write or sync error every Append returns ErrUnavailable until the
// process reopens the file, and a caller must not perform an audited action
// (a reveal, say) whose Append failed.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnavailable is returned by Append once the log has failed (a write or
// fsync error): the event may not be on disk, so the audited action must not
// happen. The log stays failed until reopened.
var ErrUnavailable = errors.New("audit: log unavailable")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit: log closed")

// ErrLocked is returned by Open when another Log (in this or another
// process) has the file open: two writers would fork the chain.
var ErrLocked = errors.New("audit: log file is in use by another writer")

// File is what the writer needs from the log file.
type File interface {
	io.Writer
	Sync() error
}

// Options tune a Log. The zero value is ready for production.
type Options struct {
	// Now stamps events whose Time is zero; default time.Now.
	Now func() time.Time
	// MaxBatch caps how many appends share one write and fsync; default 1024.
	MaxBatch int
	// Logger reports the log failing; default slog.Default().
	Logger *slog.Logger
	// WrapFile, when set, wraps the opened file before the writer uses it.
	// It exists for fault injection in tests (a failing write or fsync, a
	// slow disk); production leaves it nil.
	WrapFile func(File) File
	// SpoolInterval is how often the admin spool beside the log (see
	// SpoolDir) is folded into the chain; default 1s, negative: only at Open.
	SpoolInterval time.Duration
}

// Stats are counters for tests and metrics.
type Stats struct {
	Appends      uint64 // events durably committed since Open
	Batches      uint64 // batches the writer attempted
	Syncs        uint64 // successful fsyncs (one per committed batch)
	LargestBatch int    // most events committed by one fsync
	Failed       bool   // the log refuses appends until reopened
}

// Log is an open audit log. It is safe for concurrent use.
type Log struct {
	path     string
	f        *os.File
	w        File
	now      func() time.Time
	log      *slog.Logger
	maxBatch int

	reqs      chan *request
	quit      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
	closeErr  error

	commits chan struct{} // a token after each durable batch (see Committed)

	foldMu      sync.Mutex    // one fold at a time
	foldStopped chan struct{} // closed when the fold loop has exited

	failed  atomic.Bool
	failErr atomic.Pointer[error]

	appends, batches, syncs atomic.Uint64
	largest                 atomic.Int64

	// The writer goroutine owns seq, head and headRaw; mu publishes the
	// durable head to Head().
	seq     uint64
	head    string
	headRaw []byte
	mu      sync.Mutex
	pubSeq  uint64
	pubHead string
}

type request struct {
	e    Event
	done chan result // buffered (1): the writer never blocks on a caller
}

type result struct {
	e   Event
	err error
}

// Open opens (creating with mode 0600) the log at path and continues its
// chain. An existing file is verified in full first; a broken chain
// (including a torn last line left by a crash mid-write) is refused with the
// *ChainError, for an operator to investigate rather than for the log to
// paper over. Close releases the file.
func Open(path string, opts Options) (*Log, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
		}
	}()
	if err := lockFile(f); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrLocked, path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	if fi.Mode().Perm()&^0o600 != 0 {
		// The trail names operators and clients; others have no business reading it.
		if err := f.Chmod(0o600); err != nil {
			return nil, fmt.Errorf("audit: open: restrict mode: %w", err)
		}
	}
	rep, err := Verify(f)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: refusing to continue a broken log: %w", path, err)
	}
	if rep.Lines == 0 {
		// A new file's directory entry must be durable too, or the first
		// synced events could vanish with the file after a crash.
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("audit: open: %w", err)
		}
	}
	headRaw, err := decodeHash(rep.Head)
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	l := &Log{
		path:     path,
		f:        f,
		w:        f,
		now:      opts.Now,
		log:      opts.Logger,
		maxBatch: opts.MaxBatch,
		reqs:     make(chan *request, opts.MaxBatch),
		commits:  make(chan struct{}, 1),
		quit:     make(chan struct{}),
		stopped:  make(chan struct{}),
		seq:      rep.LastSeq,
		head:     rep.Head,
		headRaw:  headRaw,
		pubSeq:   rep.LastSeq,
		pubHead:  rep.Head,
	}
	if opts.WrapFile != nil {
		l.w = opts.WrapFile(f)
	}
	ok = true
	go l.run()
	// Admin changes spooled while nobody held the log go in first.
	if _, err := l.FoldSpool(context.Background()); err != nil {
		l.log.Error("audit spool: fold at open failed; will retry", "path", path, "err", err)
	}
	l.foldStopped = make(chan struct{})
	if opts.SpoolInterval == 0 {
		opts.SpoolInterval = time.Second
	}
	if opts.SpoolInterval > 0 {
		go l.foldLoop(opts.SpoolInterval)
	} else {
		close(l.foldStopped)
	}
	return l, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Append records e and returns it as written (Seq, Prev, Hash set; Time set
// to now if it was zero, and in UTC). It returns only after the line is
// written and fsynced. Caller-set Seq, Prev and Hash are ignored.
//
// Errors: ErrInvalidEvent (caller bug; the log stays usable), ErrUnavailable
// (the log failed: do not perform the audited action), ErrClosed, or the
// context's error. A context that ends while the event is queued returns the
// context error, but the event may still be written: the log may record an
// action that then did not happen, never the reverse.
func (l *Log) Append(ctx context.Context, e Event) (Event, error) {
	e.Seq, e.Prev, e.Hash = 0, "", ""
	if !e.Time.IsZero() {
		e.Time = e.Time.UTC()
	}
	if err := e.validate(); err != nil {
		return Event{}, err
	}
	if l.failed.Load() {
		return Event{}, l.unavailable()
	}
	if err := ctx.Err(); err != nil {
		return Event{}, err
	}
	r := &request{e: e, done: make(chan result, 1)}
	select {
	case l.reqs <- r:
	case <-ctx.Done():
		return Event{}, ctx.Err() // never queued, so never written
	case <-l.quit:
		return Event{}, ErrClosed
	}
	select {
	case res := <-r.done:
		return res.e, res.err
	case <-ctx.Done():
		return Event{}, fmt.Errorf("audit: stopped waiting for the write (the event may still be recorded): %w", ctx.Err())
	case <-l.stopped:
		// The writer may have answered just before stopping.
		select {
		case res := <-r.done:
			return res.e, res.err
		default:
			return Event{}, ErrClosed
		}
	}
}

// Head returns the seq and hash of the last durably written event (0 and
// Genesis() for an empty log). Record it outside the log's reach from time
// to time: VerifyHead against it is what reveals a truncated or rewritten
// tail.
func (l *Log) Head() (seq uint64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pubSeq, l.pubHead
}

// Committed returns a channel that holds a token whenever batches were
// committed since it was last drained: one consumer (the checkpointer) wakes
// on it instead of polling Head.
func (l *Log) Committed() <-chan struct{} { return l.commits }

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	return Stats{
		Appends:      l.appends.Load(),
		Batches:      l.batches.Load(),
		Syncs:        l.syncs.Load(),
		LargestBatch: int(l.largest.Load()),
		Failed:       l.failed.Load(),
	}
}

// Healthy reports whether appends can succeed: nil, or why they are refused
// (the failed state's cause, or ErrClosed). It is what readiness asks.
func (l *Log) Healthy() error {
	if l.failed.Load() {
		return l.unavailable()
	}
	select {
	case <-l.quit:
		return ErrClosed
	default:
		return nil
	}
}

// Path returns the file the log writes.
func (l *Log) Path() string { return l.path }

// Close writes what is already queued, stops the writer and closes the file.
// Appends racing with Close either complete or return ErrClosed.
func (l *Log) Close() error {
	l.closeOnce.Do(func() { close(l.quit) })
	<-l.foldStopped
	<-l.stopped
	return l.closeErr
}

func (l *Log) unavailable() error {
	if p := l.failErr.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, *p)
	}
	return ErrUnavailable
}

// run is the single writer: it takes whatever appends are queued (up to
// MaxBatch), writes them with one write and one fsync, then answers them all.
// While it waits on a fsync new appends queue up, so batches grow with load.
func (l *Log) run() {
	defer close(l.stopped)
	batch := make([]*request, 0, l.maxBatch)
	var buf []byte
	for {
		select {
		case r := <-l.reqs:
			batch = l.gather(append(batch[:0], r))
			buf = l.commit(batch, buf)
		case <-l.quit:
			// Answer everything queued before Close rather than strand it.
			for {
				batch = l.gather(batch[:0])
				if len(batch) == 0 {
					break
				}
				buf = l.commit(batch, buf)
			}
			l.closeErr = l.f.Close()
			return
		}
	}
}

func (l *Log) gather(batch []*request) []*request {
	for len(batch) < l.maxBatch {
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit writes one batch and answers its requests. It returns buf for reuse.
func (l *Log) commit(batch []*request, buf []byte) []byte {
	if l.failed.Load() {
		err := l.unavailable()
		for _, r := range batch {
			r.done <- result{err: err}
		}
		return buf
	}
	l.batches.Add(1)
	now := l.now().UTC()
	seq, head, headRaw := l.seq, l.head, l.headRaw
	events := make([]Event, len(batch))
	b := buf[:0]
	n := 0
	for i, r := range batch {
		e := r.e
		if e.Time.IsZero() {
			e.Time = now
		}
		e.Seq = seq + 1
		sealed, line, raw, err := seal(e, head, headRaw)
		if err != nil {
			r.done <- result{err: err}
			batch[i] = nil
			continue
		}
		seq, head, headRaw = sealed.Seq, sealed.Hash, raw
		events[i] = sealed
		b = append(b, line...)
		n++
	}
	if n == 0 {
		return b
	}
	err := l.write(b)
	if err != nil {
		l.fail(err)
		uerr := l.unavailable()
		for _, r := range batch {
			if r != nil {
				r.done <- result{err: uerr}
			}
		}
		return b
	}
	// Only now, with the batch durable, does the chain move forward.
	l.seq, l.head, l.headRaw = seq, head, headRaw
	l.mu.Lock()
	l.pubSeq, l.pubHead = seq, head
	l.mu.Unlock()
	select {
	case l.commits <- struct{}{}:
	default: // a token is already waiting
	}
	l.syncs.Add(1)
	l.appends.Add(uint64(n))
	if int64(n) > l.largest.Load() {
		l.largest.Store(int64(n))
	}
	for i, r := range batch {
		if r != nil {
			r.done <- result{e: events[i]}
		}
	}
	if cap(b) > 4<<20 {
		return nil // do not pin a buffer grown by one huge batch
	}
	return b
}

func (l *Log) write(b []byte) error {
	if _, err := l.w.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", l.path, err)
	}
	if err := l.w.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", l.path, err)
	}
	return nil
}

// fail puts the log in the failed state for good. A failed write may have
// left part of a batch in the file, so the chain cannot safely continue:
// reopening (after an operator looks) is the way back.
func (l *Log) fail(err error) {
	l.failErr.Store(&err)
	l.failed.Store(true)
	l.log.Error("audit log failed; refusing all appends until reopened", "path", l.path, "err", err)
}
