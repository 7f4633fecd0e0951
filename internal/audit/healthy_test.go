package audit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// fullDisk fails writes while full is set.
type fullDisk struct {
	File
	full atomic.Bool
}

func (f *fullDisk) Write(p []byte) (int, error) {
	if f.full.Load() {
		return 0, errors.New("injected: no space left on device")
	}
	return f.File.Write(p)
}

// TestHealthyReportsFailedState: readiness asks Healthy; it must say no
// once an append failed (with the cause) and after Close, and yes before.
func TestHealthyReportsFailedState(t *testing.T) {
	var fd *fullDisk
	l, _ := openLog(t, Options{WrapFile: func(f File) File { fd = &fullDisk{File: f}; return fd }})
	if err := l.Healthy(); err != nil {
		t.Fatalf("fresh log: Healthy() = %v", err)
	}
	if _, err := l.Append(context.Background(), ev(1)); err != nil {
		t.Fatal(err)
	}
	fd.full.Store(true)
	if _, err := l.Append(context.Background(), ev(2)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append on a full disk: %v", err)
	}
	err := l.Healthy()
	if !errors.Is(err, ErrUnavailable) || err.Error() == ErrUnavailable.Error() {
		t.Fatalf("failed log: Healthy() = %v, want ErrUnavailable with its cause", err)
	}
	_ = l.Close()
	if err := l.Healthy(); err == nil {
		t.Fatal("closed log: Healthy() = nil")
	}
}

func TestHealthyAfterClose(t *testing.T) {
	l, _ := openLog(t, Options{})
	_ = l.Close()
	if err := l.Healthy(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Healthy() after Close = %v, want ErrClosed", err)
	}
}
