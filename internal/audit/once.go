package audit

import (
	"context"
	"fmt"
)

// AppendOnce opens the log at path, appends e and closes it: for admin
// commands run beside a service. It returns ErrLocked when a running service
// holds the log; that service then records the change itself, since two
// writers would fork the chain.
func AppendOnce(ctx context.Context, path string, e Event) error {
	l, err := Open(path, Options{})
	if err != nil {
		return err
	}
	if _, err := l.Append(ctx, e); err != nil {
		_ = l.Close()
		return fmt.Errorf("audit: append to %s: %w", path, err)
	}
	return l.Close()
}
