package app

import (
	"context"
	"fmt"
	"os"

	"github.com/blindgate/blindgate/internal/audit"
)

// trail reads the audit file for the back office: the chain check over the
// whole file, then the filtered events.
type trail struct{ path string }

func (t trail) Query(_ context.Context, f audit.Filter) ([]audit.Event, audit.Report, error) {
	fh, err := os.Open(t.path)
	if err != nil {
		return nil, audit.Report{}, fmt.Errorf("open audit log: %w", err)
	}
	defer fh.Close()
	rep, verr := audit.Verify(fh)
	if _, err := fh.Seek(0, 0); err != nil {
		return nil, rep, err
	}
	events, err := audit.Read(fh, f)
	if err != nil {
		return nil, rep, err
	}
	return events, rep, verr
}
