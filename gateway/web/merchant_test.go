package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/internal/apierr"
)

// failingCreate is a session store whose Create fails with err.
type failingCreate struct {
	sessions.Store
	err error
}

func (f failingCreate) Create(context.Context, sessions.Session) (sessions.Session, error) {
	return sessions.Session{}, f.err
}

// TestCreateSessionPublicReason: an invalid_field answer shows the rule the
// store declared (its FieldError) and nothing else of the error, even when
// the error's text carries an internal cause.
func TestCreateSessionPublicReason(t *testing.T) {
	const secret = "dial tcp 10.9.8.7:6379: AUTH hunter2"
	tests := []struct {
		name, message string
		err           error
	}{
		{"400/typed-reason-shown-cause-hidden", "Invalid field: return_url must be https",
			fmt.Errorf("store: %w: %s", &sessions.FieldError{Field: "return_url", Reason: "must be https"}, secret)},
		{"400/untyped-invalid-generic", apierr.InvalidField.Message,
			fmt.Errorf("%w: return_url: %s", sessions.ErrInvalid, secret)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := boltStores(t)
			s.sessions = failingCreate{Store: s.sessions, err: tt.err}
			f := newTestServer(t, fixtureOpt{stores: &s})
			a := f.do(t, http.MethodPost, "/v1/checkout/sessions", f.secret, map[string]any{})
			if a.status != http.StatusBadRequest || a.code() != "invalid_field" {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if strings.Contains(string(a.body), "hunter2") || strings.Contains(string(a.body), "10.9.8.7") {
				t.Fatalf("internal cause reached the answer: %s", a.body)
			}
			if msg := a.json["error"].(map[string]any)["message"]; msg != tt.message {
				t.Fatalf("message %q, want %q", msg, tt.message)
			}
		})
	}
}

// TestMerchantAuthMessages: a merchant with a wrong or missing key is told
// about its API key, under the stable code unauthenticated, never about
// signatures (the key service's meaning of the code).
func TestMerchantAuthMessages(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	tests := []struct {
		name, key, message string
	}{
		{"401/wrong-key", "sk_wrong", "Invalid API key."},
		{"401/other-shape", "not-a-key", "Invalid API key."},
		{"401/missing", "", "Missing API key: send your secret key as Authorization: Bearer sk_..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(t, http.MethodGet, "/v1/tokens", tt.key, nil)
			if a.status != http.StatusUnauthorized || a.code() != "unauthenticated" {
				t.Fatalf("%d %s", a.status, a.body)
			}
			msg, _ := a.json["error"].(map[string]any)["message"].(string)
			if msg != tt.message || strings.Contains(strings.ToLower(msg), "sign") {
				t.Fatalf("message %q, want %q", msg, tt.message)
			}
		})
	}
}

