package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// ErrChain is wrapped by every *ChainError: the log is not an intact chain.
var ErrChain = errors.New("audit: chain broken")

// ErrTruncated means the log ends before a head recorded elsewhere: its tail
// was cut off.
var ErrTruncated = errors.New("audit: log truncated before the recorded head")

// ErrHeadMismatch means the log holds the recorded head's sequence number
// with a different hash: the log was rewritten up to (at least) that point.
var ErrHeadMismatch = errors.New("audit: log does not contain the recorded head")

// ChainError names the first line (1-based) at which a log stops being an
// intact chain, and why.
type ChainError struct {
	// File names the segment file when the chain was read file by file
	// (Segments); empty for a single reader. Line counts within it.
	File   string
	Line   int
	Reason string
	// torn: the line has no newline or does not parse: what a crash in the
	// middle of a write leaves, when it is the last line of a file.
	torn bool
}

func (e *ChainError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("audit: chain broken at %s line %d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("audit: chain broken at line %d: %s", e.Line, e.Reason)
}

func (e *ChainError) Unwrap() error { return ErrChain }

// Report describes an intact log: how many lines it has, and its head (the
// last seq and hash; Genesis() for an empty log).
type Report struct {
	Lines   int
	LastSeq uint64
	Head    string
	// Bytes is the length of the intact prefix (the whole input when the
	// chain holds).
	Bytes int64
	// From is the seq of the record before the first line read: 0 for a
	// chain read from its genesis, more when it was read from a segment
	// whose predecessors are not part of the read (see Segments).
	From uint64
	// Files is how many segment files were read (0 for a single reader).
	Files int
}

// anchor is where a stream's chain starts: the seq and hash of the record
// before its first line.
type anchor struct {
	seq  uint64
	hash string
	// trustFirst takes the hash from the first line's prev (its seq must
	// still be seq+1): for the oldest segment kept when older ones were
	// removed after their retention, whose predecessor is gone.
	trustFirst bool
}

var genesisAnchor = anchor{hash: genesis}

// Verify reads a whole log and checks that it is an intact chain: every line
// is a canonical event whose hash matches its content, seqs run 1, 2, 3...
// and each prev is the hash of the line before. It detects an edited,
// deleted, inserted or reordered line, and a torn last line, and returns a
// *ChainError naming the first bad line.
//
// What it cannot see on its own: the chain hash is unkeyed, so someone who can
// write the file can cut lines off the end, or rewrite everything from some
// line onwards with freshly computed hashes, and still leave a valid chain.
// Both are caught only against a head (seq and hash) recorded outside the
// file beforehand (see Log.Head, VerifyHead): keep heads somewhere the log's
// writer cannot change (a SIEM, another host, a printed checkpoint).
func Verify(r io.Reader) (Report, error) {
	return walk(r, nil)
}

func walk(r io.Reader, visit func(*Event) bool) (Report, error) {
	return walkFrom(r, genesisAnchor, visit)
}

// VerifyHead is Verify plus a check against a head recorded earlier (from
// Log.Head or a Report): the log must still contain event wantSeq with hash
// wantHash. A log that ends before wantSeq returns ErrTruncated; one whose
// event wantSeq has another hash returns ErrHeadMismatch. wantSeq 0 with the
// Genesis hash is the head of an empty log and always matches.
func VerifyHead(r io.Reader, wantSeq uint64, wantHash string) (Report, error) {
	var found string
	rep, err := walk(r, func(e *Event) bool {
		if e.Seq == wantSeq {
			found = e.Hash
		}
		return true
	})
	if err != nil {
		return rep, err
	}
	if wantSeq == 0 {
		if wantHash != genesis {
			return rep, fmt.Errorf("%w: seq 0 is only valid with the genesis hash", ErrHeadMismatch)
		}
		return rep, nil
	}
	if rep.LastSeq < wantSeq {
		return rep, fmt.Errorf("%w: log ends at seq %d, recorded head is seq %d", ErrTruncated, rep.LastSeq, wantSeq)
	}
	if found != wantHash {
		return rep, fmt.Errorf("%w: seq %d has hash prefix %.12s in the log, %.12s in the recorded head", ErrHeadMismatch, wantSeq, found, wantHash)
	}
	return rep, nil
}

// Filter selects events for Read. Empty fields match everything.
type Filter struct {
	Event   string
	Actor   string
	Client  string
	Outcome string
	// Actors, when not empty, keeps only events whose actor is one of them.
	Actors []string
	// BeforeSeq, when non-zero, keeps only events with a smaller seq: the
	// back office pages backwards by passing the last seq it showed.
	BeforeSeq uint64
	// Limit caps the number of events returned (the newest ones); <= 0
	// returns all matches.
	Limit int
}

func (f Filter) match(e *Event) bool {
	return (f.Event == "" || e.Event == f.Event) &&
		(f.Actor == "" || e.Actor == f.Actor) &&
		(f.Client == "" || e.Client == f.Client) &&
		(f.Outcome == "" || e.Outcome == f.Outcome) &&
		(len(f.Actors) == 0 || slices.Contains(f.Actors, e.Actor)) &&
		(f.BeforeSeq == 0 || e.Seq < f.BeforeSeq)
}

// Read returns the events of a log that match f, newest first. It verifies
// the chain as it reads, so a view built on it cannot silently show a
// tampered log: on a broken chain it returns the matches from the intact
// prefix together with the *ChainError, so the caller can show both the
// events and the tamper warning.
func Read(r io.Reader, f Filter) ([]Event, error) {
	evs, _, err := readFrom(r, genesisAnchor, f)
	return evs, err
}

// readFrom is Read of a chain continuing from a, with its report.
func readFrom(r io.Reader, a anchor, f Filter) ([]Event, Report, error) {
	var ring []Event // the newest matches; a ring of f.Limit once full
	next := 0
	rep, err := walkFrom(r, a, func(e *Event) bool {
		if !f.match(e) {
			return true
		}
		if f.Limit <= 0 || len(ring) < f.Limit {
			ring = append(ring, *e)
			return true
		}
		ring[next] = *e
		next = (next + 1) % f.Limit
		return true
	})
	// Unroll the ring oldest to newest, then reverse to newest first.
	out := make([]Event, 0, len(ring))
	out = append(out, ring[next:]...)
	out = append(out, ring[:next]...)
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, rep, err
}

// walkFrom verifies r line by line as a chain continuing from a and calls
// visit for each intact event (visit returning false stops early, with the
// report so far).
func walkFrom(r io.Reader, a anchor, visit func(*Event) bool) (Report, error) {
	rep := Report{LastSeq: a.seq, Head: a.hash, From: a.seq}
	br := bufio.NewReaderSize(r, MaxLineSize+1)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) == 0 && err == io.EOF {
			return rep, nil
		}
		lineNo := rep.Lines + 1
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return rep, &ChainError{Line: lineNo, Reason: fmt.Sprintf("line longer than %d bytes", MaxLineSize)}
		case err == io.EOF:
			return rep, &ChainError{Line: lineNo, Reason: "last line has no newline (torn write, or cut inside a line)", torn: true}
		case err != nil:
			return rep, fmt.Errorf("audit: read line %d: %w", lineNo, err)
		}
		if lineNo == 1 && a.trustFirst {
			var first struct{ Prev string }
			if json.Unmarshal(line, &first) == nil {
				rep.Head = first.Prev
			}
		}
		e, reason, torn := checkLine(line, rep.LastSeq+1, rep.Head)
		if reason != "" {
			return rep, &ChainError{Line: lineNo, Reason: reason, torn: torn}
		}
		rep.Lines = lineNo
		rep.LastSeq = e.Seq
		rep.Head = e.Hash
		rep.Bytes += int64(len(line))
		if visit != nil && !visit(&e) {
			return rep, nil
		}
	}
}

