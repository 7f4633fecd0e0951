package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
	store := []string{"-store", "bolt", "-bolt", db}

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

	gwAudit := filepath.Join(dir, "gw-audit.log")
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
