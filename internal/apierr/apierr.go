// Package apierr is the one error type that crosses an HTTP boundary in
// Blindgate, and the list of its stable codes (codes.go). An *Error carries a
// code and a public message for the client, and the internal cause for the
// logs only. It knows nothing of HTTP servers: internal/httpapi renders it.
package apierr

import "time"

// Error is an API error. Message is shown to the caller and must never hold
// request data; Err is logged (by code and type only) and never rendered.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// New declares an error code with its status and public message, and lists
// it in Codes. It is for the declarations of codes.go; an answer that needs
// another message builds an *Error literal with a declared code.
func New(status int, code, message string) *Error {
	e := &Error{Status: status, Code: code, Message: message}
	register(e)
	return e
}

// Wrap returns a copy of e carrying cause as its internal error.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.Err = cause
	return &c
}

// WithRetry returns a copy of e that tells the client when to retry.
func (e *Error) WithRetry(d time.Duration) *Error {
	c := *e
	c.RetryAfter = d
	return &c
}
