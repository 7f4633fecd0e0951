package client

import (
	"fmt"
	"time"
)

// Error is a non-2xx answer from the key service. Code is the stable
// machine-readable code; Message is the service's public text. Neither ever
// contains request data, and Error() adds none.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // from Retry-After, on 429 and 503
}

func (e *Error) Error() string {
	s := fmt.Sprintf("keyservice: %d %s", e.Status, e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Temporary reports whether the same request may succeed later (rate
// limited, sealed, or a dependency down); the caller must sign it afresh.
func (e *Error) Temporary() bool { return e.Status == 429 || e.Status == 503 }
