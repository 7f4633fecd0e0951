package wire

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func okForward() ForwardRequest {
	return ForwardRequest{
		JWE: "a.b.c.d.e", Merchant: "m_1", Token: "tok_1", Destination: "adyen", IdempotencyKey: "order-17",
		Binding: "bnd_secretbindingAAAAAAAAA",
		Template: ForwardTemplate{ContentType: ContentTypeJSON, Body: `{"n":"{{card.number}}"}`,
			Headers: map[string]string{"X-API-Key": "sk_live_secret"}},
	}
}

func TestForwardRequestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(r *ForwardRequest)
		wantOK bool
	}{
		{"ok", func(r *ForwardRequest) {}, true},
		{"ok/form", func(r *ForwardRequest) { r.Template.ContentType = ContentTypeForm }, true},
		{"invalid/no-jwe", func(r *ForwardRequest) { r.JWE = "" }, false},
		{"invalid/no-token", func(r *ForwardRequest) { r.Token = "" }, false},
		{"invalid/no-destination", func(r *ForwardRequest) { r.Destination = "" }, false},
		{"invalid/no-idempotency-key", func(r *ForwardRequest) { r.IdempotencyKey = "" }, false},
		{"invalid/pan-idempotency-key", func(r *ForwardRequest) { r.IdempotencyKey = "4242424242424242" }, false},
		{"invalid/merchant", func(r *ForwardRequest) { r.Merchant = "m 1" }, false},
		{"invalid/content-type", func(r *ForwardRequest) { r.Template.ContentType = "text/plain" }, false},
		{"invalid/empty-body", func(r *ForwardRequest) { r.Template.Body = "" }, false},
		{"invalid/huge-body", func(r *ForwardRequest) { r.Template.Body = strings.Repeat("a", MaxTemplateBody+1) }, false},
		{"invalid/header-crlf", func(r *ForwardRequest) { r.Template.Headers["X-A"] = "v\r\nHost: evil" }, false},
		{"invalid/header-lf", func(r *ForwardRequest) { r.Template.Headers["X-A"] = "v\nx" }, false},
		{"invalid/header-name", func(r *ForwardRequest) { r.Template.Headers["X A:"] = "v" }, false},
		{"invalid/path-space", func(r *ForwardRequest) { r.Template.Path = "/a b" }, false},
		{"invalid/cvc-jwe", func(r *ForwardRequest) { r.CVCJWE = "x.y" }, false},
		{"invalid/no-binding", func(r *ForwardRequest) { r.Binding = "" }, false},
		{"invalid/binding-prefix", func(r *ForwardRequest) { r.Binding = "fpm_secretbindingAAAAAAAAA" }, false},
		{"invalid/binding-short", func(r *ForwardRequest) { r.Binding = r.Binding[:len(r.Binding)-1] }, false},
		{"invalid/binding-char", func(r *ForwardRequest) { r.Binding = "bnd_secretbindingAAAAAAAA=" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := okForward()
			r.Template.Headers = map[string]string{"X-API-Key": "sk_live_secret"}
			tc.edit(&r)
			err := r.Validate()
			if tc.wantOK != (err == nil) {
				t.Fatalf("Validate = %v", err)
			}
			if err != nil && !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("Validate = %v, not ErrInvalidRequest", err)
			}
			if err != nil && strings.Contains(err.Error(), "4242") {
				t.Fatalf("error quotes the value: %v", err)
			}
		})
	}
}

func TestForwardRedaction(t *testing.T) {
	var logBuf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logBuf, nil))
	r := okForward()
	r.Template.Body = `{"n":"4242424242424242"}`
	resp := ForwardResponse{Status: 200, Body: `{"card":"4242424242424242"}`, Headers: map[string]string{"X": "secret-header"}}
	for _, v := range []any{r, r.Template, resp} {
		s := fmt.Sprintf("%v %+v %#v %s", v, v, v, v)
		log.Info("v", "v", v)
		for _, secret := range []string{"4242", "sk_live_secret", "secret-header", "a.b.c.d.e", "secretbinding"} {
			if strings.Contains(s, secret) || strings.Contains(logBuf.String(), secret) {
				t.Fatalf("%T leaks %q: %s | %s", v, secret, s, logBuf.String())
			}
		}
	}
}
