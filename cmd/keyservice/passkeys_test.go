package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/passkey/passkeytest"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/passkeys"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// TestPasskeyApprovalEndToEnd runs the real service and the real admin
// command on one registry: the back office (holding the signing key a
// compromised gateway would hold) registers a passkey, which stays pending
// and approves nothing; `keyservice passkeys approve <fingerprint>` in the
// key zone makes it work, audited; `revoke` ends it.
func TestPasskeyApprovalEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if out, err := runCmd(t, "", "clients", "add", "-clients", p("clients.json"), "-id", "backoffice", "-ops", "reveal,audit", "-private-key-out", p("backoffice.jwk"), "-audit-log", p("audit.log")); err != nil {
		t.Fatalf("clients add: %v\n%s", err, out)
	}
	cfg := devConfig(t, dir)
	a, err := newApp(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ln := mustListen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	kid, key, err := client.LoadKeyFile(p("backoffice.jwk"))
	if err != nil {
		t.Fatal(err)
	}
	c := client.New("http://"+ln.Addr().String(), &client.Signer{ClientID: "backoffice", Kid: kid, Audience: "blindgate-keyservice", Key: key}, nil)

	// The registration, as the gateway forwards it.
	auth, err := passkeytest.New("localhost", "http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := c.PasskeyChallenge(ctx, wire.PasskeyChallengeRequest{Actor: "op_rita"})
	if err != nil {
		t.Fatal(err)
	}
	att, _ := auth.Create(wire.EnrolChallenge(ch.Nonce, "op_rita"), wire.UserHandle("op_rita"))
	reg, err := c.RegisterPasskey(ctx, wire.PasskeyRegisterRequest{Actor: "op_rita", Username: "Rita", Nonce: ch.Nonce, Attestation: att})
	if err != nil || reg.Status != wire.PasskeyPending {
		t.Fatalf("register: %+v %v", reg, err)
	}

	jwe := encryptCard(t, c)
	reveal := func() error {
		_, err := kstest.Reveal(t, c, auth, wire.RevealRequest{JWE: jwe, Actor: "op_rita", Reason: "chargeback 1", Token: "tok_1"})
		return err
	}
	var ce *client.Error
	if err := reveal(); !errors.As(err, &ce) || ce.Code != "passkey_required" {
		t.Fatalf("reveal with a pending passkey: %v, want passkey_required", err)
	}

	out, err := runCmd(t, "", "passkeys", "list", "-passkeys", p("passkeys.json"), "-pending")
	if err != nil || !strings.Contains(out, reg.Fingerprint) || !strings.Contains(out, "pending") || !strings.Contains(out, "op_rita") {
		t.Fatalf("list -pending: %v\n%s", err, out)
	}
	out, err = runCmd(t, "", "passkeys", "approve", "-passkeys", p("passkeys.json"), "-audit-log", p("audit.log"), strings.ToLower(reg.Fingerprint))
	if err != nil || !strings.Contains(out, "approved "+reg.Fingerprint) {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	if err := reveal(); err != nil {
		t.Fatalf("reveal after approval: %v", err)
	}
	if _, err := runCmd(t, "", "passkeys", "approve", "-passkeys", p("passkeys.json"), "-audit-log", p("audit.log"), reg.Credential); err == nil {
		t.Fatal("approved an approved passkey again")
	}
	if out, err := runCmd(t, "", "passkeys", "revoke", "-passkeys", p("passkeys.json"), "-audit-log", p("audit.log"), reg.Credential); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if err := reveal(); !errors.As(err, &ce) || ce.Code != "passkey_required" {
		t.Fatalf("reveal after revocation: %v", err)
	}

	// The admin changes are in the service's chain (folded from the spool).
	var got []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got = got[:0]
		evs, _, err := audit.FileTrail(p("audit.log")).Query(ctx, audit.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if strings.HasPrefix(e.Event, "passkey.") && e.Credential == reg.Credential {
				got = append(got, e.Event+"/"+e.Outcome)
			}
		}
		if len(got) >= 3 {
			break
		}
	}
	if strings.Join(got, ",") != "passkey.revoke/success,passkey.approve/success,passkey.register/success" {
		t.Fatalf("passkey audit records (newest first): %v", got)
	}
}

func TestPasskeysCommandRefusals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passkeys.json")
	if _, err := runCmd(t, "", "passkeys", "list", "-passkeys", path); err == nil {
		t.Fatal("listed a registry that does not exist")
	}
	// An empty registry, as a key service writes it.
	if err := os.WriteFile(path, []byte(`{"version":1,"passkeys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := passkeys.Open(path); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(t, "", "passkeys", "list", "-passkeys", path); err != nil || !strings.Contains(out, "FINGERPRINT") {
		t.Fatalf("list of an empty registry: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"approve/no-ref", []string{"passkeys", "approve", "-passkeys", path}},
		{"approve/unknown", []string{"passkeys", "approve", "-passkeys", path, "K7QD-9F2M-XW4A"}},
		{"approve/two-refs", []string{"passkeys", "approve", "-passkeys", path, "a", "b"}},
		{"unknown-subcommand", []string{"passkeys", "delete", "-passkeys", path}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := runCmd(t, "", tc.args...); err == nil {
				t.Fatalf("%v succeeded", tc.args)
			}
		})
	}
}

// encryptCard makes a card ciphertext to the service's published key.
func encryptCard(t *testing.T, c *client.Client) string {
	t.Helper()
	jwks, err := c.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := jose.ParseJWKS(jwks)
	if err != nil {
		t.Fatal(err)
	}
	pt := fmt.Sprintf(`{"pan":"4242424242424242","exp_month":3,"exp_year":2032,"name":"","iat":%d}`, time.Now().Unix())
	jwe, err := jose.Encrypt([]byte(pt), pubs[0].Key, pubs[0].Kid, map[string]string{jose.HeaderSessionID: "cs_t"})
	if err != nil {
		t.Fatal(err)
	}
	return string(jwe)
}