// checkLine verifies one line against the expected seq and the previous
// hash, returning the event or why the chain breaks here. The checks run from
// the line's own consistency outwards, so the reason names the likeliest
// tampering: content edited, then a line missing or out of place, then a
// broken link.
func checkLine(line []byte, wantSeq uint64, head string) (Event, string, bool) {
	e, reason := checkContent(line)
	if reason != "" {
		// Not even JSON: a line cut short by a crash (or garbage), which a
		// start may set aside when it is the file's last line.
		return e, reason, reason == notEventLine && !json.Valid(line)
	}
	switch {
	case e.Seq > wantSeq:
		return e, fmt.Sprintf("seq %d where %d was expected (line deleted or lines reordered)", e.Seq, wantSeq), false
	case e.Seq < wantSeq:
		return e, fmt.Sprintf("seq %d where %d was expected (line inserted, duplicated or reordered)", e.Seq, wantSeq), false
	}
	if e.Prev != head {
		return e, "prev does not match the hash of the line before (lines replaced or rewritten)", false
	}
	return e, "", false
}

const notEventLine = "not a valid event line (edited or inserted)"

// checkContent verifies one line on its own: a canonical event whose hash
// matches its content and its prev. It says nothing about where the line
// belongs in a chain.
func checkContent(line []byte) (Event, string) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields() // an added field would otherwise be ignored, unhashed
	if err := dec.Decode(&e); err != nil {
		return Event{}, notEventLine
	}
	prevRaw, err := decodeHash(e.Prev)
	if err != nil {
		return e, "prev is not a hash (edited)"
	}
	claimed := e.Hash
	sealed, canonical, _, err := seal(e, e.Prev, prevRaw)
	if err != nil {
		return e, "event cannot be re-encoded (edited)"
	}
	if sealed.Hash != claimed {
		return e, "hash does not match the line's content (line edited)"
	}
	if !bytes.Equal(canonical, line) {
		return e, "line is not in canonical form (edited)"
	}
	return sealed, ""
}
