package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/gateway/tokens"
)

// TestTokensReindex: a store written before the search index (its index
// buckets gone) is building until `tokens reindex` lists its tokens; the
// searches answer the same before and after.
func TestTokensReindex(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "gw.db")
	open := func() (*bolt.DB, *tokens.Bolt) {
		t.Helper()
		db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		s, err := tokens.NewBolt(db)
		if err != nil {
			t.Fatal(err)
		}
		return db, s
	}
	ctx := context.Background()
	db, s := open()
	for i := range 30 {
		tok := tokens.Token{
			MerchantID: []string{"m_alpha", "m_beta"}[i%2], Kid: "kek-1", Brand: "visa",
			JWE: "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.a2V5.aXY." + fmt.Sprintf("card%d", i) + ".dGFn",
			BIN: "424242", Last4: fmt.Sprintf("%04d", 4000+i%3), ExpMonth: 1, ExpYear: 2030,
		}
		if _, _, err := s.Put(ctx, tok, "", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	// As a version without the index left it: no index buckets.
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{"tok_ix", "tok_ixready"} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	db, s = open()
	q := tokens.Query{Last4: "4001"}
	before, err := s.Search(ctx, q)
	if err != nil || len(before) != 10 {
		t.Fatalf("search before reindex: %d %v", len(before), err)
	}
	if st, err := s.IndexStatus(ctx, ""); err != nil || st != (tokens.IndexStatus{Merchants: 2, Building: 2}) {
		t.Fatalf("status before reindex: %+v %v", st, err)
	}
	_ = db.Close()

	var out, errw bytes.Buffer
	if err := run(ctx, []string{"tokens", "reindex", "-store", "bolt", "-bolt", dbPath, "-rate", "0"}, &out, &errw); err != nil {
		t.Fatalf("reindex: %v\n%s%s", err, out.String(), errw.String())
	}
	for _, want := range []string{"reindex: seen 30, listed 30, skipped 0, merchants complete 2\n", "search index complete for 2 merchants\n"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output %q lacks %q", out.String(), want)
		}
	}

	db, s = open()
	defer db.Close()
	if st, err := s.IndexStatus(ctx, ""); err != nil || !st.Ready() {
		t.Fatalf("status after reindex: %+v %v", st, err)
	}
	after, err := s.Search(ctx, q)
	if err != nil || len(after) != len(before) {
		t.Fatalf("search after reindex: %d %v", len(after), err)
	}
	for i := range after {
		if after[i].ID != before[i].ID {
			t.Fatalf("search after reindex differs at %d", i)
		}
	}
	if err := run(ctx, []string{"tokens", "reindex", "-rate", "-1"}, &out, &errw); err == nil {
		t.Fatal("a negative rate accepted")
	}
}
