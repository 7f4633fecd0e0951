// Package httpapi is the Fiber side of internal/apierr, shared by both
// services: one ErrorHandler that renders an *apierr.Error as
// {"error":{"code","message"}} and turns anything else into a bare 500
// (Fiber's default handler would echo err.Error() to the caller), the strict
// JSON binder every handler uses, and the request log line of a refusal.
package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/internal/apierr"
)

// ErrorBody is the wire form of every error answer.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ErrorHandler returns the Fiber ErrorHandler shared by both services.
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		ae := From(err)
		LogRequest(log, c, ae)
		if ae.RetryAfter > 0 {
			secs := int((ae.RetryAfter + time.Second - 1) / time.Second)
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		}
		var b ErrorBody
		b.Error.Code, b.Error.Message = ae.Code, ae.Message
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Status(ae.Status).JSON(b)
	}
}

// From gives any handler error its API form: an *apierr.Error as is, Fiber's
// own errors (404 route, 405, 413 body limit) with their safe messages, and
// anything else as a bare 500 whose cause stays internal.
func From(err error) *apierr.Error {
	var ae *apierr.Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &fe):
		return fromFiber(fe)
	default:
		return apierr.Internal.Wrap(err)
	}
}

// LogRequest logs a refused (4xx, info) or failed (5xx, error with the cause)
// request by route template and code: never a value from the request.
func LogRequest(log *slog.Logger, c *fiber.Ctx, ae *apierr.Error) {
	if ae.Status >= 500 {
		log.Error("request failed", "code", ae.Code, "status", ae.Status, "method", c.Method(), "route", routeOf(c), "cause", causeText(ae))
		return
	}
	log.Info("request refused", "code", ae.Code, "status", ae.Status, "method", c.Method(), "route", routeOf(c))
}

func fromFiber(fe *fiber.Error) *apierr.Error {
	switch fe.Code {
	case http.StatusNotFound:
		return apierr.NotFound
	case http.StatusMethodNotAllowed:
		return apierr.MethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return apierr.TooLarge
	case http.StatusBadRequest:
		return apierr.BadRequest
	default:
		return &apierr.Error{Status: fe.Code, Code: "http_" + strconv.Itoa(fe.Code), Message: http.StatusText(fe.Code)}
	}
}

// causeText keeps internal causes in logs but only their text, which the
// packages below promise never to fill with card data.
func causeText(e *apierr.Error) string {
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
