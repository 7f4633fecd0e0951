package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Recovery. A write or fsync error fails the log (every Append refused: no
// audit, no audited action). What is on disk then is the prefix synced
// before the fault, possibly followed by part of the batch that failed. The
// writer knows the prefix exactly: its length and the seq and hash of its
// last record (the head it holds in memory). So it can come back without a
// person: reopen the file, check that it is still the same file, at least
// that long, and that its prefix still verifies as a chain ending at that
// head; move whatever follows (never acknowledged to anyone) to a quarantine
// file; cut the file back to the prefix; then record the outage
// (EventAuditRecovered) and alarm, and accept appends again. If the prefix
// does not check out, the log stays failed for good (ErrUnrecoverable): what
// was synced changed while it was failed, which is for a person to look at.

// ErrUnrecoverable is wrapped by Healthy's error (and Append's) when the log
// has given up recovering on its own: an operator must look, then restart.
var ErrUnrecoverable = errors.New("audit: log cannot recover on its own")

// HealthError says why a log refuses appends. It wraps ErrUnavailable, and
// ErrUnrecoverable when Permanent. Its text holds no error message of the
// system (those can carry anything a call saw): only the class and a fixed
// reason.
type HealthError struct {
	// Class is short and stable, fit for a metric label: "no_space",
	// "quota", "io_error", "read_only", "write_error", "sync_error" or
	// "rotate_error" while the log retries; "tail_mismatch",
	// "file_replaced" or "locked" once it has given up.
	Class string
	// Since is when the outage began.
	Since time.Time
	// Reason says in a sentence what the log is waiting for or why it gave up.
	Reason string
	// Permanent: no more automatic tries.
	Permanent bool
}

func (e *HealthError) Error() string {
	if e.Permanent {
		return fmt.Sprintf("audit: log failed (%s) since %s and cannot recover on its own: %s", e.Class, e.Since.Format(time.RFC3339), e.Reason)
	}
	return fmt.Sprintf("audit: log failed (%s) since %s: %s", e.Class, e.Since.Format(time.RFC3339), e.Reason)
}

func (e *HealthError) Unwrap() []error {
	if e.Permanent {
		return []error{ErrUnavailable, ErrUnrecoverable}
	}
	return []error{ErrUnavailable}
}

// Healthy returns nil while appends work. Otherwise it returns a
// *HealthError (wrapping ErrUnavailable, and ErrUnrecoverable once the log
// has given up recovering), or ErrClosed after Close. Readiness checks call
// it: a service whose log is failed cannot do its job.
func (l *Log) Healthy() error {
	if l.closed.Load() {
		return ErrClosed
	}
	if h := l.health.Load(); h != nil {
		return h
	}
	return nil
}

// Recover tries to recover the failed log now instead of at its next
// scheduled try. It returns nil when the log is healthy (recovered, or not
// failed), the *HealthError when it has given up, or why it could not yet.
func (l *Log) Recover(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case l.recoverNow <- done:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.quit:
		return ErrClosed
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-l.stopped:
		return ErrClosed
	}
}

// opError is a failed write or fsync of the log.
type opError struct {
	op, path string
	err      error
}

func (e *opError) Error() string { return e.op + " " + e.path + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// giveUpError is a recovery that must not be retried.
type giveUpError struct{ class, reason string }

func (e *giveUpError) Error() string { return e.reason }

func giveUp(class, format string, args ...any) error {
	return &giveUpError{class: class, reason: fmt.Sprintf(format, args...)}
}

// classify names a fault for Healthy, Stats and the recovered record.
func classify(err error, fallback string) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "no_space"
	case errors.Is(err, syscall.EDQUOT):
		return "quota"
	case errors.Is(err, syscall.EIO):
		return "io_error"
	case errors.Is(err, syscall.EROFS):
		return "read_only"
	case fallback != "":
		return fallback
	}
	var oe *opError
	if errors.As(err, &oe) && oe.op == "fsync" {
		return "sync_error"
	}
	return "write_error"
}

var classReasons = map[string]string{
	"no_space":     "the disk is full; retrying until there is room",
	"quota":        "the disk quota is exhausted; retrying until there is room",
	"io_error":     "the disk reported an I/O error; retrying",
	"read_only":    "the file system is read-only; retrying",
	"write_error":  "a write failed; retrying",
	"sync_error":   "an fsync failed; retrying",
	"rotate_error": "starting a new segment failed; retrying",
}

// fail puts the log in the failed state: a failed write may have left part
// of a batch in the file, so nothing more is appended until recover has
// checked the file and cut that part off.
func (l *Log) fail(err error, fallback string) {
	class := classify(err, fallback)
	if l.outage.IsZero() {
		l.outage = l.now().UTC()
	}
	l.failErr.Store(&err)
	l.health.Store(&HealthError{Class: class, Since: l.outage, Reason: classReasons[class]})
	l.failed.Store(true)
	l.log.Error("audit log failed; refusing all appends until it recovers", "path", l.path, "class", class, "err", err)
}

