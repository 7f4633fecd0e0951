package backofficehttp_test

import (
	"context"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/tokens"
)

// TestBackofficeSearchIndexBuilding: while a merchant's tokens are not in
// the search index (a store written before it, `blindgate tokens reindex`
// not run yet) the search page finds the same tokens and says the index is
// being built, to the operators who may see that merchant only; after the
// reindex it says nothing.
func TestBackofficeSearchIndexBuilding(t *testing.T) {
	f := newFixture(t, fixtureOpts{noKS: true})
	f.addOperator(t, "paul", operators.RoleViewer, "", true)
	f.addOperator(t, "bella", operators.RoleViewer, merchB, true)
	// As a version without the index left merchant A: no completeness mark.
	if err := f.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("tok_ixready")).Delete([]byte(merchA))
	}); err != nil {
		t.Fatal(err)
	}
	const notice = `id="bo-index-building"`
	search := func(c *webClient, query string) string {
		t.Helper()
		r := c.get(t, "/backoffice/tokens?"+query)
		if r.status != 200 {
			t.Fatalf("status %d\n%.400s", r.status, r.body)
		}
		return r.body
	}
	paul, bella := f.client(), f.client()
	paul.login(t, "paul")
	bella.login(t, "bella")
	for _, q := range []string{"last4=4242", "bin=424242", "brand=visa"} {
		body := search(paul, q)
		if !strings.Contains(body, notice) || !strings.Contains(body, f.tokA.ID) || !strings.Contains(body, f.tokA2.ID) {
			t.Fatalf("platform search %s while A is building: notice %v, tokA %v, tokA2 %v", q,
				strings.Contains(body, notice), strings.Contains(body, f.tokA.ID), strings.Contains(body, f.tokA2.ID))
		}
	}
	if body := search(bella, "last4=4444"); strings.Contains(body, notice) || !strings.Contains(body, f.tokB.ID) {
		t.Fatal("merchant B's operator told about merchant A's index, or B's token missing")
	}

	if _, err := tokens.Reindex(context.Background(), f.toks, tokens.ReindexOptions{}); err != nil {
		t.Fatal(err)
	}
	if body := search(paul, "last4=4242"); strings.Contains(body, notice) || !strings.Contains(body, f.tokA.ID) {
		t.Fatal("notice after the reindex, or tokA missing")
	}
}
