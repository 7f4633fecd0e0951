package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String() + errb.String(), err
}

func TestAdminCommands(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "gw.db")
	gwAudit := filepath.Join(dir, "gw-audit.log")
	store := []string{"-store", "bolt", "-bolt", db, "-audit-log", gwAudit}

	out, err := runCLI(t, append([]string{"merchants", "add", "-name", "Acme", "-origin", "https://acme.example"}, store...)...)
	if err != nil {
		t.Fatalf("merchants add: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^\s+sk_[A-Za-z0-9]{40,}$`).MatchString(out) {
		t.Fatalf("no secret key printed:\n%s", out)
	}
	if out, err := runCLI(t, append([]string{"merchants", "add", "-name", "Bad", "-origin", "ftp://x"}, store...)...); err == nil {
		t.Fatalf("bad origin accepted:\n%s", out)
	}
	out, err = runCLI(t, append([]string{"merchants", "list"}, store...)...)
	if err != nil || !strings.Contains(out, "Acme") {
		t.Fatalf("merchants list: %v\n%s", err, out)
	}

	out, err = runCLI(t, append([]string{"operators", "add", "-username", "alice", "-role", "revealer", "-audit-log", gwAudit}, store...)...)
	if err != nil || !strings.Contains(out, "password (shown once)") {
		t.Fatalf("operators add: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(gwAudit); !strings.Contains(string(b), `"event":"operator.change"`) {
		t.Fatalf("operator creation not audited: %s", b)
	}
	_ = os.WriteFile(filepath.Join(dir, "pw"), []byte("short"), 0o600)
	if out, err := runCLI(t, append([]string{"operators", "add", "-username", "bob", "-password", "file:" + filepath.Join(dir, "pw"), "-audit-log", gwAudit}, store...)...); err == nil {
		t.Fatalf("a 5-character password was accepted:\n%s", out)
	}
	// PCI DSS 8.3.6: 12 characters or more, but no digit.
	_ = os.WriteFile(filepath.Join(dir, "pw"), []byte("lettersonlypassword"), 0o600)
	if out, err := runCLI(t, append([]string{"operators", "add", "-username", "bob", "-password", "file:" + filepath.Join(dir, "pw"), "-audit-log", gwAudit}, store...)...); err == nil || !strings.Contains(out+err.Error(), "letters and digits") {
		t.Fatalf("a password without digits was accepted or not explained: %v\n%s", err, out)
	}
	if out, err := runCLI(t, append([]string{"operators", "add", "-username", "carol", "-role", "root", "-audit-log", gwAudit}, store...)...); err == nil {
		t.Fatalf("unknown role accepted:\n%s", out)
	}
	out, err = runCLI(t, append([]string{"operators", "list"}, store...)...)
	if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "revealer") {
		t.Fatalf("operators list: %v\n%s", err, out)
	}

	priv, pub := filepath.Join(dir, "k.jwk"), filepath.Join(dir, "k.pub.jwk")
	if out, err := runCLI(t, "keygen", "-id", "gateway", "-out", priv, "-public-out", pub); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(pub)
	if _, _, err := jose.ParsePublicJWK(b); err != nil || strings.Contains(string(b), `"d"`) {
		t.Fatalf("public key file: %v %s", err, b)
	}
	if st, _ := os.Stat(priv); st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v", st.Mode().Perm())
	}

	if out, err := runCLI(t, "totp", "-secret", "JBSWY3DPEHPK3PXP"); err != nil || !regexp.MustCompile(`^\d{6}\n$`).MatchString(out) {
		t.Fatalf("totp: %v %q", err, out)
	}
}

// TestTOTPTakesTheSecretAsCopied: `blindgate totp` gives the same code for
// a secret however it was copied: whole, in the groups a screen shows, in
// lower case.
func TestTOTPTakesTheSecretAsCopied(t *testing.T) {
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	before, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{secret, "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP", "jbsw-y3dp-ehpk-3pxp-jbsw-y3dp-ehpk-3pxp", " JBSWY3DPEHPK3PXP\tJBSWY3DPEHPK3PXP "} {
		out, err := runCLI(t, "totp", "-secret", in)
		after, _ := totp.GenerateCode(secret, time.Now())
		// A 30 s step may end during the call: either code is the secret's.
		if got := strings.TrimSpace(out); err != nil || got != before && got != after {
			t.Errorf("totp -secret %q: %q, %v; want %s", in, out, err, before)
		}
	}
}

// TestAdminChangesAudited: every admin change reaches the gateway's audit
// chain, with the gateway running (it holds the log) or not, and a change
// that cannot be recorded is not made.
func TestAdminChangesAudited(t *testing.T) {
	dir := t.TempDir()
	store := []string{"-store", "bolt", "-bolt", filepath.Join(dir, "gw.db")}
	gwAudit := filepath.Join(dir, "gw-audit.log")
	withLog := func(args ...string) []string { return append(append(args, "-audit-log", gwAudit), store...) }

	// No gateway: the command folds its own record into the chain.
	if out, err := runCLI(t, withLog("merchants", "add", "-name", "Acme", "-origin", "https://acme.example")...); err != nil {
		t.Fatalf("merchants add: %v\n%s", err, out)
	}
	// A running gateway holds the log (as gateway/app does): the record is
	// spooled and the gateway folds it into its chain.
	held, err := audit.Open(gwAudit, audit.Options{SpoolInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, withLog("operators", "add", "-username", "alice", "-role", "revealer")...); err != nil {
		t.Fatalf("operators add: %v\n%s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for seq, _ := held.Head(); seq < 2; seq, _ = held.Head() {
		if time.Now().After(deadline) {
			t.Fatal("the running gateway's log did not take the operator change")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(gwAudit)
	evs, err := audit.Read(bytes.NewReader(b), audit.Filter{})
	if err != nil || len(evs) != 2 {
		t.Fatalf("chain: %v %+v", err, evs)
	}
	if evs[1].Event != audit.EventMerchantChange || evs[1].Resource != "Acme" || evs[0].Event != audit.EventOperatorChange || evs[0].Resource != "alice" {
		t.Fatalf("chain: %+v", evs)
	}

	// Nowhere to record: no change.
	blocked := filepath.Join(dir, "blocked.log")
	if err := os.WriteFile(audit.SpoolDir(blocked), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, append([]string{"operators", "add", "-username", "mallory", "-audit-log", blocked}, store...)...); err == nil {
		t.Fatalf("operator added without an audit record:\n%s", out)
	}
	if out, err := runCLI(t, append([]string{"merchants", "add", "-name", "Ghost", "-origin", "https://ghost.example", "-audit-log", blocked}, store...)...); err == nil {
		t.Fatalf("merchant added without an audit record:\n%s", out)
	}
	out, _ := runCLI(t, append([]string{"operators", "list"}, store...)...)
	out2, _ := runCLI(t, append([]string{"merchants", "list"}, store...)...)
	if strings.Contains(out, "mallory") || strings.Contains(out2, "Ghost") {
		t.Fatalf("unrecorded changes were made:\n%s\n%s", out, out2)
	}
}