// shouldRetry: failed, and not given up, and retrying on its own.
func (l *Log) shouldRetry() bool {
	if !l.failed.Load() || l.recFirst < 0 {
		return false
	}
	h := l.health.Load()
	return h == nil || !h.Permanent
}

// recover runs on the writer goroutine: one try (see the comment at the top).
func (l *Log) recover() error {
	if !l.failed.Load() {
		return nil
	}
	h := l.health.Load()
	if h.Permanent {
		return h
	}
	quarantined, discarded, err := l.reopen()
	if err != nil {
		var g *giveUpError
		if errors.As(err, &g) {
			gh := &HealthError{Class: g.class, Since: l.outage, Reason: g.reason, Permanent: true}
			var herr error = gh
			l.failErr.Store(&herr)
			l.health.Store(gh)
			l.log.Error("ALARM: audit log cannot recover on its own; an operator must look", "path", l.path, "class", g.class, "reason", g.reason)
			return gh
		}
		l.log.Warn("audit log still failed; will retry", "path", l.path, "class", h.Class, "err", err)
		return h
	}
	end := l.now().UTC()
	ev := Event{
		Event: EventAuditRecovered, Outcome: OutcomeSuccess, Code: h.Class,
		Reason: fmt.Sprintf("outage_start=%s outage_end=%s discarded_bytes=%d", l.outage.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano), discarded),
	}
	if quarantined != "" {
		ev.Resource = filepath.Base(quarantined)
	}
	// Only the writer commits, and it is here: nothing queued goes in
	// before this record. Should it fail, commit fails the log again and
	// the outage (l.outage) goes on.
	l.health.Store(nil)
	l.failErr.Store(nil)
	l.failed.Store(false)
	if _, err := l.commitNow(ev, "audit log recovered after an outage ("+h.Class+")"); err != nil {
		return l.health.Load()
	}
	l.outage = time.Time{}
	l.recNext = l.recFirst
	l.recoveries.Add(1)
	return nil
}

// reopen checks the file against what was last synced and cuts off what
// followed it; it returns the quarantine file and how many bytes went there.
func (l *Log) reopen() (string, int64, error) {
	if l.closing {
		// The segment's closing record is synced; only starting the next
		// file failed.
		return "", 0, l.finishRotation()
	}
	nf, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		return "", 0, giveUp("file_replaced", "the log file was removed while the log was failed")
	}
	if err != nil {
		return "", 0, err
	}
	keep := false
	defer func() {
		if !keep {
			_ = nf.Close()
		}
	}()
	fi, err := nf.Stat()
	if err != nil {
		return "", 0, err
	}
	if !os.SameFile(fi, l.fi) {
		return "", 0, giveUp("file_replaced", "another file is at the log's path")
	}
	if fi.Size() < l.size {
		return "", 0, giveUp("tail_mismatch", "the file holds %d bytes but %d were synced: synced records are gone", fi.Size(), l.size)
	}
	rep, err := walkFrom(io.NewSectionReader(nf, 0, l.size), l.start, nil)
	var ce *ChainError
	switch {
	case errors.As(err, &ce):
		return "", 0, giveUp("tail_mismatch", "the synced records no longer verify: %s", ce.Error())
	case err != nil:
		return "", 0, err
	case rep.LastSeq != l.seq || rep.Head != l.head || rep.Bytes != l.size:
		return "", 0, giveUp("tail_mismatch", "the synced records end at seq %d, not at the head held in memory (seq %d)", rep.LastSeq, l.seq)
	}
	var q string
	extra := fi.Size() - l.size
	if extra > 0 {
		if q, err = quarantine(l.path, io.NewSectionReader(nf, l.size, extra), l.now()); err != nil {
			return "", 0, err
		}
		if err := nf.Truncate(l.size); err != nil {
			return "", 0, err
		}
	}
	if err := nf.Sync(); err != nil {
		return "", 0, err
	}
	// A fresh descriptor: the old one may stay broken after an I/O error.
	// The lock goes with the old one, so it is taken again at once.
	_ = l.f.Close()
	l.f, l.w = nf, l.wrap(nf)
	keep = true
	if err := lockFile(nf); err != nil {
		return "", 0, giveUp("locked", "another writer took the log's lock while it was failed")
	}
	return q, extra, nil
}

// quarantine copies r into a new file beside the log, <path>.quarantine-<UTC
// time>, synced with its directory entry.
func quarantine(path string, r io.Reader, now time.Time) (string, error) {
	base := path + ".quarantine-" + now.UTC().Format("20060102T150405.000000000Z")
	name := base
	var qf *os.File
	var err error
	for i := 2; ; i++ {
		qf, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, os.ErrExist) || i > 100 {
			break
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
	if err != nil {
		return "", fmt.Errorf("audit: quarantine: %w", err)
	}
	_, err = io.Copy(qf, r)
	if err == nil {
		err = qf.Sync()
	}
	if cerr := qf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("audit: quarantine: %w", err)
	}
	return name, nil
}

