package app

import (
	"context"
	"net/http"
	"testing"
)

// TestCheckoutNeedsItsAuditRecord: with the gateway's audit log failing, a
// checkout is refused (503 unavailable, the page's "retry later") and no
// token is stored: a token exists only with its token.create record.
func TestCheckoutNeedsItsAuditRecord(t *testing.T) {
	g := newCheckoutGateway(t, nil, nil, nil)
	sid, err := g.session(t)
	if err != nil {
		t.Fatal(err)
	}
	_ = g.app.audit.Close()
	if st, m := g.submit(t, sid); st != http.StatusServiceUnavailable || errCode(m) != "unavailable" {
		t.Fatalf("checkout with the audit log failing: %d %v, want 503 unavailable", st, m)
	}
	ms, err := g.app.stores.Merchants.List(context.Background())
	if err != nil || len(ms) != 1 {
		t.Fatalf("merchants: %v %v", ms, err)
	}
	if toks, _, err := g.app.stores.Tokens.List(context.Background(), ms[0].ID, "", 10); err != nil || len(toks) != 0 {
		t.Fatalf("tokens stored without their record: %v %v", toks, err)
	}
}
