package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/webhooks"
)

func TestWebhookEndpointsAPI(t *testing.T) {
	f := newTestServer(t, fixtureOpt{})
	const base = "/v1/webhooks/endpoints"

	created := f.do(t, http.MethodPost, base, f.secret, map[string]any{"url": "https://hooks.shop-a.example/in"}, "Idempotency-Key", "ep-1")
	secret, _ := created.json["secret"].(string)
	id, _ := created.json["id"].(string)
	if created.status != 201 || !strings.HasPrefix(secret, webhooks.SecretPrefix) || !webhooks.ValidID(id) {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	// The retry replays the sealed answer: same endpoint, same secret, no second one.
	again := f.do(t, http.MethodPost, base, f.secret, map[string]any{"url": "https://hooks.shop-a.example/in"}, "Idempotency-Key", "ep-1")
	if again.status != 201 || again.json["id"] != id || again.json["secret"] != secret || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s", again.status, again.body)
	}
	list := f.do(t, http.MethodGet, base, f.secret, nil)
	if list.status != 200 || strings.Contains(string(list.body), secret) || strings.Count(string(list.body), `"id"`) != 1 {
		t.Fatalf("list: %d %s", list.status, list.body)
	}
	if other := f.do(t, http.MethodGet, base, f.otherKey, nil); strings.Contains(string(other.body), id) {
		t.Fatalf("another merchant lists it: %s", other.body)
	}
	if a := f.do(t, http.MethodDelete, base+"/"+id, f.otherKey, nil); a.status != 404 {
		t.Fatalf("another merchant deletes it: %d %s", a.status, a.body)
	}

	for name, u := range map[string]string{
		"400/http-public":  "http://hooks.shop-a.example/in",
		"400/private-ip":   "https://10.0.0.1/in",
		"400/metadata":     "https://169.254.169.254/latest/meta-data",
		"400/pan-in-query": "https://hooks.shop-a.example/in?c=4242424242424242",
		"400/empty":        "",
	} {
		a := f.do(t, http.MethodPost, base, f.secret, map[string]any{"url": u})
		if a.status != 400 || a.code() != "invalid_field" || (u != "" && strings.Contains(string(a.body), u)) {
			t.Errorf("%s: %d %s", name, a.status, a.body)
		}
	}
	if a := f.do(t, http.MethodGet, "/v1/webhooks/deliveries?limit=0", f.secret, nil); a.status != 400 {
		t.Fatalf("limit 0: %d", a.status)
	}
	if a := f.do(t, http.MethodDelete, base+"/"+id, f.secret, nil); a.status != 204 {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if a := f.do(t, http.MethodDelete, base+"/"+id, f.secret, nil); a.status != 404 {
		t.Fatalf("delete again: %d", a.status)
	}
}

// TestTokenCreatedWebhook: a paid checkout sends one signed token.created to
// the merchant's endpoint, visible in the delivery log; a retry of the same
// submission sends none.
func TestTokenCreatedWebhook(t *testing.T) {
	var mu sync.Mutex
	var got []string
	var sigs []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, sigs = append(got, string(b)), append(sigs, r.Header.Get(webhooks.HeaderSignature))
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	f := newTestServer(t, fixtureOpt{})
	ep := f.do(t, http.MethodPost, "/v1/webhooks/endpoints", f.secret, map[string]any{"url": recv.URL + "/hooks"})
	if ep.status != 201 {
		t.Fatalf("endpoint: %d %s", ep.status, ep.body)
	}
	sid := f.newSession(t, nil)
	jwe := f.kz.encrypt(t, "4242424242424242", sid)
	for range 2 {
		if a := f.do(t, http.MethodPost, "/checkout/"+sid+"/submit", "", map[string]string{"card_jwe": jwe}); a.status != 200 {
			t.Fatalf("submit: %d %s", a.status, a.body)
		}
	}
	f.hooks.RunOnce(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !strings.Contains(got[0], `"type":"token.created"`) || strings.Contains(got[0], jwe) || strings.Contains(got[0], "4242424242424242") {
		t.Fatalf("received %q", got)
	}
	if err := webhooks.Verify([]string{ep.json["secret"].(string)}, sigs[0], []byte(got[0]), time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	log := f.do(t, http.MethodGet, "/v1/webhooks/deliveries", f.secret, nil)
	if log.status != 200 || !strings.Contains(string(log.body), `"status":"succeeded"`) || strings.Contains(string(log.body), "token.created\",\"data") {
		t.Fatalf("log: %d %s", log.status, log.body)
	}
}
