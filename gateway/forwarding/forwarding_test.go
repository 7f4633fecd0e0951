package forwarding

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/keyservice/wire"
)

func TestValidateIdempotencyKey(t *testing.T) {
	for _, tc := range []struct {
		name, key string
		ok        bool
	}{
		{"ok/plain", "order-1001", true},
		{"ok/space-and-symbols", "order 1001 / retry #2", true},
		{"ok/255", strings.Repeat("k", 255), true},
		{"bad/empty", "", false},
		{"bad/256", strings.Repeat("k", 256), false},
		{"bad/newline", "a\nb", false},
		{"bad/non-ascii", "ordré", false},
		{"bad/pan-shaped", "4242 4242 4242 4242", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateIdempotencyKey(tc.key)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Fatalf("ValidateIdempotencyKey = %v", err)
			}
		})
	}
}

type fakeTokens struct{ taken int }

func (f *fakeTokens) Get(_ context.Context, merchant, id string) (tokens.Token, error) {
	if merchant != "m_a" {
		return tokens.Token{}, tokens.ErrNotFound
	}
	return tokens.Token{ID: id, MerchantID: merchant, JWE: "h.k.i.c.t"}, nil
}

func (f *fakeTokens) TakeCVC(context.Context, string) (string, error) {
	f.taken++
	return "cvc.jwe", nil
}

type fakeKS struct{ got []wire.ForwardRequest }

func (f *fakeKS) Forward(_ context.Context, r wire.ForwardRequest) (wire.ForwardResponse, error) {
	f.got = append(f.got, r)
	return wire.ForwardResponse{Status: 200}, nil
}

// The single-use CVC is spent only for a template that uses it, and only
// for the merchant's own token; the raw key never leaves the gateway.
func TestForwardTakesCVCOnlyWhenNeeded(t *testing.T) {
	id, _ := tokens.NewID()
	toks, ks := &fakeTokens{}, &fakeKS{}
	s := New(toks, ks, nil)
	call := func(merchant, body string) error {
		_, err := s.Forward(context.Background(), Call{MerchantID: merchant, TokenID: id, IdempotencyKey: "order-1",
			Request: Request{Destination: "psp", Request: wire.ForwardTemplate{ContentType: wire.ContentTypeJSON, Body: body}}})
		return err
	}
	if err := call("m_a", `{"n":"{{card.number}}"}`); err != nil || toks.taken != 0 {
		t.Fatalf("no-cvc template: %v, taken %d", err, toks.taken)
	}
	if err := call("m_b", `{"c":"{{card.cvc}}"}`); !errors.Is(err, ErrNotFound) || toks.taken != 0 {
		t.Fatalf("other merchant: %v, taken %d", err, toks.taken)
	}
	if err := call("m_a", `{"c":"{{card.cvc}}"}`); err != nil || toks.taken != 1 || ks.got[1].CVCJWE != "cvc.jwe" {
		t.Fatalf("cvc template: %v, taken %d", err, toks.taken)
	}
	if k := ks.got[0].IdempotencyKey; k != WireKey("order-1") || strings.Contains(k, "order") {
		t.Fatalf("wire key %q", k)
	}
	if New(toks, nil, nil).Enabled() {
		t.Fatal("enabled without a key service")
	}
}
