package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// FileTrail reads an audit log for the back office's audit view: its
// segments newest first, each read once into memory, chain-checked from the
// closing record of the segment before it and filtered on that same copy (so
// a line appended meanwhile cannot make the two disagree), until the page is
// full. The chain check covers the segments the page needed, always the open
// one; `keyservice audit verify` checks them all.
type FileTrail string

// Query returns the events matching f (newest first), the chain report of
// the segments read (LastSeq and Head are the log's head) and, when the
// chain is broken, the error naming the first bad line.
func (p FileTrail) Query(ctx context.Context, f Filter) ([]Event, Report, error) {
	evs, rep, err := p.query(f)
	if errors.Is(err, os.ErrNotExist) {
		// A segment was renamed while listed: the writer rotated. Once more.
		evs, rep, err = p.query(f)
	}
	return evs, rep, err
}

func (p FileTrail) query(f Filter) ([]Event, Report, error) {
	path := string(p)
	files, err := Segments(path)
	if err != nil {
		return nil, Report{}, err
	}
	if len(files) == 0 {
		return nil, Report{}, fmt.Errorf("audit: read %s: %w", path, os.ErrNotExist)
	}
	var out []Event
	var total Report
	for i := len(files) - 1; i >= 0; i-- {
		newest := i == len(files)-1
		if first, ok := segmentFirst(filepath.Base(path), filepath.Base(files[i])); ok && !newest && f.BeforeSeq != 0 && first >= f.BeforeSeq {
			continue // nothing in it is before the cursor
		}
		b, err := os.ReadFile(files[i])
		if err != nil {
			return out, total, fmt.Errorf("audit: read %s: %w", files[i], err)
		}
		a, err := startOf(path, files, i)
		if err != nil {
			return out, total, err
		}
		ff := f
		if f.Limit > 0 {
			ff.Limit = f.Limit - len(out)
		}
		evs, rep, err := readFrom(bytes.NewReader(b), a, ff)
		if newest {
			total = rep
		}
		total.From = rep.From
		total.Files++
		if !newest {
			total.Lines += rep.Lines
			total.Bytes += rep.Bytes
		}
		out = append(out, evs...)
		if err != nil {
			var ce *ChainError
			if errors.As(err, &ce) && len(files) > 1 {
				ce.File = filepath.Base(files[i])
			}
			return out, total, err
		}
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
	}
	return out, total, nil
}

// CLIActor names who ran an admin command, for the audit trail.
func CLIActor() string {
	for _, v := range []string{"SUDO_USER", "USER"} {
		if u := os.Getenv(v); u != "" {
			return "cli:" + u
		}
	}
	return "cli"
}
