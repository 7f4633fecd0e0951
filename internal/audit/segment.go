package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Segments. A log does not grow without bound: once the open file (the
// log's path) holds SegmentSize bytes, or a new UTC day begins with
// SegmentDaily, the writer appends a closing record (EventAuditSegment) to
// it, renames it to <path>.seg-<first seq, 20 digits> and starts a new, empty
// file at the path. The chain runs on unbroken: the new file's first record
// has the closing record as its prev. So the log's path always holds the
// open segment, a log that never rotated is a single segment, and the files
// read in name order are the whole chain.
//
// Opening reads only the open segment and the last line of the newest closed
// one (its closing record, checked on its own): start-up costs one segment,
// not the log's whole history. Verifying the whole chain (VerifySegments,
// VerifySegmentsCheckpoints, `keyservice audit verify`) reads every segment.
//
// Closed segments are never written again; they may be exported and, past
// their retention, removed oldest first (docs/audit.md). A chain whose oldest
// segments were removed is read from the first one kept, and the report's
// From says where it starts.

const segmentInfix = ".seg-"

// DefaultSegmentSize is the open segment's size at which a new one starts,
// when Options.SegmentSize is zero.
const DefaultSegmentSize = 64 << 20

// ErrSegment wraps a segment layout that cannot be read as a chain (a closed
// segment that does not end with its closing record, a name out of order).
var ErrSegment = errors.New("audit: segment")

// segmentName is the closed segment whose first record has seq first.
func segmentName(path string, first uint64) string {
	return fmt.Sprintf("%s%s%020d", path, segmentInfix, first)
}

// segmentFirst parses the first seq out of a closed segment's name.
func segmentFirst(path, name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, path+segmentInfix)
	if !ok || len(rest) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil && n > 0
}

// closedSegments returns the closed segments of the log at path, oldest
// first.
func closedSegments(path string) ([]string, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: list segments: %w", err)
	}
	var out []string
	for _, de := range ents {
		if !de.Type().IsRegular() {
			continue
		}
		if _, ok := segmentFirst(base, de.Name()); ok {
			out = append(out, filepath.Join(dir, de.Name()))
		}
	}
	slices.Sort(out) // zero-padded: name order is seq order
	return out, nil
}

// Segments returns the files of the log at path in chain order: its closed
// segments, oldest first, then the open one (path) when it exists.
func Segments(path string) ([]string, error) {
	files, err := closedSegments(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err == nil {
		files = append(files, path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return files, nil
}

// lastLine returns the last line of the file at p (with its newline) and
// the file's size; a file that does not end with a newline has no last line.
func lastLine(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	n := min(size, MaxLineSize+1)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if n == 0 || buf[n-1] != '\n' {
		return nil, errors.New("does not end with a complete line")
	}
	i := strings.LastIndexByte(string(buf[:n-1]), '\n')
	if i < 0 && n == MaxLineSize+1 {
		return nil, errors.New("last line too long")
	}
	return buf[i+1:], nil
}

// segmentEnd reads the closing record of a closed segment: its last line,
// checked on its own (content and hash). The next segment chains to it.
func segmentEnd(p string) (anchor, error) {
	line, err := lastLine(p)
	if err != nil {
		return anchor{}, fmt.Errorf("%w: closed segment %s: %w", ErrSegment, filepath.Base(p), err)
	}
	e, reason := checkContent(line)
	if reason != "" {
		return anchor{}, fmt.Errorf("%w: closed segment %s: last line: %s", ErrSegment, filepath.Base(p), reason)
	}
	if e.Event != EventAuditSegment {
		return anchor{}, fmt.Errorf("%w: closed segment %s does not end with its %s record (cut short?)", ErrSegment, filepath.Base(p), EventAuditSegment)
	}
	return anchor{seq: e.Seq, hash: e.Hash}, nil
}

// startOf is where the chain of files[i] starts: the closing record of the
// segment before it, the genesis for the log's first segment, or, for the
// oldest segment kept after older ones were removed, its own first line.
func startOf(path string, files []string, i int) (anchor, error) {
	if i > 0 {
		return segmentEnd(files[i-1])
	}
	first, ok := segmentFirst(filepath.Base(path), filepath.Base(files[0]))
	if !ok || first == 1 {
		return genesisAnchor, nil
	}
	return anchor{seq: first - 1, trustFirst: true}, nil
}

// walkSegments verifies every file of the log at path as one chain, file by
// file, and calls visit for each event. A *ChainError names the file.
func walkSegments(path string, visit func(*Event) bool) (Report, error) {
	files, err := Segments(path)
	if err != nil {
		return Report{}, err
	}
	if len(files) == 0 {
		return Report{}, fmt.Errorf("audit: %s: %w", path, os.ErrNotExist)
	}
	total := Report{Head: genesis}
	a, err := startOf(path, files, 0)
	if err != nil {
		return total, err
	}
	for i, p := range files {
		rep, err := walkFile(p, a, visit)
		if i == 0 {
			total.From = rep.From
		}
		total.Files++
		total.Lines += rep.Lines
		total.Bytes += rep.Bytes
		total.LastSeq, total.Head = rep.LastSeq, rep.Head
		if err != nil {
			return total, err
		}
		if i < len(files)-1 {
			// A closed segment ends with its closing record; the next
			// one must chain to exactly that.
			end, err := segmentEnd(p)
			if err != nil {
				return total, err
			}
			if end.seq != rep.LastSeq || end.hash != rep.Head {
				return total, fmt.Errorf("%w: closed segment %s does not end where its chain does", ErrSegment, filepath.Base(p))
			}
			if first, ok := segmentFirst(filepath.Base(path), filepath.Base(files[i+1])); ok && first != rep.LastSeq+1 {
				return total, fmt.Errorf("%w: segment %s is named for seq %d but follows seq %d (a segment missing?)", ErrSegment, filepath.Base(files[i+1]), first, rep.LastSeq)
			}
			a = end
		}
	}
	return total, nil
}

func walkFile(p string, a anchor, visit func(*Event) bool) (Report, error) {
	f, err := os.Open(p)
	if err != nil {
		return Report{LastSeq: a.seq, Head: a.hash, From: a.seq}, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	rep, err := walkFrom(f, a, visit)
	var ce *ChainError
	if errors.As(err, &ce) {
		ce.File = filepath.Base(p)
	}
	return rep, err
}

// VerifySegments is Verify over every file of the log at path (see
// Segments): each must be an intact chain continuing the one before it,
// and each closed segment must end with its closing record. The report
// counts lines and files; From is non-zero when the oldest segments are no
// longer there (removed after their retention), and says at which seq the
// verified chain starts.
func VerifySegments(path string) (Report, error) {
	return walkSegments(path, nil)
}
