package audit

import (
	"bytes"
	"context"
	"fmt"
	"os"
)

// FileTrail reads an audit file for the back office's audit view: the chain
// check over the whole file, then the filtered events. The file is read once
// into memory; both passes work on that copy, so a line appended meanwhile
// cannot make them disagree.
type FileTrail string

// Query returns the events matching f (newest first), the chain report and,
// when the chain is broken, the error naming the first bad line.
func (p FileTrail) Query(_ context.Context, f Filter) ([]Event, Report, error) {
	b, err := os.ReadFile(string(p))
	if err != nil {
		return nil, Report{}, fmt.Errorf("audit: read %s: %w", string(p), err)
	}
	rep, verr := Verify(bytes.NewReader(b))
	evs, err := Read(bytes.NewReader(b), f)
	if err != nil {
		return evs, rep, err
	}
	return evs, rep, verr
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
