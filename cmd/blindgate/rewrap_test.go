package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/gateway/rewrap"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// rewrapFixture is a key service on loopback and a gateway bbolt file
// holding n tokens under the key service's first version, which is then
// rotated. It returns the gateway flags for the admin commands.
func rewrapFixture(t *testing.T, n int) (z *kstest.Zone, flags []string, oldKid string) {
	t.Helper()
	z = kstest.NewZone(t, kstest.Options{Listen: true, Clients: []kstest.Client{{ID: "gateway", Ops: []string{wire.OpInspect, wire.OpRewrap}}}})
	dir := t.TempDir()
	signer := z.Signer(t, "gateway")
	keyJWK, err := jose.MarshalPrivateJWK(signer.Key, signer.Kid)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "gateway.jwk")
	if err := os.WriteFile(keyFile, keyJWK, 0o600); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "gw.db")
	db, err := bolt.Open(dbPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := tokens.NewBolt(db)
	if err != nil {
		t.Fatal(err)
	}
	oldKid = z.Keyring.Newest().Kid
	for i := range n {
		pt := fmt.Sprintf(`{"pan":"4242424242424242","exp_month":1,"exp_year":2031,"name":"","iat":%d}`, time.Now().Unix())
		jwe := z.Encrypt(t, pt, "cs_cli")
		tok := tokens.Token{MerchantID: fmt.Sprintf("m_shop%d", i%2), JWE: jwe, Kid: oldKid, Brand: "visa", BIN: "424242", Last4: "4242", ExpMonth: 1, ExpYear: 2031, Fingerprint: "fp_x"}
		if _, _, err := st.Put(context.Background(), tok, "", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := z.Keyring.Rotate(""); err != nil {
		t.Fatal(err)
	}
	flags = []string{"-store", "bolt", "-bolt", dbPath, "-keyservice-url", z.URL, "-keyservice-audience", kstest.Audience,
		"-checkout-client-id", "gateway", "-checkout-key", keyFile}
	return z, flags, oldKid
}

// TestRewrapCommand: `blindgate rewrap -kid` moves every token, prints the
// one result line scripts read (and no progress on standard output), and a
// second run finds nothing left.
func TestRewrapCommand(t *testing.T) {
	_, flags, oldKid := rewrapFixture(t, 7)
	var out, errb bytes.Buffer
	if err := run(context.Background(), append([]string{"rewrap", "-kid", oldKid, "-rewrap-rate", "0"}, flags...), &out, &errb); err != nil {
		t.Fatalf("rewrap: %v\n%s%s", err, out.String(), errb.String())
	}
	want := fmt.Sprintf("rewrap %s: moved 7, skipped 0, failed 0, refreshed 0, unchanged 0\n", oldKid)
	if out.String() != want {
		t.Fatalf("stdout %q, want %q", out.String(), want)
	}
	out.Reset()
	if err := run(context.Background(), append([]string{"rewrap", "-kid", oldKid}, flags...), &out, &errb); err != nil || !strings.Contains(out.String(), "moved 0,") {
		t.Fatalf("second run: %v %q", err, out.String())
	}
}

// TestProgressDisplay: on a terminal the bar is redrawn in place at most
// every 200 ms; elsewhere a line every 10 s; counts read "12 moved", never
// like the result line's "moved 12".
func TestProgressDisplay(t *testing.T) {
	pr := rewrap.Progress{Scope: "kid:kek-1", Total: 200, Result: rewrap.Result{Moved: 40}}
	t.Run("bar", func(t *testing.T) {
		if got := barLine(rewrap.Progress{Scope: "kid:k", Total: 10, Seen: 5, Result: rewrap.Result{Moved: 5}}, 10, 90*time.Second); got != "rewrap kid:k [#####.....]  50%  5/10 tokens  5 moved  0 refreshed  0 failed  eta 1m30s  " {
			t.Fatalf("bar %q", got)
		}
	})
	for _, tty := range []bool{true, false} {
		t.Run(fmt.Sprintf("tty=%v", tty), func(t *testing.T) {
			var buf bytes.Buffer
			now := time.Unix(1_000_000, 0)
			p := &progress{w: &buf, tty: tty, now: func() time.Time { return now }, every: 10 * time.Second}
			if tty {
				p.every = 200 * time.Millisecond
			}
			draws := 0
			for i := 1; i <= 100; i++ {
				pr.Seen = i
				now = now.Add(100 * time.Millisecond) // 10 tokens a second
				p.update(pr)
			}
			if tty {
				draws = strings.Count(buf.String(), "\r")
			} else {
				draws = strings.Count(buf.String(), "\n")
			}
			want := 50 // every other token over 10 s
			if !tty {
				want = 0 // the first line comes after 10 s: 9.9 s have passed since the first token
			}
			if draws != want {
				t.Fatalf("%d draws, want %d:\n%s", draws, want, buf.String())
			}
			if strings.Contains(buf.String(), "moved 4") {
				t.Fatalf("a progress line reads like the result line: %q", buf.String())
			}
			pr.Seen = 200
			now = now.Add(10 * time.Second)
			p.update(pr)
			if !strings.Contains(buf.String(), "100%") && !strings.Contains(buf.String(), "(200 of 200") {
				t.Fatalf("no line at the end: %q", buf.String())
			}
		})
	}
}

// TestTokensCountByKid: the count the key service's `keys retire` reads:
// tokens by version, before and after the rewrap, for the deployment named.
func TestTokensCountByKid(t *testing.T) {
	z, flags, oldKid := rewrapFixture(t, 5)
	newKid := z.Keyring.Newest().Kid
	store := flags[:4] // -store bolt -bolt <file>
	countFile := filepath.Join(t.TempDir(), "counts.json")
	count := func() wire.TokenCounts {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"tokens", "count-by-kid", "-keyservice-audience", "ks_test", "-out", countFile}, store...), &out, &out); err != nil {
			t.Fatalf("count-by-kid: %v\n%s", err, out.String())
		}
		b, err := os.ReadFile(countFile)
		if err != nil {
			t.Fatal(err)
		}
		c, err := wire.ParseTokenCounts(b)
		if err != nil || c.Audience != "ks_test" || c.Total != 5 {
			t.Fatalf("count file %s: %v", b, err)
		}
		return c
	}
	if c := count(); c.Kids[oldKid] != 5 {
		t.Fatalf("before the rewrap: %v", c.Kids)
	}
	var out bytes.Buffer
	if err := run(context.Background(), append([]string{"rewrap", "-kid", oldKid}, flags...), &out, &out); err != nil {
		t.Fatalf("rewrap: %v\n%s", err, out.String())
	}
	c := count()
	if c.Kids[oldKid] != 0 || c.Kids[newKid] != 5 {
		t.Fatalf("after the rewrap: %v", c.Kids)
	}
	// What the key service will check, were the rotation 3 hours old.
	if err := c.AllowsRetire(oldKid, "ks_test", time.Now().Add(-3*time.Hour), time.Now()); err != nil {
		t.Fatalf("the count does not allow the retirement: %v", err)
	}
	if err := run(context.Background(), append([]string{"tokens", "count-by-kid", "-out", countFile}, store...), &out, &out); err == nil {
		t.Fatal("-out without -keyservice-audience accepted")
	}
}
