// Package audit is the tamper-evident audit trail shared by the key service
// and the gateway: an append-only file of JSON lines, each an Event chained
// to the one before by a SHA-256 hash (see Verify for what that does and does
// not prove).
//
// Append is durable: it returns only after the event's line is written and
// fsynced. Concurrent appends are group-committed by a single writer
// goroutine (one write and one fsync per batch), so durability costs one
// fsync per batch rather than one per request. The log fails closed: after
// any write or sync error every Append returns ErrUnavailable, and a caller
// must not perform an audited action (a reveal, say) whose Append failed.
// It then recovers on its own when it safely can (see Recover): the file
// reopened, its synced prefix verified against the head held in memory, the
// unsynced bytes set aside, and the outage recorded (EventAuditRecovered)
// and alarmed. Healthy says which state it is in.
//
// The log is a series of segment files (see Segments), so it never grows
// without bound and a start reads only the open one.
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
// happen. The log stays failed until it recovers (Recover) or is reopened.
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

// Options tune a Log. The zero value is ready for production (segments by
// size only; set SegmentDaily for a segment per day too).
type Options struct {
	// Now stamps events whose Time is zero; default time.Now.
	Now func() time.Time
	// MaxBatch caps how many appends share one write and fsync; default 1024.
	MaxBatch int
	// Linger is how long the writer may hold a batch open for more appends
	// when appends come concurrently (the previous batch had several and
	// this one has fewer so far): each fsync then commits more of them.
	// A lone caller never waits. Default DefaultLinger; negative: never.
	Linger time.Duration
	// Logger reports the log failing; default slog.Default().
	Logger *slog.Logger
	// WrapFile, when set, wraps every file the writer opens (the log at
	// Open, after a recovery, a new segment) before it writes to it. It
	// exists for fault injection in tests (a failing write or fsync, a
	// slow disk); production leaves it nil.
	WrapFile func(File) File
	// SpoolInterval is how often the admin spool beside the log (see
	// SpoolDir) is folded into the chain; default 1s, negative: only at Open.
	SpoolInterval time.Duration
	// SegmentSize is the open segment's size at which the next batch
	// starts a new one; default DefaultSegmentSize (64 MiB), negative: no
	// limit by size.
	SegmentSize int64
	// SegmentDaily also starts a new segment with the first batch of each
	// UTC day (by Now).
	SegmentDaily bool
	// RecoverInterval is how long after a failure the writer first tries
	// to recover (see Recover), doubling after each failed try up to
	// RecoverMaxInterval; default 5s, negative: never on its own.
	RecoverInterval time.Duration
	// RecoverMaxInterval caps the backoff; default 1m.
	RecoverMaxInterval time.Duration
	// After schedules the recovery tries and ends a linger; default
	// time.After. Tests inject a fake to fire them at will.
	After func(time.Duration) <-chan time.Time
}

// DefaultLinger is Options.Linger's default: about one fsync of a local
// SSD, so a caller waits at most that much longer for a batch that shares
// its fsync with the appends arriving meanwhile.
const DefaultLinger = 250 * time.Microsecond

// Stats are counters for tests and metrics.
type Stats struct {
	Appends      uint64 // events durably committed since Open
	Batches      uint64 // batches the writer attempted
	Syncs        uint64 // successful fsyncs (one per committed batch)
	LargestBatch int    // most events committed by one fsync
	Failed       bool   // the log refuses appends (see Healthy)
	// FailClass is the class of the fault the log is failed by ("" while
	// healthy): see HealthError.Class.
	FailClass  string
	Recoveries uint64 // outages recovered from since Open
	Rotations  uint64 // segments closed since Open
}

