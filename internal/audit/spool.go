package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/blindgate/blindgate/internal/atomicfile"
)

// The admin spool is how a command-line admin change reaches the audit chain
// whether or not the service that owns the log is running. The log file is
// locked by its writer, so a CLI cannot append while the service runs; it
// writes the event, fsynced, as one file in the spool directory beside the
// log BEFORE making the change (and refuses the change if it cannot), and
// whoever holds the log folds the spool into the chain: the running service
// within SpoolInterval, or the CLI itself when it can take the lock.
//
// Folding is at-least-once: an event is appended, then its file removed, so a
// crash between the two records it twice, never zero times.

// ErrSpool wraps every failure to spool an admin event: the change must not
// be made.
var ErrSpool = errors.New("audit: cannot record the admin change")

const (
	spoolSuffix    = ".json"
	rejectedSuffix = ".rejected"
)

// SpoolDir returns the admin spool directory of the log at logPath.
func SpoolDir(logPath string) string { return logPath + ".spool" }

// Spool writes e durably into the admin spool of the log at logPath: a new
// file, fsynced, renamed into place, directory fsynced. Time is set to now
// if zero; Seq, Prev and Hash are the log's to set.
func Spool(logPath string, e Event) error {
	e.Seq, e.Prev, e.Hash = 0, "", ""
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	if err := e.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	dir := SpoolDir(logPath)
	if err := os.Mkdir(dir, 0o700); err == nil {
		// The new directory's entry must survive a crash too.
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return fmt.Errorf("%w: %w", ErrSpool, err)
		}
	} else if !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	// Names sort in the order the events were made: the fold keeps it.
	name := fmt.Sprintf("%020d-%s%s", e.Time.UnixNano(), hex.EncodeToString(rnd[:]), spoolSuffix)
	// Written whole or not at all (the fold skips the dot-named temporary).
	if err := atomicfile.Write(filepath.Join(dir, name), append(body, '\n')); err != nil {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	return nil
}

// SpoolAdmin records an admin change made from the command line: it spools e
// (an error means: do not make the change) and then folds the spool into the
// log at once if no running service holds it. folded reports whether the
// event is already in the chain; if not, the service that holds the log folds
// it within seconds, or the next Open does.
func SpoolAdmin(ctx context.Context, logPath string, e Event) (folded bool, err error) {
	if err := Spool(logPath, e); err != nil {
		return false, err
	}
	l, err := Open(logPath, Options{SpoolInterval: -1})
	if err != nil {
		// Locked: the running service folds it. Anything else (a broken
		// chain, say) is for an operator to see; the event waits safely.
		return false, nil
	}
	return l.spoolEmpty(), l.Close()
}

// FoldSpool appends the spooled admin events to the log, oldest first, and
// removes each file once its event is durable. A file that is not a valid
// event is renamed *.rejected and its rejection audited, so one bad file
// cannot block the spool. It stops at the first append that fails.
func (l *Log) FoldSpool(ctx context.Context) (int, error) {
	l.foldMu.Lock()
	defer l.foldMu.Unlock()
	dir := SpoolDir(l.path)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("audit: read spool: %w", err)
	}
	var names []string
	for _, de := range ents {
		if n := de.Name(); de.Type().IsRegular() && !strings.HasPrefix(n, ".") && strings.HasSuffix(n, spoolSuffix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	folded := 0
	for _, n := range names {
		p := filepath.Join(dir, n)
		e, rerr := readSpooled(p)
		if rerr != nil {
			if err := os.Rename(p, p+rejectedSuffix); err != nil {
				return folded, fmt.Errorf("audit: set aside spooled %s: %w", n, err)
			}
			l.log.Error("audit spool: rejected a file that is not an event", "file", n, "err", rerr)
			e = Event{Event: EventSpoolRejected, Outcome: OutcomeFailure, Resource: n + rejectedSuffix, Reason: rerr.Error()}
		}
		if _, err := l.Append(ctx, e); err != nil {
			return folded, fmt.Errorf("audit: fold spooled %s: %w", n, err)
		}
		if rerr == nil {
			if err := os.Remove(p); err != nil {
				return folded, fmt.Errorf("audit: remove folded %s: %w", n, err)
			}
		}
		folded++
	}
	if folded > 0 {
		if err := syncDir(dir); err != nil {
			return folded, fmt.Errorf("audit: sync spool: %w", err)
		}
	}
	return folded, nil
}

func readSpooled(path string) (Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return Event{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxLineSize+1))
	if err != nil {
		return Event{}, err
	}
	if len(b) > MaxLineSize {
		return Event{}, errors.New("spooled file too large")
	}
	var e Event
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, errors.New("spooled file is not an event")
	}
	if e.Seq != 0 || e.Prev != "" || e.Hash != "" {
		return Event{}, errors.New("spooled event carries chain fields")
	}
	if err := e.validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

func (l *Log) spoolEmpty() bool {
	ents, err := os.ReadDir(SpoolDir(l.path))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	for _, de := range ents {
		if strings.HasSuffix(de.Name(), spoolSuffix) && !strings.HasPrefix(de.Name(), ".") {
			return false
		}
	}
	return true
}

// foldLoop folds the spool every interval until the log closes.
func (l *Log) foldLoop(every time.Duration) {
	defer close(l.foldStopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
			if l.failed.Load() {
				continue // nothing can go in; the recovery comes first
			}
			if _, err := l.FoldSpool(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
				l.log.Error("audit spool: fold failed; will retry", "path", l.path, "err", err)
			}
		}
	}
}

// AdminChange records an admin change made from the command line around the
// change itself: e is spooled first (no record, no change), then do runs; if
// do fails, a second event with outcome failure says so. out gets one line
// saying where the record is.
func AdminChange(ctx context.Context, logPath string, e Event, out io.Writer, do func() error) error {
	if e.Actor == "" {
		e.Actor = CLIActor()
	}
	e.Outcome = OutcomeSuccess
	folded, err := SpoolAdmin(ctx, logPath, e)
	if err != nil {
		return fmt.Errorf("no change made: %w", err)
	}
	if derr := do(); derr != nil {
		f := e
		f.Time, f.Outcome, f.Code = time.Time{}, OutcomeFailure, "admin_failed"
		f.Reason = truncate("failed: "+derr.Error(), MaxFieldLen)
		if _, err := SpoolAdmin(ctx, logPath, f); err != nil {
			return fmt.Errorf("%w (and its failure could not be recorded: %w)", derr, err)
		}
		return derr
	}
	if folded {
		fmt.Fprintf(out, "audited in %s\n", logPath)
	} else {
		fmt.Fprintf(out, "audit record spooled in %s; the service holding the log adds it to the chain\n", SpoolDir(logPath))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
