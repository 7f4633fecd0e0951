package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProcessorChecks(t *testing.T) {
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	p := newProcessor(func() time.Time { return now })
	tests := []struct {
		name   string
		body   string
		status int
		reason string
	}{
		{"201/authorized", `{"reference":"tok_1","number":"4242424242424242","exp_month":"12","exp_year":"2029"}`, 201, ""},
		{"201/this-month", `{"reference":"tok_1","number":"4242424242424242","exp_month":"11","exp_year":"26"}`, 201, ""},
		{"201/cvc-first-time", `{"reference":"tok_2","number":"4242424242424242","exp_month":"12","exp_year":"2029","cvc":"123"}`, 201, ""},
		{"422/cvc-again", `{"reference":"tok_2","number":"4242424242424242","exp_month":"12","exp_year":"2029","cvc":"123"}`, 422, "cvc_reused"},
		{"422/cvc-short", `{"reference":"tok_3","number":"4242424242424242","exp_month":"12","exp_year":"2029","cvc":"12"}`, 422, "cvc_invalid"},
		{"422/luhn", `{"number":"4242424242424241","exp_month":"12","exp_year":"2029"}`, 422, "luhn"},
		{"422/expired", `{"number":"4242424242424242","exp_month":"10","exp_year":"2026"}`, 422, "expired"},
		{"422/month", `{"number":"4242424242424242","exp_month":"13","exp_year":"2029"}`, 422, "expiry_invalid"},
		{"422/malformed", `{`, 422, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/payments", strings.NewReader(tc.body)))
			var out map[string]string
			_ = json.Unmarshal(rec.Body.Bytes(), &out)
			if rec.Code != tc.status || out["reason"] != tc.reason || !strings.HasPrefix(out["id"], "pay_") {
				t.Fatalf("%d %v, want %d reason %q", rec.Code, out, tc.status, tc.reason)
			}
			// The echo the key service must redact.
			if tc.status == 201 && (out["card_echo"] != "4242424242424242" || out["last4"] != "4242") {
				t.Errorf("answer %v lacks the echo and last 4", out)
			}
		})
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stats", nil))
	var st Stats
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Requests != len(tests) || st.Authorized != 3 || st.WithCVC != 3 {
		t.Fatalf("stats %+v %v", st, err)
	}
}

func TestCAVerifiesTheServer(t *testing.T) {
	caPEM, cert, err := newCA([]string{"processor", "127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(newProcessor(time.Now))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA PEM")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(srv.URL + "/stats")
	if err != nil {
		t.Fatalf("a client trusting only the written CA: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /stats = %d", resp.StatusCode)
	}
}
