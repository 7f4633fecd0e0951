package main

import (
	"context"
	"errors"
	"io"
)

// benchCmd is filled in by the benchmark harness (issue 6).
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("bench: not built yet")
}
