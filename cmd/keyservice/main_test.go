package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/app"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/sigauth"
	"github.com/blindgate/blindgate/keyservice/wire"
)

func runCmd(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	old := os.Stdin
	r, w, _ := os.Pipe()
	_, _ = w.WriteString(stdin)
	w.Close()
	os.Stdin = r
	defer func() { os.Stdin = old }()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String() + errb.String(), err
}

var keyLine = regexp.MustCompile(`(?m)^\s+(?:share \d+: )?([A-Za-z0-9_\-+/=]{40,})$`)

func TestKeysLifecycle(t *testing.T) {
	dir := t.TempDir()
	kr := filepath.Join(dir, "keyring.sealed")
	al := filepath.Join(dir, "audit.log")
	out, err := runCmd(t, "", "keys", "init", "-keyring", kr, "-shares", "2", "-audit-log", al)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	shares := keyLine.FindAllStringSubmatch(out, -1)
	if len(shares) != 2 {
		t.Fatalf("want 2 shares printed, got %d:\n%s", len(shares), out)
	}
	// The deployment id, and the exact line docker-compose.yml's gateway reads it from.
	if m := regexp.MustCompile(`(?m)^  (ks_\S+)\n(?:.*\n)?  echo BLINDGATE_KEYSERVICE_AUDIENCE=(ks_\S+) >> \.env$`).FindStringSubmatch(out); m == nil || m[1] != m[2] {
		t.Errorf("init prints no deployment id with its compose export line:\n%s", out)
	}
	both := shares[0][1] + "\n" + shares[1][1] + "\n"
	if _, err := runCmd(t, "", "keys", "init", "-keyring", kr); err == nil {
		t.Fatal("init over an existing keyring must refuse")
	}
	if out, err := runCmd(t, shares[0][1]+"\n", "keys", "list", "-keyring", kr); err == nil {
		t.Fatalf("one share of two opened the keyring:\n%s", out)
	}
	out, err = runCmd(t, both, "keys", "rotate", "-keyring", kr, "-alg", "RSA-OAEP-256/3072", "-audit-log", al)
	if err != nil || strings.Count(out, "kek") < 2 && strings.Count(out, "\n") < 3 {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	out, err = runCmd(t, both, "keys", "list", "-keyring", kr)
	if err != nil || !strings.Contains(out, "active") || !strings.Contains(out, "decrypt") {
		t.Fatalf("list after rotate: %v\n%s", err, out)
	}
	var oldKid string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[2] == "decrypt" {
			oldKid = f[0]
		}
	}
	out, err = runCmd(t, both, "keys", "retire", "-keyring", kr, "-kid", oldKid, "-audit-log", al, "-force", "no gateway in this test")
	if err != nil || !strings.Contains(out, "retired") {
		t.Fatalf("retire: %v\n%s", err, out)
	}
	// Each admin change is in the audit trail, and the chain holds.
	out, err = runCmd(t, "", "audit", "verify", "-audit-log", al, "-keyring", kr)
	if err != nil || !strings.Contains(out, "3 lines") {
		t.Fatalf("audit after admin changes: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(al)
	for _, ev := range []string{`"event":"key.init"`, `"event":"key.rotate"`, `"event":"key.retire"`} {
		if !strings.Contains(string(b), ev) {
			t.Errorf("audit lacks %s", ev)
		}
	}
}

func TestAuditVerifyCatchesTampering(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	a, err := newApp(devConfig(t, dir), discard())
	if err != nil {
		t.Fatal(err)
	}
	// The app's own startup and a few unseal attempts give the log some lines.
	for i := 0; i < 3; i++ {
		body := strings.NewReader(`{"key":"` + strings.Repeat("A", 43) + `="}`)
		req, _ := http.NewRequest(http.MethodPost, "/v1/sys/unseal", body)
		if _, err := a.Server().App().Test(req); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = a.Serve(ctx, mustListen(t))
	kr := filepath.Join(dir, "keyring.sealed")
	out, err := runCmd(t, "", "audit", "verify", "-audit-log", path, "-keyring", kr)
	if err != nil || !strings.Contains(out, "checkpoints OK: 1 in the chain, 1 exported") {
		t.Fatalf("clean log: %v\n%s", err, out)
	}
	// Whoever can write the files but cannot unseal: drop the unseal
	// attempts and rebuild a valid chain (with this package's own writer).
	t.Run("rebuilt", func(t *testing.T) {
		b, _ := os.ReadFile(path)
		evs, err := audit.Read(bytes.NewReader(b), audit.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "rebuilt.log")
		l, err := audit.Open(p, audit.Options{SpoolInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		for i := len(evs) - 1; i >= 0; i-- {
			if evs[i].Event != audit.EventUnseal {
				if _, err := l.Append(context.Background(), evs[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
		_ = l.Close()
		x, _ := os.ReadFile(path + ".checkpoints")
		_ = os.WriteFile(p+".checkpoints", x, 0o600)
		if out, err := runCmd(t, "", "audit", "verify", "-audit-log", p, "-keyring", kr, "-audit-checkpoints", "none"); err != nil {
			// Sanity: the in-chain checkpoint alone already catches it.
			if !strings.Contains(err.Error(), "FAILED") {
				t.Fatalf("rebuilt chain, chain-only check: %v\n%s", err, out)
			}
		} else {
			t.Fatalf("rebuilt chain passed the chain-only check:\n%s", out)
		}
		if out, err := runCmd(t, "", "audit", "verify", "-audit-log", p, "-keyring", kr); err == nil || !strings.Contains(err.Error(), "FAILED") {
			t.Fatalf("rebuilt chain passed: %v\n%s", err, out)
		}
	})
	t.Run("forged-export-signature", func(t *testing.T) {
		x, _ := os.ReadFile(path + ".checkpoints")
		forged := regexp.MustCompile(`"sig":"[^"]{10}`).ReplaceAll(x, []byte(`"sig":"AAAAAAAAAA`))
		p := filepath.Join(dir, "forged.checkpoints")
		_ = os.WriteFile(p, forged, 0o600)
		if out, err := runCmd(t, "", "audit", "verify", "-audit-log", path, "-keyring", kr, "-audit-checkpoints", p); err == nil || !strings.Contains(err.Error(), "FAILED") {
			t.Fatalf("forged export passed: %v\n%s", err, out)
		}
	})
	t.Run("other-pinned-key", func(t *testing.T) {
		pub, _, _ := ed25519.GenerateKey(nil)
		if out, err := runCmd(t, "", "audit", "verify", "-audit-log", path, "-keyring", kr, "-audit-public-key", base64.StdEncoding.EncodeToString(pub)); err == nil {
			t.Fatalf("a keyring header other than the pinned key passed:\n%s", out)
		}
	})
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 3 {
		t.Fatalf("only %d audit lines", len(lines))
	}
	tamper := map[string][]string{
		"edited":    append([]string{strings.Replace(lines[0], `"outcome":"`, `"outcome":"x`, 1)}, lines[1:]...),
		"deleted":   append([]string{lines[0]}, lines[2:]...),
		"reordered": append([]string{lines[1], lines[0]}, lines[2:]...),
	}
	for name, ls := range tamper {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name+".log")
			_ = os.WriteFile(p, []byte(strings.Join(ls, "\n")+"\n"), 0o600)
			if out, err := runCmd(t, "", "audit", "verify", "-audit-log", p, "-keyring", kr); err == nil || !strings.Contains(err.Error(), "BROKEN") {
				t.Fatalf("%s log passed verification: %v %s", name, err, out)
			}
		})
	}
}

func devConfig(t *testing.T, dir string) appConfig {
	t.Helper()
	return app.DevConfig(dir)
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestServeTLSWithClientCert runs the real binary path: TLS with a required
// client certificate, a client enrolled by `clients add`, and an inspect
// signed by that client over the wire.
func TestServeTLSWithClientCert(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := makeCA(t)
	srvCert := issue(t, caCert, caKey, "127.0.0.1", false)
	cliCert := issue(t, caCert, caKey, "gateway", true)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caCert.Raw)
	writeCert(t, dir, "server", srvCert)

	out, err := runCmd(t, "", "clients", "add", "-clients", filepath.Join(dir, "clients.json"), "-id", "gateway", "-ops", "inspect,rewrap", "-private-key-out", filepath.Join(dir, "gateway.jwk"), "-audit-log", filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatalf("clients add: %v\n%s", err, out)
	}
	cfg := devConfig(t, dir)
	cfg.DevHTTP = false
	cfg.TLSCert, cfg.TLSKey, cfg.ClientCA = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.pem")
	a, err := newApp(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := a.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	base := "https://" + ln.Addr().String()

	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if _, err := noCert.Get(base + "/healthz"); err == nil {
		t.Fatal("a client without a certificate was let in")
	}
	withCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cliCert}}}}

	kid, key, err := client.LoadKeyFile(filepath.Join(dir, "gateway.jwk"))
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(base, &client.Signer{ClientID: "gateway", Kid: kid, Audience: "blindgate-keyservice", Key: key}, withCert)
	jwks, err := c.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := jose.ParseJWKS(jwks)
	if err != nil || len(pubs) != 1 {
		t.Fatalf("jwks: %v %d", err, len(pubs))
	}
	pt := fmt.Sprintf(`{"pan":"378282246310005","exp_month":3,"exp_year":2032,"name":"","iat":%d}`, time.Now().Unix())
	jwe, err := jose.Encrypt([]byte(pt), pubs[0].Key, pubs[0].Kid, map[string]string{jose.HeaderSessionID: "cs_t"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Inspect(context.Background(), wire.InspectRequest{JWE: string(jwe), Session: "cs_t", Merchant: "m_1"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Brand != "amex" || m.BIN != "378282" || m.Last4 != "0005" {
		t.Fatalf("inspect over TLS: %+v", m)
	}
	bk, _ := kstest.BrowserKey(t)
	_, err = c.Reveal(context.Background(), wire.RevealRequest{JWE: string(jwe), Actor: "op_1", Reason: "not allowed", Token: "tok_1", BrowserKey: bk,
		Nonce: "rvn_" + strings.Repeat("A", 43)})
	var ce *client.Error
	if !asErr(err, &ce) || ce.Status != 403 {
		t.Fatalf("gateway reveal: %v", err)
	}
}

func asErr(err error, target **client.Error) bool {
	e, ok := err.(*client.Error)
	if !ok {
		return false
	}
	*target = e
	return true
}

func discard() *slog.Logger { return newLogger(io.Discard, "error") }

func makeCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, clientAuth bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if clientAuth {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.IPAddresses = []net.IP{net.ParseIP(name)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func writeCert(t *testing.T, dir, name string, c tls.Certificate) {
	t.Helper()
	writePEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", c.Certificate[0])
	der, _ := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	writePEM(t, filepath.Join(dir, name+".key"), "EC PRIVATE KEY", der)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDeploymentsHaveTheirOwnAudience: two key services started with no
// -audience each take their keyring's deployment id, and each refuses a
// request signed for the other (401) even with the same client key enrolled
// in both and an htu naming the right host.
func TestDeploymentsHaveTheirOwnAudience(t *testing.T) {
	key, err := client.GenerateKey(client.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	type deployment struct {
		audience, url string
	}
	var deps []deployment
	for range 2 {
		dir := t.TempDir()
		al := &sigauth.AllowList{}
		if err := al.AddClient("gateway", []string{wire.OpInspect}, "gateway-1", key.Public()); err != nil {
			t.Fatal(err)
		}
		if err := al.Save(filepath.Join(dir, "clients.json")); err != nil {
			t.Fatal(err)
		}
		cfg := devConfig(t, dir)
		cfg.Audience = ""
		a, err := newApp(cfg, discard())
		if err != nil {
			t.Fatal(err)
		}
		ln := mustListen(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Serve(ctx, ln) }()
		t.Cleanup(func() { cancel(); <-done })
		deps = append(deps, deployment{a.Audience(), "http://" + ln.Addr().String()})
	}
	if deps[0].audience == deps[1].audience || !strings.HasPrefix(deps[0].audience, "ks_") {
		t.Fatalf("audiences %q and %q: want two distinct deployment ids", deps[0].audience, deps[1].audience)
	}
	for i, signedFor := range deps {
		for j, at := range deps {
			signer := &client.Signer{ClientID: "gateway", Kid: "gateway-1", Audience: signedFor.audience, Key: key}
			_, err := client.New(at.url, signer, client.HTTPClient(false)).Inspect(context.Background(), wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs_t", Merchant: "m_t"})
			var ke *client.Error
			if !errors.As(err, &ke) {
				t.Fatalf("signed for %d at %d: %v", i, j, err)
			}
			if got401 := ke.Status == http.StatusUnauthorized; got401 != (i != j) {
				t.Errorf("signed for deployment %d, sent to %d: %d %s", i, j, ke.Status, ke.Code)
			}
		}
	}
}

// TestUnsealCLI: the CLI reads the seal status, carries the round's nonce
// from share to share, and sends nothing to a service already unsealed.
func TestUnsealCLI(t *testing.T) {
	dir := t.TempDir()
	out, err := runCmd(t, "", "keys", "init", "-keyring", filepath.Join(dir, "keyring.sealed"), "-shares", "2", "-audit-log", filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatalf("keys init: %v\n%s", err, out)
	}
	shares := keyLine.FindAllStringSubmatch(out, -1)
	if len(shares) != 2 {
		t.Fatalf("want 2 shares:\n%s", out)
	}
	cfg := devConfig(t, dir)
	cfg.DevUnseal, cfg.Shares = false, 2
	a, err := newApp(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ln := mustListen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	url := "http://" + ln.Addr().String()

	out, err = runCmd(t, shares[0][1]+"\n", "unseal", "-url", url)
	m := regexp.MustCompile(`nonce ([0-9a-f]{32})`).FindStringSubmatch(out)
	if err != nil || m == nil || !strings.Contains(out, "1 of 2") {
		t.Fatalf("first share: %v\n%s", err, out)
	}
	if out, err := runCmd(t, shares[1][1]+"\n", "unseal", "-url", url, "-nonce", "0123"); err == nil {
		t.Fatalf("a share for another round was sent:\n%s", out)
	}
	if out, err := runCmd(t, shares[1][1]+"\n", "unseal", "-url", url, "-nonce", m[1]); err != nil || !strings.Contains(out, "unsealed") {
		t.Fatalf("second share: %v\n%s", err, out)
	}
	if a.Holder().Sealed() {
		t.Fatal("still sealed")
	}
	out, err = runCmd(t, shares[0][1]+"\n", "unseal", "-url", url, "-json")
	if err != nil || !strings.Contains(out, "already unsealed") || !strings.HasPrefix(out, `{"sealed":false,`) {
		t.Fatalf("share after unseal (-json: the status line first): %v\n%s", err, out)
	}
}

// TestHelpExitsZero: -h is not a failure; no command is a usage error.
func TestHelpExitsZero(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"0/serve-h", []string{"serve", "-h"}, 0},
		{"0/unseal-h", []string{"unseal", "-h"}, 0},
		{"2/no-command", nil, 2},
		{"1/unknown", []string{"nope"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCmd(t, "", tc.args...)
			if got := exitCode(err, io.Discard); got != tc.code {
				t.Errorf("exit status %d, want %d (%v)", got, tc.code, err)
			}
		})
	}
}

// TestAdminChangeWhileServing: with the key service running (it holds the
// audit log), `clients add` still lands in the chain, through the spool; with
// nowhere to record it, the allow-list is not changed.
func TestAdminChangeWhileServing(t *testing.T) {
	dir := t.TempDir()
	cfg := devConfig(t, dir)
	a, err := newApp(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, mustListen(t)) }()
	t.Cleanup(func() { cancel(); <-done })

	clients := filepath.Join(dir, "clients.json")
	out, err := runCmd(t, "", "clients", "add", "-clients", clients, "-id", "gateway", "-ops", "inspect", "-private-key-out", filepath.Join(dir, "gw.jwk"), "-audit-log", cfg.AuditPath)
	if err != nil {
		t.Fatalf("clients add: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(cfg.AuditPath)
		if strings.Contains(string(b), `"event":"client.add"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the running key service did not record the enrolment:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	blocked := filepath.Join(dir, "blocked.log")
	_ = os.WriteFile(blocked+".spool", nil, 0o600)
	before, _ := os.ReadFile(clients)
	if out, err := runCmd(t, "", "clients", "add", "-clients", clients, "-id", "backoffice", "-ops", "reveal", "-private-key-out", filepath.Join(dir, "bo.jwk"), "-audit-log", blocked); err == nil {
		t.Fatalf("enrolled without an audit record:\n%s", out)
	}
	if after, _ := os.ReadFile(clients); !bytes.Equal(before, after) {
		t.Fatal("the allow-list changed without an audit record")
	}
}

// TestUnsealSentence: what a custodian reads after `keyservice unseal` is a
// sentence saying where the round stands, not a JSON status (that is -json).
func TestUnsealSentence(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   wire.SealStatus
		want string
	}{
		{"sealed/2-of-3", wire.SealStatus{Sealed: true, Threshold: 3, Total: 5, Progress: 2, Nonce: "ab12"},
			"share accepted: 2 of 3 shares; 1 more needed (the other custodians run the same command; -nonce ab12 joins only this round)"},
		{"sealed/1-of-2", wire.SealStatus{Sealed: true, Threshold: 2, Progress: 1, Nonce: "cd34"},
			"share accepted: 1 of 2 shares; 1 more needed (the other custodians run the same command; -nonce cd34 joins only this round)"},
		{"master-rotated/1-of-2", wire.SealStatus{MasterRotated: true, Threshold: 2, Progress: 1, Nonce: "ef56"},
			"share accepted: 1 of 2 shares of the new master key; 1 more needed (the other custodians run the same command; -nonce ef56 joins only this round)"},
		{"unsealed", wire.SealStatus{Threshold: 2, Progress: 0}, "unsealed: the key service has its keys and serves"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := unsealSentence(tc.st); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
