package httpapi

import (
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/internal/apierr"
)

func TestHandler(t *testing.T) {
	app := fiber.New(fiber.Config{ErrorHandler: ErrorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	app.Get("/api", func(*fiber.Ctx) error { return apierr.CardInvalid.Wrap(errors.New("luhn failed for 4242424242424242")) })
	app.Get("/internal", func(*fiber.Ctx) error { return errors.New("db password is hunter2") })
	app.Get("/limited", func(*fiber.Ctx) error { return apierr.RateLimited.WithRetry(1500 * time.Millisecond) })
	tests := []struct {
		name, path, code, retry string
		status                  int
	}{
		{"422/api-error", "/api", "card_invalid", "", 422},
		{"500/unknown-error-hidden", "/internal", "internal", "", 500},
		{"429/retry-after-rounded-up", "/limited", "rate_limited", "2", 429},
		{"404/route", "/missing", "not_found", "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := app.Test(httptest.NewRequest("GET", tt.path, nil))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(b), `"code":"`+tt.code+`"`) {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "4242") {
				t.Fatalf("internal text leaked: %s", b)
			}
			if resp.Header.Get("Retry-After") != tt.retry {
				t.Fatalf("Retry-After = %q", resp.Header.Get("Retry-After"))
			}
		})
	}
}

// TestCodesUnique guards the contract: two errors never share a code.
