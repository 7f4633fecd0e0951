package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/destinations"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// POST /v1/forward: only a client granted forward may call it, and its
// refusals come back with the forward codes. The destination is a
// processor key, so nothing leaves the process.
func TestForwardEndpoint(t *testing.T) {
	proc, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jose.MarshalPublicJWK(&proc.PublicKey, "proc-1")
	if err != nil {
		t.Fatal(err)
	}
	list := destinations.New(t.TempDir())
	if err := list.Add(destinations.Destination{ID: "enc", ProcessorKey: jwk, Merchants: []string{"m_1", "m_2"},
		// The bodies below join month and year in one field.
		CardFields: &destinations.CardFields{Any: true}}); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{}
	ts.Zone = kstest.NewZone(t, kstest.Options{
		Clients: []kstest.Client{
			{ID: "gateway", Ops: []string{wire.OpInspect, wire.OpRewrap}},
			{ID: "forward", Ops: []string{wire.OpForward}},
		},
		Destinations: list,
	})
	jwe := ts.cardJWE(t, testPAN, "cs_1", time.Now().Add(-72*time.Hour))
	// A stored card, bound to m_1 when it was captured (inspect).
	bnd := ts.Keyring.Binding("m_1", []byte(jwe))
	req := func(dest, key, body string) wire.ForwardRequest {
		return wire.ForwardRequest{JWE: jwe, Merchant: "m_1", Token: "tok_1", Destination: dest, IdempotencyKey: key, Binding: bnd,
			Template: wire.ForwardTemplate{ContentType: wire.ContentTypeJSON, Body: body}}
	}
	const body = `{"number":"{{card.number}}","exp":"{{card.exp_month}}/{{card.exp_year}}"}`
	// R11: the caller holds the forward key and names m_2, which the
	// destination allows; the card is m_1's.
	otherMerchant := req("enc", "k6", body)
	otherMerchant.Merchant = "m_2"
	otherCiphertext := req("enc", "k7", body)
	otherCiphertext.Binding = ts.Keyring.Binding("m_1", []byte(ts.cardJWE(t, testPAN, "cs_2", time.Now())))

	for _, tc := range []struct {
		name   string
		signer string
		req    wire.ForwardRequest
		status int
		code   string
	}{
		{"403/op-not-granted", "gateway", req("enc", "k1", body), 403, "forbidden"},
		{"403/destination", "forward", req("nope", "k2", body), 403, "destination_not_allowed"},
		{"400/template", "forward", req("enc", "k3", `{"a":"{{card.pin}}"}`), 400, "template_invalid"},
		{"422/cvc-unavailable", "forward", req("enc", "k4", `{"c":"{{card.cvc}}"}`), 422, "cvc_unavailable"},
		{"403/card-of-another-merchant", "forward", otherMerchant, 403, "card_not_bound"},
		{"403/binding-of-another-ciphertext", "forward", otherCiphertext, 403, "card_not_bound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := ts.call(t, ts.Signer(t, tc.signer), "POST", wire.PathForward, tc.req)
			if resp.StatusCode != tc.status || errCode(m) != tc.code {
				t.Fatalf("got %d %v", resp.StatusCode, m)
			}
			if tc.code != "card_not_bound" {
				return
			}
			// Refused before the audit record that precedes a decrypt.
			for _, e := range ts.Events(t, audit.Filter{}) {
				if e.Reason == "destination=enc idempotency_key="+tc.req.IdempotencyKey && e.Event != audit.EventForwardDenied {
					t.Fatalf("audit %+v", e)
				}
			}
			if evs := ts.Events(t, audit.Filter{Event: audit.EventForwardDenied}); len(evs) == 0 || evs[0].Code != "card_not_bound" {
				t.Fatalf("no forward.denied card_not_bound record: %+v", evs)
			}
		})
	}

	resp, m := ts.call(t, ts.Signer(t, "forward"), "POST", wire.PathForward, req("enc", "k5", body))
	enc, _ := m["jwe"].(string)
	if resp.StatusCode != 200 || enc == "" {
		t.Fatalf("forward: %d %v", resp.StatusCode, m)
	}
	_, pt, err := jose.Decrypt([]byte(enc), proc)
	if err != nil || !strings.Contains(string(pt), testPAN) {
		t.Fatalf("the processor cannot read it: %v", err)
	}
	// The same key with another body is refused; with the same body, replayed.
	if resp, m := ts.call(t, ts.Signer(t, "forward"), "POST", wire.PathForward, req("enc", "k5", `{"n":"{{card.number}}"}`)); resp.StatusCode != 422 || errCode(m) != "idempotency_mismatch" {
		t.Fatalf("mismatch: %d %v", resp.StatusCode, m)
	}
	resp, m = ts.call(t, ts.Signer(t, "forward"), "POST", wire.PathForward, req("enc", "k5", body))
	if resp.StatusCode != 200 || m["replayed"] != true || m["jwe"] != enc {
		t.Fatalf("replay: %d %v", resp.StatusCode, m)
	}
	b, _ := json.Marshal(m)
	if strings.Contains(string(b), testPAN) {
		t.Fatal("answer holds the card number")
	}
}
