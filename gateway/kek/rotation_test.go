package kek

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/rotation"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// TestScheduledRotationReachesThePage: a real key service rotates by age
// (fake clock); the gateway's cache keeps serving the old public key until
// its refresh is due and then serves the new one only. A card the page
// encrypted to the old key in between still gets its token: the old
// version decrypts until it is retired.
func TestScheduledRotationReachesThePage(t *testing.T) {
	ctx := context.Background()
	z := kstest.NewZone(t, kstest.Options{Listen: true, Clients: []kstest.Client{{ID: "gateway", Ops: []string{wire.OpInspect}}}})
	ks := z.Client(t, "gateway")
	const maxAge = 90 * 24 * time.Hour
	ksNow := time.Now().Add(maxAge) // the first version is due
	r, err := rotation.New(z.Holder, rotation.Config{MaxAge: maxAge, Now: func() time.Time { return ksNow }, Audit: z.Audit})
	if err != nil {
		t.Fatal(err)
	}

	c := New(ks, 30*time.Second, time.Hour)
	gwNow := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return gwNow }
	kidOf := func() (string, jose.PublicKey) {
		t.Helper()
		b, err := c.JWKS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := jose.ParseJWKS(b)
		if err != nil || len(keys) != 1 {
			t.Fatalf("JWKS %s: %v", b, err)
		}
		return keys[0].Kid, keys[0]
	}
	oldKid, oldKey := kidOf()

	v, rotated, err := r.Check(ctx)
	if err != nil || !rotated || v.Kid == oldKid {
		t.Fatalf("rotation: %+v rotated=%v err=%v", v, rotated, err)
	}
	gwNow = gwNow.Add(29 * time.Second)
	if kid, _ := kidOf(); kid != oldKid {
		t.Fatalf("cache refreshed early: %s", kid)
	}
	// A page that fetched the old set encrypts to it now.
	pt := fmt.Sprintf(`{"pan":"4242424242424242","exp_month":12,"exp_year":%d,"name":"","iat":%d}`, time.Now().Year()+2, time.Now().Unix())
	jwe, err := jose.Encrypt([]byte(pt), oldKey.Key, oldKey.Kid, map[string]string{jose.HeaderSessionID: "cs_rot"})
	if err != nil {
		t.Fatal(err)
	}
	gwNow = gwNow.Add(time.Second)
	if kid, _ := kidOf(); kid != v.Kid {
		t.Fatalf("after the refresh interval the page gets %s, want the new %s", kid, v.Kid)
	}
	if kids, err := c.Kids(ctx); err != nil || len(kids) != 1 || kids[0] != v.Kid {
		t.Fatalf("Kids = %v, %v; want [%s] (what the background rewrap keeps)", kids, err, v.Kid)
	}
	out, err := ks.Inspect(ctx, wire.InspectRequest{JWE: string(jwe), Session: "cs_rot", Merchant: "m_rot"})
	if err != nil || out.Kid != oldKid {
		t.Fatalf("inspect under the previous version: %+v %v", out, err)
	}
}
