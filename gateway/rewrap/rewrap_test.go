package rewrap

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/unwrap"
	"github.com/blindgate/blindgate/keyservice/wire"
)

type keys struct{ kr *keyring.Keyring }

func (k keys) Keyring() (*keyring.Keyring, error) { return k.kr, nil }

// inProcess is the real key-service domain behind the Rewrapper interface.
type inProcess struct{ svc *unwrap.Service }

func (p inProcess) Rewrap(ctx context.Context, req wire.RewrapRequest) (wire.RewrapResponse, error) {
	if err := req.Validate(); err != nil {
		return wire.RewrapResponse{}, &client.Error{Status: 400, Code: "invalid_field"}
	}
	out, err := p.svc.Rewrap(ctx, unwrap.Meta{Client: "gateway"}, unwrap.RewrapInput{JWE: req.JWE, Merchant: req.Merchant, Resource: req.Token, Refresh: req.Refresh, Binding: req.Binding})
	if err != nil {
		return wire.RewrapResponse{}, &client.Error{Status: 422, Code: "card_undecryptable", Message: err.Error()}
	}
	return wire.RewrapResponse{JWE: out.JWE, Kid: out.Kid, Brand: out.Brand, BIN: out.BIN, Last4: out.Last4, Fingerprint: out.Fingerprint, Binding: out.Binding}, nil
}

func TestRunMovesTokensForward(t *testing.T) {
	ctx := context.Background()
	kr, err := keyring.New(keyring.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(filepath.Join(t.TempDir(), "a.log"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	svc := unwrap.New(keys{kr}, al, ratelimit.NewMemory(), slog.New(slog.NewTextHandler(io.Discard, nil)), unwrap.Config{})
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := tokens.NewBolt(db)
	if err != nil {
		t.Fatal(err)
	}
	oldKid := kr.Newest().Kid
	pub := kr.PublicKeys()[0]
	var ids []string
	for i := 0; i < 5; i++ {
		pt := fmt.Sprintf(`{"pan":"4242424242424242","exp_month":1,"exp_year":2031,"name":"","iat":%d}`, time.Now().Unix())
		jwe, err := jose.Encrypt([]byte(pt), pub.Key, pub.Kid, map[string]string{jose.HeaderSessionID: "cs_1"})
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := st.Put(ctx, tokens.Token{MerchantID: "m_aaaaaaaaaaaaaaaaaaaaaaaaaa", JWE: string(jwe), Kid: oldKid, Brand: "visa", BIN: "42424242", Last4: "4242", ExpMonth: 1, ExpYear: 2031, Fingerprint: "fp_x", CreatedAt: time.Now()}, "", 0, fmt.Sprint("idem", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tok.ID)
	}
	// A token whose ciphertext is garbage is counted as failed, not fatal.
	if _, _, err := st.Put(ctx, tokens.Token{MerchantID: "m_aaaaaaaaaaaaaaaaaaaaaaaaaa", JWE: "eyJhbGciOiJ4In0.a.b.c.d", Kid: oldKid, Brand: "visa", BIN: "42424242", Last4: "4242", ExpMonth: 1, ExpYear: 2031, Fingerprint: "fp_x", CreatedAt: time.Now()}, "", 0, "idem-bad"); err != nil {
		t.Fatal(err)
	}
	newest, err := kr.Rotate("")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, st, inProcess{svc}, oldKid)
	if err != nil {
		t.Fatal(err)
	}
	if res.Moved != 5 || res.Failed != 1 || res.Skipped != 0 {
		t.Fatalf("result %+v", res)
	}
	for _, id := range ids {
		tok, err := st.Lookup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := jose.ParseHeader([]byte(tok.JWE))
		if err != nil || tok.Kid != newest.Kid || hdr.Kid != newest.Kid {
			t.Fatalf("token %s still under %s / %s", id, tok.Kid, hdr.Kid)
		}
	}
	// Running again finds nothing left to move under the old version but the bad one.
	res, err = Run(ctx, st, inProcess{svc}, oldKid)
	if err != nil || res.Moved != 0 || res.Failed != 1 {
		t.Fatalf("second run %+v %v", res, err)
	}
}

// TestRunAllRefreshesMaskedFields: tokens stored with the old scheme (BIN 8,
// an unscoped "fp_" fingerprint) and already under the newest KEK get the
// key service's current fields; fingerprints are per merchant.
func TestRunAllRefreshesMaskedFields(t *testing.T) {
	ctx := context.Background()
	kr, err := keyring.New(keyring.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(filepath.Join(t.TempDir(), "a.log"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	svc := unwrap.New(keys{kr}, al, ratelimit.NewMemory(), slog.New(slog.NewTextHandler(io.Discard, nil)), unwrap.Config{})
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := tokens.NewBolt(db)
	if err != nil {
		t.Fatal(err)
	}
	pub := kr.PublicKeys()[0]
	put := func(merchant string) tokens.Token {
		pt := fmt.Sprintf(`{"pan":"4242424242424242","exp_month":1,"exp_year":2031,"name":"","iat":%d}`, time.Now().Unix())
		jwe, err := jose.Encrypt([]byte(pt), pub.Key, pub.Kid, map[string]string{jose.HeaderSessionID: "cs_1"})
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := st.Put(ctx, tokens.Token{MerchantID: merchant, JWE: string(jwe), Kid: pub.Kid, Brand: "visa", BIN: "42424242", Last4: "4242", ExpMonth: 1, ExpYear: 2031, Fingerprint: "fp_sameEverywhere", CreatedAt: time.Now()}, "", 0, "")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	a, b := put("m_aaaaaaaaaaaaaaaaaaaaaaaaaa"), put("m_bbbbbbbbbbbbbbbbbbbbbbbbbb")
	res, err := RunAll(ctx, st, inProcess{svc})
	if err != nil || res.Refreshed != 2 || res.Failed != 0 {
		t.Fatalf("run all: %+v %v", res, err)
	}
	ga, _ := st.Lookup(ctx, a.ID)
	gb, _ := st.Lookup(ctx, b.ID)
	for _, g := range []tokens.Token{ga, gb} {
		if g.BIN != "424242" || g.Last4 != "4242" || g.Kid != pub.Kid || g.JWE != a.JWE && g.JWE != b.JWE {
			t.Fatalf("refreshed token %v", g)
		}
		if g.Fingerprint == "fp_sameEverywhere" || len(g.Fingerprint) < 10 || g.Fingerprint[:4] != "fpm_" {
			t.Fatalf("fingerprint not refreshed: %s", g.Fingerprint)
		}
	}
	if ga.Fingerprint == gb.Fingerprint {
		t.Fatal("the same card at two merchants has one fingerprint")
	}
	// Idempotent: a second pass finds everything up to date.
	if res, err := RunAll(ctx, st, inProcess{svc}); err != nil || res.Unchanged != 2 || res.Refreshed != 0 {
		t.Fatalf("second run all: %+v %v", res, err)
	}
}
