package bench

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"

	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// TestRevealDriver runs the bench's reveal path against the real key
// service (in this process, on Redis): nonces, the approved passkey's
// assertions, the reveal, and every answer opened with the browser key.
func TestRevealDriver(t *testing.T) {
	rdb := testenv.Redis(t)
	dir := t.TempDir()
	fx, err := newFixture(dir, keyring.AlgECDHP256)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve, _, err := keyService(childConfig{Role: RoleKeyService, Dir: dir, Redis: rdb.Options().Addr, RedisDB: rdb.Options().DB, LogLevel: "error"}, ln, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	jwe, err := fx.cardJWE("cs_bench")
	if err != nil {
		t.Fatal(err)
	}
	d := &revealDriver{hc: newHost(ln.Addr().String()), base: "http://" + ln.Addr().String(), jwe: string(jwe), fx: fx, presign: true}
	if err := d.prepare(ctx, 3); err != nil {
		t.Fatal(err)
	}
	for i := range 5 { // two beyond what was prepared: made inline
		if err := d.send(ctx); err != nil {
			t.Fatalf("reveal %d: %v", i, err)
		}
	}
	if d.inline() != 2 {
		t.Fatalf("inline %d, want 2", d.inline())
	}
	// The check is a real one: an answer for another nonce is refused.
	it, err := d.newItem(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	var out wire.RevealResponse
	if err := post(d.hc, wire.PathReveal, it.body, map[string]string{"Authorization": it.auth}, &out); err != nil {
		t.Fatal(err)
	}
	if err := d.check(out, "rvn_other"); !errors.Is(err, errBadAnswer) {
		t.Fatalf("check = %v, want errBadAnswer", err)
	}
	// A replayed body is refused by the key service (its nonce is spent).
	it.auth, _ = fx.backoffice.Authorization("POST", d.base+wire.PathReveal, it.body)
	var he *httpError
	if err := post(d.hc, wire.PathReveal, it.body, map[string]string{"Authorization": it.auth}, nil); !errors.As(err, &he) || he.code != "reveal_nonce_invalid" {
		t.Fatalf("replay: %v", err)
	}
}
