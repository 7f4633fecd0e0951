// Package apierr is the one error type that crosses an HTTP boundary in
// Blindgate. An *Error carries a stable code and a public message for the
// client, and the internal cause for the logs only; Handler renders it as
// {"error":{"code","message"}} and turns anything else into a bare 500, because
// Fiber's default handler would echo err.Error() to the caller.
package apierr

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

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

// Body is the wire form of every error answer.
type Body struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Handler returns the Fiber ErrorHandler shared by both services.
func Handler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		ae := From(err)
		LogRequest(log, c, ae)
		if ae.RetryAfter > 0 {
			secs := int((ae.RetryAfter + time.Second - 1) / time.Second)
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		}
		var b Body
		b.Error.Code, b.Error.Message = ae.Code, ae.Message
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Status(ae.Status).JSON(b)
	}
}

// From gives any handler error its API form: an *Error as is, Fiber's own
// errors (404 route, 405, 413 body limit) with their safe messages, and
// anything else as a bare 500 whose cause stays internal.
func From(err error) *Error {
	var ae *Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &fe):
		return fromFiber(fe)
	default:
		return Internal.Wrap(err)
	}
}

// LogRequest logs a refused (4xx, info) or failed (5xx, error with the cause)
// request by route template and code: never a value from the request.
func LogRequest(log *slog.Logger, c *fiber.Ctx, ae *Error) {
	if ae.Status >= 500 {
		log.Error("request failed", "code", ae.Code, "status", ae.Status, "method", c.Method(), "route", routeOf(c), "cause", causeText(ae))
		return
	}
	log.Info("request refused", "code", ae.Code, "status", ae.Status, "method", c.Method(), "route", routeOf(c))
}

func fromFiber(fe *fiber.Error) *Error {
	switch fe.Code {
	case http.StatusNotFound:
		return NotFound
	case http.StatusMethodNotAllowed:
		return MethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return TooLarge
	case http.StatusBadRequest:
		return BadRequest
	default:
		return &Error{Status: fe.Code, Code: "http_" + strconv.Itoa(fe.Code), Message: http.StatusText(fe.Code)}
	}
}

// causeText keeps internal causes in logs but only their text, which the
// packages below promise never to fill with card data.
func causeText(e *Error) string {
	if e.Err == nil {
		return ""
	}
	return fmt.Sprintf("%T: %v", e.Err, e.Err)
}

func routeOf(c *fiber.Ctx) string {
	if r := c.Route(); r != nil && r.Path != "" {
		return r.Path
	}
	return "unmatched"
}
