package httpapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// nestedReq has the shape of a key-service reveal: strings and a nested
// object bound to fields, and a raw JSON document (the passkey assertion).
type nestedReq struct {
	JWE    string `json:"jwe"`
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
	Token  string `json:"token"`
	Key    struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
	} `json:"browser_key"`
	Nonce     string          `json:"nonce"`
	Assertion json.RawMessage `json:"assertion,omitempty"`
}

func (nestedReq) Validate() error { return nil }

// forwardReq has the shape of a key-service forward: a template object
// with a header map and a body that is escaped JSON.
type forwardReq struct {
	JWE         string `json:"jwe"`
	Merchant    string `json:"merchant"`
	Token       string `json:"token"`
	Destination string `json:"destination"`
	Idempotency string `json:"idempotency_key"`
	Template    struct {
		Path        string            `json:"path,omitempty"`
		Headers     map[string]string `json:"headers,omitempty"`
		ContentType string            `json:"content_type"`
		Body        string            `json:"body"`
	} `json:"template"`
	Binding string `json:"binding"`
}

func (forwardReq) Validate() error { return nil }

// benchBodies are a reveal and a forward as the gateway sends them.
func benchBodies() map[string][]byte {
	b64 := func(n int) string { return strings.Repeat("Qm", n/2) }
	jwe := "eyJ" + b64(300) + "." + b64(54) + "." + b64(16) + "." + b64(120) + "." + b64(22)
	reveal, _ := json.Marshal(map[string]any{
		"jwe": jwe, "actor": "op_0123456789", "reason": "chargeback 12345 disputed by the cardholder", "token": "tok_01HZX3Q8V5T8K2M4N6P8R0S2T4",
		"browser_key": map[string]string{"kty": "EC", "crv": "P-256", "x": b64(43), "y": b64(43)},
		"nonce":       "rvn_" + b64(43),
		"assertion": map[string]any{
			"id": b64(43), "rawId": b64(43), "type": "public-key", "authenticatorAttachment": "platform",
			"response": map[string]string{
				"clientDataJSON": b64(180), "authenticatorData": b64(50), "signature": b64(96), "userHandle": b64(43),
			},
			"clientExtensionResults": map[string]any{},
		},
	})
	forward, _ := json.Marshal(map[string]any{
		"jwe": jwe, "merchant": "m_shop", "token": "tok_01HZX3Q8V5T8K2M4N6P8R0S2T4", "destination": "stripe",
		"idempotency_key": "order-4711-charge",
		"template": map[string]any{
			"path":         "/v1/payment_methods",
			"headers":      map[string]string{"Authorization": "Bearer {{secret}}", "Stripe-Version": "2024-06-20"},
			"content_type": "application/x-www-form-urlencoded",
			"body":         `{"type":"card","card":{"number":"{{card.number}}","exp_month":"{{card.exp_month}}","exp_year":"{{card.exp_year}}","cvc":"{{card.cvc}}"},"metadata":{"order":"4711"}}`,
		},
		"binding": "bnd_" + b64(22),
	})
	return map[string][]byte{"reveal": reveal, "forward": forward}
}

// BenchmarkDuplicateKeyCheck is the duplicate-key walk of a nested body
// alone, and Bind of the same body whole (the walk and the strict decode).
func BenchmarkDuplicateKeyCheck(b *testing.B) {
	bodies := benchBodies()
	for _, name := range []string{"reveal", "forward"} {
		body := bodies[name]
		b.Run(name+"/walk", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := noDuplicateKeys(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/bind", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var err error
				if name == "reveal" {
					err = Bind(bytes.Clone(body), &nestedReq{})
				} else {
					err = Bind(bytes.Clone(body), &forwardReq{})
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
