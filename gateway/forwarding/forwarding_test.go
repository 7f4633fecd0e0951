package forwarding

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/panshape"
	"github.com/blindgate/blindgate/keyservice/client"
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

type fakeTokens struct {
	taken   int
	unbound bool // a token stored before merchant bindings
}

const testBinding = "bnd_AAAAAAAAAAAAAAAAAAAAAA"

func (f *fakeTokens) Get(_ context.Context, merchant, id string) (tokens.Token, error) {
	if merchant != "m_a" {
		return tokens.Token{}, tokens.ErrNotFound
	}
	t := tokens.Token{ID: id, MerchantID: merchant, JWE: "h.k.i.c.t", Binding: testBinding}
	if f.unbound {
		t.Binding = ""
	}
	return t, nil
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
	if ks.got[0].Binding != testBinding {
		t.Fatalf("binding sent %q, want the token's", ks.got[0].Binding)
	}
	if New(toks, nil, nil).Enabled() {
		t.Fatal("enabled without a key service")
	}
}

type recordedEvents struct{ succeeded, failed []Event }

func (r *recordedEvents) ForwardSucceeded(_ context.Context, e Event) {
	r.succeeded = append(r.succeeded, e)
}
func (r *recordedEvents) ForwardFailed(_ context.Context, e Event) { r.failed = append(r.failed, e) }

type scriptedKS struct {
	resp wire.ForwardResponse
	err  error
}

func (f scriptedKS) Forward(context.Context, wire.ForwardRequest) (wire.ForwardResponse, error) {
	return f.resp, f.err
}

// The merchant's webhooks hear of every forward that ran, once: a replayed
// answer raises nothing (its first run did), a refusal raises forward.failed
// with its code, and a refusal before the key service was asked (another
// merchant's token) raises nothing.
func TestForwardEvents(t *testing.T) {
	id, _ := tokens.NewID()
	for _, tc := range []struct {
		name              string
		merchant          string
		ks                scriptedKS
		succeeded, failed int
		code              string
	}{
		{"succeeded", "m_a", scriptedKS{resp: wire.ForwardResponse{Status: 201}}, 1, 0, ""},
		{"replayed/silent", "m_a", scriptedKS{resp: wire.ForwardResponse{Status: 201, Replayed: true}}, 0, 0, ""},
		{"failed/keyservice-code", "m_a", scriptedKS{err: &client.Error{Status: 502, Code: apierr.DestinationUnreachable.Code}}, 0, 1, apierr.DestinationUnreachable.Code},
		{"failed/keyservice-down", "m_a", scriptedKS{err: errors.New("dial tcp: refused")}, 0, 1, apierr.KeyServiceDown.Code},
		{"refused-before/silent", "m_b", scriptedKS{resp: wire.ForwardResponse{Status: 201}}, 0, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &recordedEvents{}
			s := New(&fakeTokens{}, tc.ks, ev)
			_, _ = s.Forward(context.Background(), Call{MerchantID: tc.merchant, TokenID: id, IdempotencyKey: "order-1",
				Request: Request{Destination: "psp", Request: wire.ForwardTemplate{ContentType: wire.ContentTypeJSON, Body: `{"n":"{{card.number}}"}`}}})
			if len(ev.succeeded) != tc.succeeded || len(ev.failed) != tc.failed {
				t.Fatalf("events: %d succeeded, %d failed; want %d, %d", len(ev.succeeded), len(ev.failed), tc.succeeded, tc.failed)
			}
			for _, e := range append(ev.succeeded, ev.failed...) {
				if e.MerchantID != tc.merchant || e.TokenID != id || e.Destination != "psp" || e.Code != tc.code {
					t.Fatalf("event %+v", e)
				}
			}
			if tc.succeeded == 1 && ev.succeeded[0].Status != 201 {
				t.Fatalf("status %d", ev.succeeded[0].Status)
			}
		})
	}
}

// A wire key never looks like a card number, whatever the merchant's key:
// the key service refuses card-shaped keys, and a hex digest once held a
// Luhn-valid digit run for about one key in 350.
func TestWireKeyIsNeverCardShaped(t *testing.T) {
	seen := map[string]bool{}
	for i := range 20000 {
		k := WireKey(fmt.Sprintf("order-%d", i))
		if len(k) != 36 || strings.ContainsAny(k[4:], "0123456789") || panshape.Contains(k) {
			t.Fatalf("WireKey(order-%d) = %q", i, k)
		}
		if seen[k] {
			t.Fatalf("collision at %d", i)
		}
		seen[k] = true
	}
}

// A token stored before merchant bindings cannot be forwarded (the key
// service would refuse it): refused as card_not_bound without asking the
// key service or spending the CVC.
func TestForwardUnboundToken(t *testing.T) {
	id, _ := tokens.NewID()
	toks, ks := &fakeTokens{unbound: true}, &fakeKS{}
	_, err := New(toks, ks, nil).Forward(context.Background(), Call{MerchantID: "m_a", TokenID: id, IdempotencyKey: "order-1",
		Request: Request{Destination: "psp", Request: wire.ForwardTemplate{ContentType: wire.ContentTypeJSON, Body: `{"c":"{{card.cvc}}"}`}}})
	var ke *KeyServiceError
	if !errors.As(err, &ke) || ke.Code != apierr.CardNotBound.Code || toks.taken != 0 || len(ks.got) != 0 {
		t.Fatalf("Forward = %v; cvc taken %d, key service asked %d times", err, toks.taken, len(ks.got))
	}
}