// Repair is what a start set aside: a torn last line (see Open).
type Repair struct {
	Quarantine string // the file the torn bytes were moved to
	Bytes      int64  // how many
	Line       int    // the torn line's number in the open segment
	Reason     string // why it does not verify
	Kept       Report // the open segment's verified prefix, which the chain continues
	Event      Event  // the EventAuditRecovered record
}

func (r *Repair) events() (Event, string) {
	return Event{
		Event: EventAuditRecovered, Outcome: OutcomeSuccess, Code: "torn_tail", Resource: filepath.Base(r.Quarantine),
		Reason: fmt.Sprintf("torn_line=%d discarded_bytes=%d", r.Line, r.Bytes),
	}, "audit log: a torn last line was set aside at start"
}

// repairTornTail handles a chain error at Open: a torn last line after a
// prefix that verifies is moved to a quarantine file and cut off (file and
// directory synced); anything else is returned as it is.
func repairTornTail(f *os.File, path string, rep Report, verr error, now time.Time) (*Repair, error) {
	var ce *ChainError
	if !errors.As(verr, &ce) || !ce.torn {
		return nil, verr
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := fi.Size() - rep.Bytes
	if n <= 0 || n > MaxLineSize+1 {
		return nil, verr
	}
	tail := make([]byte, n)
	if _, err := f.ReadAt(tail, rep.Bytes); err != nil {
		return nil, err
	}
	if i := bytes.IndexByte(tail, '\n'); i >= 0 && i != len(tail)-1 {
		return nil, verr // not the last line: something else is wrong
	}
	q, err := quarantine(path, bytes.NewReader(tail), now)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(rep.Bytes); err != nil {
		return nil, fmt.Errorf("audit: cut the torn line: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("audit: cut the torn line: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("audit: cut the torn line: %w", err)
	}
	return &Repair{Quarantine: q, Bytes: n, Line: ce.Line, Reason: ce.Reason, Kept: rep}, nil
}

// maybeRotate closes the open segment before a batch when it is full or
// from another day: the closing record, synced, then finishRotation.
func (l *Log) maybeRotate(now time.Time) error {
	if l.closing {
		return l.finishRotation()
	}
	var why string
	switch {
	case l.size == 0:
		return nil
	case l.segSize > 0 && l.size >= l.segSize:
		why = "size"
	case l.segDaily && l.segDay != "" && now.Format(time.DateOnly) != l.segDay:
		why = "day"
	default:
		return nil
	}
	first := l.start.seq + 1
	e := Event{
		Seq: l.seq + 1, Time: now, Event: EventAuditSegment, Outcome: OutcomeSuccess,
		Resource: filepath.Base(segmentName(l.path, first)),
		Reason:   fmt.Sprintf("first_seq=%d lines=%d bytes=%d rotate=%s", first, l.seq-l.start.seq, l.size, why),
	}
	sealed, line, raw, err := seal(e, l.head, l.headRaw)
	if err != nil {
		return err
	}
	if err := l.write(line); err != nil {
		return err
	}
	l.advance(sealed.Seq, sealed.Hash, raw, int64(len(line)), now)
	l.appends.Add(1)
	l.closing = true
	return l.finishRotation()
}

// finishRotation moves the closed segment (which ends with its closing
// record) to its name and starts an empty open segment at the log's path.
// Each step can be redone after a failure or a crash.
func (l *Log) finishRotation() error {
	dir := filepath.Dir(l.path)
	seg := segmentName(l.path, l.start.seq+1)
	if fi, err := os.Stat(l.path); err == nil && os.SameFile(fi, l.fi) {
		if err := os.Rename(l.path, seg); err != nil {
			return fmt.Errorf("audit: close segment: %w", err)
		}
	} else if fi, err := os.Stat(seg); err != nil || !os.SameFile(fi, l.fi) {
		return giveUp("file_replaced", "the closed segment is neither at the log's path nor at its segment name")
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("audit: close segment: %w", err)
	}
	nf, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if errors.Is(err, os.ErrExist) {
		// Left by an earlier try that failed after creating it (checked below).
		nf, err = os.OpenFile(l.path, os.O_RDWR|os.O_APPEND, 0)
	}
	if err != nil {
		return fmt.Errorf("audit: start segment: %w", err)
	}
	if err := lockFile(nf); err != nil {
		_ = nf.Close()
		return giveUp("locked", "another writer holds the new segment")
	}
	fi, err := nf.Stat()
	if err == nil && fi.Size() != 0 {
		_ = nf.Close()
		return giveUp("file_replaced", "a file that is not empty is at the log's path")
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = nf.Close()
		return fmt.Errorf("audit: start segment: %w", err)
	}
	old := l.f
	l.f, l.w, l.fi = nf, l.wrap(nf), fi
	_ = old.Close()
	l.start = anchor{seq: l.seq, hash: l.head}
	l.size, l.segDay, l.closing = 0, "", false
	l.rotations.Add(1)
	return nil
}