// TestCreateSessionAmount: amount (an integer of minor units) and currency
// (ISO 4217, the checkout's list) come together; the button's wording is one
// of the checkout's. Each refusal is invalid_field naming the field and its
// rule.
func TestCreateSessionAmount(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	tests := []struct {
		name    string
		body    string
		status  int
		message string // for 400: a part of the message
		want    sessions.Session
	}{
		{name: "201/eur", body: `{"amount":2500,"currency":"EUR"}`, status: 201, want: sessions.Session{Amount: 2500, Currency: "EUR"}},
		{name: "201/lower-case-currency", body: `{"amount":2500,"currency":"eur"}`, status: 201, want: sessions.Session{Amount: 2500, Currency: "EUR"}},
		{name: "201/jpy-no-decimals", body: `{"amount":700,"currency":"JPY","submit_type":"donate"}`, status: 201, want: sessions.Session{Amount: 700, Currency: "JPY", SubmitType: "donate"}},
		{name: "201/null-amount", body: `{"amount":null}`, status: 201},
		{name: "201/submit-type-alone", body: `{"submit_type":"continue"}`, status: 201, want: sessions.Session{SubmitType: "continue"}},
		{name: "201/max", body: `{"amount":999999999999,"currency":"KWD"}`, status: 201, want: sessions.Session{Amount: 999999999999, Currency: "KWD"}},
		{name: "400/fraction", body: `{"amount":25.5,"currency":"EUR"}`, status: 400, message: "amount must be an integer number of minor units"},
		{name: "400/string", body: `{"amount":"2500","currency":"EUR"}`, status: 400, message: "amount must be an integer"},
		{name: "400/exponent", body: `{"amount":25e2,"currency":"EUR"}`, status: 400, message: "amount must be an integer"},
		{name: "400/zero", body: `{"amount":0,"currency":"EUR"}`, status: 400, message: "amount must be"},
		{name: "400/negative", body: `{"amount":-1,"currency":"EUR"}`, status: 400, message: "amount must be"},
		{name: "400/too-large", body: `{"amount":1000000000000,"currency":"EUR"}`, status: 400, message: "amount must be"},
		{name: "400/overflow", body: `{"amount":99999999999999999999,"currency":"EUR"}`, status: 400, message: "amount must be"},
		{name: "400/no-currency", body: `{"amount":2500}`, status: 400, message: "currency is required with an amount"},
		{name: "400/no-amount", body: `{"currency":"EUR"}`, status: 400, message: "amount is required with a currency"},
		{name: "400/unknown-currency", body: `{"amount":2500,"currency":"EUX"}`, status: 400, message: "currency must be an ISO 4217 currency code"},
		{name: "400/fund-code", body: `{"amount":2500,"currency":"XAU"}`, status: 400, message: "currency must be"},
		{name: "400/submit-type", body: `{"submit_type":"buy-now"}`, status: 400, message: "submit_type must be one of save, pay, donate, continue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(t, http.MethodPost, "/v1/checkout/sessions", f.secret, json.RawMessage(tt.body))
			if a.status != tt.status {
				t.Fatalf("%d, want %d: %s", a.status, tt.status, a.body)
			}
			if tt.status != 201 {
				msg, _ := a.json["error"].(map[string]any)["message"].(string)
				if a.code() != "invalid_field" || !strings.Contains(msg, tt.message) {
					t.Fatalf("%s %q, want invalid_field with %q", a.code(), msg, tt.message)
				}
				return
			}
			got, err := f.sessions.Get(context.Background(), a.json["id"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if got.Amount != tt.want.Amount || got.Currency != tt.want.Currency || got.SubmitType != tt.want.SubmitType {
				t.Fatalf("stored %d %q %q, want %d %q %q", got.Amount, got.Currency, got.SubmitType, tt.want.Amount, tt.want.Currency, tt.want.SubmitType)
			}
		})
	}
}

// TestCheckoutPagePayment: the page names the merchant (by its current
// name) and the amount, exact in the currency's decimals, and its button
// says what the session asked for; the script formats both for the locale.
func TestCheckoutPagePayment(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	tests := []struct {
		name   string
		extra  map[string]any
		want   []string
		absent []string
	}{
		{"eur", map[string]any{"amount": 2500, "currency": "EUR"},
			[]string{`data-amount="25.00"`, `data-currency="EUR"`, `data-submit-key="submit_pay_amount"`, ">Pay 25.00 EUR</button>", `id="bg-merchant" class="bg-merchant">Shop A<`, `id="bg-amount" class="bg-amount">25.00 EUR<`}, nil},
		{"jpy-fr", map[string]any{"amount": 700, "currency": "JPY", "locale": "fr"},
			[]string{`data-amount="700"`, ">Payer 700 JPY</button>"}, nil},
		{"kwd-donate", map[string]any{"amount": 5, "currency": "KWD", "submit_type": "donate"},
			[]string{`data-amount="0.005"`, ">Donate 0.005 KWD</button>"}, nil},
		{"no-amount", nil,
			[]string{`data-amount=""`, ">Save card</button>", `id="bg-merchant" class="bg-merchant">Shop A<`}, []string{`id="bg-amount"`}},
		{"continue-de", map[string]any{"submit_type": "continue", "locale": "de"},
			[]string{">Weiter</button>", `data-submit-key="submit_continue"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sid := f.newSession(t, tt.extra)
			page := f.do(t, http.MethodGet, "/checkout/"+sid, "", nil)
			if page.status != 200 {
				t.Fatalf("%d %s", page.status, page.body)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(page.body), w) {
					t.Errorf("page lacks %s", w)
				}
			}
			for _, w := range tt.absent {
				if strings.Contains(string(page.body), w) {
					t.Errorf("page has %s", w)
				}
			}
		})
	}
}

// TestSessionReferenceAndMetadata: a session's reference (the merchant's
// order number) and metadata come back with the token it makes, on the
// merchant API; a card number in either is refused pan_in_text, naming the
// field and never echoing it; other breaches of the limits are
// invalid_field with the rule.
func TestSessionReferenceAndMetadata(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	meta := map[string]any{"customer": "c_77", "channel": "web shop"}
	sid := f.newSession(t, map[string]any{"reference": "ORD-2026-0042", "metadata": meta})
	sub := f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, visa, sid)})
	tok, _ := sub.json["token"].(string)
	if sub.status != 200 || tok == "" {
		t.Fatalf("submit: %d %s", sub.status, sub.body)
	}
	got := f.do(t, http.MethodGet, "/v1/tokens/"+tok, f.secret, nil)
	if got.status != 200 || got.json["reference"] != "ORD-2026-0042" || fmt.Sprint(got.json["metadata"]) != fmt.Sprint(meta) {
		t.Fatalf("token: %d %s", got.status, got.body)
	}
	list := f.do(t, http.MethodGet, "/v1/tokens", f.secret, nil)
	if !strings.Contains(string(list.body), `"reference":"ORD-2026-0042"`) {
		t.Fatalf("list: %s", list.body)
	}
	// A session without them: no empty members in the token.
	plain := f.newSession(t, nil)
	sub = f.do(t, http.MethodPost, "/checkout/"+plain+"/submit", "", map[string]string{"card_jwe": f.kz.encrypt(t, visa, plain)})
	if got := f.do(t, http.MethodGet, "/v1/tokens/"+sub.json["token"].(string), f.secret, nil); strings.Contains(string(got.body), "reference") || strings.Contains(string(got.body), "metadata") {
		t.Fatalf("token without a reference: %s", got.body)
	}

	tests := []struct {
		name, body, code, message string
	}{
		{"400/pan_in_text/reference", `{"reference":"4242 4242 4242 4242"}`, "pan_in_text", "Field reference looks like a card number"},
		{"400/pan_in_text/metadata-value", `{"metadata":{"note":"card 4242424242424242"}}`, "pan_in_text", "Field metadata.note looks like a card number"},
		{"400/pan_in_text/metadata-key", `{"metadata":{"4242424242424242":"x"}}`, "pan_in_text", "Field metadata looks like a card number"},
		{"400/reference-too-long", `{"reference":"` + strings.Repeat("r", 129) + `"}`, "invalid_field", "reference must be at most 128 characters"},
		{"400/metadata-key-shape", `{"metadata":{"a key":"x"}}`, "invalid_field", "metadata keys must be 1 to 40 of"},
		{"400/metadata-not-strings", `{"metadata":{"n":1}}`, "bad_request", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(t, http.MethodPost, "/v1/checkout/sessions", f.secret, json.RawMessage(tt.body))
			msg, _ := a.json["error"].(map[string]any)["message"].(string)
			if a.status != http.StatusBadRequest || a.code() != tt.code || !strings.Contains(msg, tt.message) {
				t.Fatalf("%d %s, want %s with %q", a.status, a.body, tt.code, tt.message)
			}
			if strings.Contains(string(a.body), "4242") {
				t.Fatalf("the answer echoes the card number: %s", a.body)
			}
		})
	}
}