// Log is an open audit log. It is safe for concurrent use.
type Log struct {
	path     string
	now      func() time.Time
	log      *slog.Logger
	maxBatch int
	linger   time.Duration
	wrap     func(File) File
	segSize  int64
	segDaily bool

	reqs      chan *request
	quit      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool

	commits chan struct{} // a token after each durable batch (see Committed)

	foldMu      sync.Mutex    // one fold at a time
	foldStopped chan struct{} // closed when the fold loop has exited

	// failed is the fast check of Append; health says why (nil: healthy).
	failed  atomic.Bool
	failErr atomic.Pointer[error]
	health  atomic.Pointer[HealthError]

	appends, batches, syncs atomic.Uint64
	recoveries, rotations   atomic.Uint64
	largest                 atomic.Int64

	// Recovery scheduling (writer-owned, but for the channels).
	after      func(time.Duration) <-chan time.Time
	recFirst   time.Duration
	recMax     time.Duration
	recNext    time.Duration
	recoverNow chan chan error

	// The writer goroutine owns everything below (before it starts, Open
	// does); mu publishes the durable head to Head().
	f       *os.File
	w       File
	fi      os.FileInfo // the open file's identity, to see it replaced
	seq     uint64
	head    string
	headRaw []byte
	size    int64  // bytes of the open segment up to the last durable batch
	start   anchor // the record before the open segment's first line
	segDay  string // UTC day of the open segment's first batch ("": empty)
	closing bool   // the open file ends with its closing record: rotation to finish
	outage  time.Time
	repair  *Repair
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
// chain. The open segment is verified in full first, from the closing record
// of the newest closed segment (only that line of it is read). A torn last
// line (no newline, or not JSON: a crash in the middle of a write) after a
// prefix that verifies is moved aside to a quarantine file beside the log,
// the file cut back to the prefix, and the repair recorded
// (EventAuditRecovered) and alarmed; see Repaired. Any other break is
// refused with the *ChainError, for an operator to investigate rather than
// for the log to paper over. Close releases the file.
func Open(path string, opts Options) (*Log, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.Linger == 0 {
		opts.Linger = DefaultLinger
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SegmentSize == 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.RecoverInterval == 0 {
		opts.RecoverInterval = 5 * time.Second
	}
	if opts.RecoverMaxInterval <= 0 {
		opts.RecoverMaxInterval = time.Minute
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.WrapFile == nil {
		opts.WrapFile = func(f File) File { return f }
	}
	closed, err := closedSegments(path)
	if err != nil {
		return nil, err
	}
	start := genesisAnchor
	if len(closed) > 0 {
		if start, err = segmentEnd(closed[len(closed)-1]); err != nil {
			return nil, fmt.Errorf("audit: open %s: refusing to continue a broken log: %w", path, err)
		}
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
	var first, last Event
	rep, err := walkFrom(f, start, func(e *Event) bool {
		if first.Seq == 0 {
			first = *e
		}
		last = *e
		return true
	})
	var repair *Repair
	if err != nil {
		if repair, err = repairTornTail(f, path, rep, err, opts.Now()); err != nil {
			return nil, fmt.Errorf("audit: open %s: refusing to continue a broken log: %w", path, err)
		}
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
		path:       path,
		f:          f,
		w:          opts.WrapFile(f),
		fi:         fi,
		now:        opts.Now,
		log:        opts.Logger,
		maxBatch:   opts.MaxBatch,
		linger:     opts.Linger,
		wrap:       opts.WrapFile,
		segSize:    opts.SegmentSize,
		segDaily:   opts.SegmentDaily,
		after:      opts.After,
		recFirst:   opts.RecoverInterval,
		recMax:     max(opts.RecoverMaxInterval, opts.RecoverInterval),
		recoverNow: make(chan chan error),
		reqs:       make(chan *request, opts.MaxBatch),
		commits:    make(chan struct{}, 1),
		quit:       make(chan struct{}),
		stopped:    make(chan struct{}),
		seq:        rep.LastSeq,
		head:       rep.Head,
		headRaw:    headRaw,
		size:       rep.Bytes,
		start:      start,
		pubSeq:     rep.LastSeq,
		pubHead:    rep.Head,
	}
	if rep.Lines > 0 {
		l.segDay = first.Time.UTC().Format(time.DateOnly)
	}
	l.recNext = l.recFirst
	if rep.Lines > 0 && last.Event == EventAuditSegment {
		// A crash between closing a segment and starting the next.
		l.closing = true
		if err := l.finishRotation(); err != nil {
			return nil, fmt.Errorf("audit: open %s: finish the segment closed before the last stop: %w", path, err)
		}
		f = l.f // what the deferred close must close now
	}
	if repair != nil {
		ev, err := l.commitNow(repair.events())
		f = l.f // the commit may have started a new segment
		if err != nil {
			return nil, fmt.Errorf("audit: open %s: record the repair: %w", path, err)
		}
		repair.Event = ev
		l.repair = repair
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
	st := Stats{
		Appends:      l.appends.Load(),
		Batches:      l.batches.Load(),
		Syncs:        l.syncs.Load(),
		LargestBatch: int(l.largest.Load()),
		Failed:       l.failed.Load(),
		Recoveries:   l.recoveries.Load(),
		Rotations:    l.rotations.Load(),
	}
	if h := l.health.Load(); h != nil {
		st.FailClass = h.Class
	}
	return st
}

// Path returns the file the log writes (the open segment).
func (l *Log) Path() string { return l.path }

// Repaired reports what Open set aside (a torn last line), if anything.
func (l *Log) Repaired() (Repair, bool) {
	if l.repair == nil {
		return Repair{}, false
	}
	return *l.repair, true
}

// Close writes what is already queued, stops the writer and closes the file.
// Appends racing with Close either complete or return ErrClosed.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.quit)
	})
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
// While the log is failed it also tries to recover on its schedule.
func (l *Log) run() {
	defer close(l.stopped)
	batch := make([]*request, 0, l.maxBatch)
	var buf []byte
	var retry <-chan time.Time
	// last is the previous batch's size: how many appends came in during
	// one commit, the best guess of how many the next one can gather.
	last := 0
	for {
		if retry == nil && l.shouldRetry() {
			retry = l.after(l.recNext)
			l.recNext = min(2*l.recNext, l.recMax)
		}
		select {
		case r := <-l.reqs:
			batch = l.gather(append(batch[:0], r))
			batch = l.lingerFor(batch, last)
			last = len(batch)
			buf = l.commit(batch, buf)
		case <-retry:
			retry = nil
			_ = l.recover()
		case done := <-l.recoverNow:
			done <- l.recover()
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

// lingerFor waits, up to the linger, for a batch to reach the size of the
// previous one (appends that are on their way: their callers are working
// concurrently), so that fewer fsyncs commit the same appends. A batch
// after a batch of one, or one already as big, is committed at once.
func (l *Log) lingerFor(batch []*request, last int) []*request {
	if l.linger <= 0 || last < 2 || len(batch) >= min(last, l.maxBatch) {
		return batch
	}
	done := l.after(l.linger)
	for len(batch) < min(last, l.maxBatch) {
		select {
		case r := <-l.reqs:
			batch = l.gather(append(batch, r))
		case <-done:
			return batch
		case <-l.quit:
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
	if err := l.maybeRotate(now); err != nil {
		l.fail(err, "rotate_error")
		uerr := l.unavailable()
		for _, r := range batch {
			r.done <- result{err: uerr}
		}
		return buf
	}
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
	if err := l.write(b); err != nil {
		l.fail(err, "")
		uerr := l.unavailable()
		for _, r := range batch {
			if r != nil {
				r.done <- result{err: uerr}
			}
		}
		return b
	}
	// Only now, with the batch durable, does the chain move forward.
	l.advance(seq, head, headRaw, int64(len(b)), now)
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

// advance moves the chain past a durable write of n bytes.
func (l *Log) advance(seq uint64, head string, headRaw []byte, n int64, now time.Time) {
	l.seq, l.head, l.headRaw = seq, head, headRaw
	if l.size == 0 {
		l.segDay = now.Format(time.DateOnly)
	}
	l.size += n
	l.mu.Lock()
	l.pubSeq, l.pubHead = seq, head
	l.mu.Unlock()
	select {
	case l.commits <- struct{}{}:
	default: // a token is already waiting
	}
	l.syncs.Add(1)
}

// commitNow writes events in one batch from the writer's own goroutine (or
// before it runs), for the records the log makes about itself, and raises
// the alarm why when it is not empty. The alarm goes into the same batch:
// the writer cannot wait on itself through Append.
func (l *Log) commitNow(e Event, why string) (Event, error) {
	evs := []Event{e}
	if why != "" {
		evs = append(evs, alarmEvent(e, why))
	}
	batch := make([]*request, len(evs))
	for i, e := range evs {
		batch[i] = &request{e: e, done: make(chan result, 1)}
	}
	l.commit(batch, nil)
	var written Event
	for i, r := range batch {
		res := <-r.done
		if res.err != nil {
			return Event{}, res.err
		}
		if i == 0 {
			written = res.e
		}
	}
	if why != "" {
		l.log.Error("ALARM: "+why, "path", l.path, "event", e.Event, "code", e.Code)
	}
	return written, nil
}

func (l *Log) write(b []byte) error {
	if _, err := l.w.Write(b); err != nil {
		return &opError{op: "write", path: l.path, err: err}
	}
	if err := l.w.Sync(); err != nil {
		return &opError{op: "fsync", path: l.path, err: err}
	}
	return nil
}
