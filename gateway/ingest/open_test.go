package ingest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/ingest"
	"github.com/blindgate/blindgate/gateway/merchants"
	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/internal/ratelimit"
)

// TestOpen: the session-opening policy. Origins must be among the
// merchant's (by default all of them), the return URL on one of them; shape
// limits and the store's value rules answer with the field that broke.
func TestOpen(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	m := merchants.Merchant{ID: merchantID, AllowedOrigins: []string{"https://shop.example", "http://localhost:9999"}}
	tests := []struct {
		name    string
		m       merchants.Merchant
		req     ingest.OpenRequest
		err     error  // nil: created
		field   string // the FieldError's field, for ErrInvalid
		origins []string
		expires time.Time
	}{
		{name: "ok/defaults-to-merchant-origins", m: m, origins: m.AllowedOrigins},
		{name: "ok/origin-normalised", m: m, req: ingest.OpenRequest{AllowedOrigins: []string{"HTTPS://Shop.Example:443/"}}, origins: []string{"https://shop.example"}},
		{name: "ok/ttl", m: m, req: ingest.OpenRequest{TTL: 2 * time.Minute}, origins: m.AllowedOrigins, expires: now.Add(2 * time.Minute)},
		{name: "ok/return-url-on-allowed-origin", m: m, req: ingest.OpenRequest{ReturnURL: "https://shop.example/done"}, origins: m.AllowedOrigins},
		{name: "origin/not-registered", m: m, req: ingest.OpenRequest{AllowedOrigins: []string{"https://shop.example", "https://evil.example"}}, err: ingest.ErrOriginNotAllowed},
		{name: "origin/malformed", m: m, req: ingest.OpenRequest{AllowedOrigins: []string{"javascript:alert(1)"}}, err: ingest.ErrOriginNotAllowed},
		{name: "origin/merchant-has-none", m: merchants.Merchant{ID: merchantID}, err: ingest.ErrOriginNotAllowed},
		{name: "invalid/too-many-origins", m: m, req: ingest.OpenRequest{AllowedOrigins: slices.Repeat([]string{"https://shop.example"}, ingest.MaxRequestOrigins+1)}, err: sessions.ErrInvalid, field: "allowed_origins"},
		{name: "invalid/max-attempts", m: m, req: ingest.OpenRequest{MaxAttempts: sessions.MaxMaxAttempts + 1}, err: sessions.ErrInvalid, field: "max_attempts"},
		{name: "invalid/ttl-short", m: m, req: ingest.OpenRequest{TTL: 59 * time.Second}, err: sessions.ErrInvalid, field: "ttl_seconds"},
		{name: "invalid/ttl-long", m: m, req: ingest.OpenRequest{TTL: sessions.MaxTTL + time.Second}, err: sessions.ErrInvalid, field: "ttl_seconds"},
		{name: "invalid/return-url-elsewhere", m: m, req: ingest.OpenRequest{ReturnURL: "https://evil.example/done"}, err: sessions.ErrInvalid, field: "return_url"},
		{name: "invalid/appearance-css", m: m, req: ingest.OpenRequest{Appearance: sessions.Appearance{Primary: "red;}body{x"}}, err: sessions.ErrInvalid, field: "appearance.primary"},
		{name: "invalid/locale-unshipped", m: m, req: ingest.OpenRequest{Locale: "es"}, err: sessions.ErrInvalid, field: "locale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := allStores(t)[0](t)
			svc := ingest.New(st.sessions, st.tokens, &slowInspector{}, ratelimit.NewMemory(), noLimits(), time.Minute, ingest.WithClock(func() time.Time { return now }))
			registered := slices.Clone(tt.m.AllowedOrigins)
			got, err := svc.Open(context.Background(), tt.m, tt.req)
			if !slices.Equal(tt.m.AllowedOrigins, registered) {
				t.Fatalf("Open rewrote the merchant's origins: %v", tt.m.AllowedOrigins)
			}
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Open = %v, want %v", err, tt.err)
				}
				var fe *sessions.FieldError
				if tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field) {
					t.Fatalf("Open = %v, want a FieldError on %s", err, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got.MerchantID != tt.m.ID || !slices.Equal(got.AllowedOrigins, tt.origins) || !strings.HasPrefix(got.ID, sessions.IDPrefix) {
				t.Fatalf("session %+v", got)
			}
			if !tt.expires.IsZero() && !got.ExpiresAt.Equal(tt.expires) {
				t.Fatalf("expires %s, want %s", got.ExpiresAt, tt.expires)
			}
			if _, err := st.sessions.Get(context.Background(), got.ID); err != nil {
				t.Fatalf("session not stored: %v", err)
			}
		})
	}
}
