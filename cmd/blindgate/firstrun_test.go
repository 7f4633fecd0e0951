package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gwapp "github.com/blindgate/blindgate/gateway/app"
)

// TestHelpExitsZero: -h prints a command's flags and is not a failure (a
// shell script or a first-time user reading `demo -h` gets status 0); a
// missing command is a usage error, a bad flag a failure.
func TestHelpExitsZero(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"0/demo-h", []string{"demo", "-h"}, 0, "-gateway-addr"},
		{"0/keygen-help", []string{"keygen", "-help"}, 0, ""},
		{"0/help", []string{"help"}, 0, "commands:"},
		{"2/no-command", nil, 2, "commands:"},
		{"1/bad-flag", []string{"demo", "-no-such-flag"}, 1, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errb)
			if got := exitCode(err, &errb); got != tc.code {
				t.Errorf("exit status %d, want %d (err %v)", got, tc.code, err)
			}
			if !strings.Contains(out.String()+errb.String(), tc.want) {
				t.Errorf("output lacks %q:\n%s%s", tc.want, out.String(), errb.String())
			}
		})
	}
}

// TestDemoPortTaken: a port already in use stops the demo with an error that
// names the flag to move that listener, for each of the three.
func TestDemoPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := func() string { return "127.0.0.1:0" }
	for _, tc := range []struct {
		flag string
		set  func(*demoConfig, string)
	}{
		{"-keyservice-addr", func(dc *demoConfig, a string) { dc.ksAddr = a }},
		{"-gateway-addr", func(dc *demoConfig, a string) { dc.gwAddr = a }},
		{"-shop-addr", func(dc *demoConfig, a string) { dc.shopAddr = a }},
	} {
		t.Run("refused/"+strings.TrimPrefix(tc.flag, "-"), func(t *testing.T) {
			dc := demoConfig{dir: t.TempDir(), ksAddr: free(), gwAddr: free(), shopAddr: free(), logLevel: "error"}
			tc.set(&dc, taken.Addr().String())
			d, err := startDemo(context.Background(), dc, io.Discard)
			if err == nil {
				t.Fatalf("the demo started on a port in use: %+v", d)
			}
			if msg := err.Error(); !strings.Contains(msg, "already in use") || !strings.Contains(msg, "go run ./cmd/blindgate demo "+tc.flag+" ") {
				t.Errorf("error %q does not name %s", msg, tc.flag)
			}
		})
	}
}

// TestDemoHintsRunAsPrinted: every command the welcome text tells the user to
// run is the README's form (`go run ./cmd/...` from the repository), not a
// binary assumed to be on PATH.
func TestDemoHintsRunAsPrinted(t *testing.T) {
	d := &runningDemo{
		dir: "blindgate-demo", shopURL: "http://localhost:8081", gatewayURL: "http://127.0.0.1:8080", backofficeURL: "http://localhost:8080",
		ksURL: "http://127.0.0.1:8443",
		state: demoState{SecretKey: "sk_x", Operators: []demoOperator{{Username: "revealer", Role: "revealer", Password: "pw", TOTPSecret: "JBSWY3DPEHPK3PXP"}}},
	}
	var b strings.Builder
	d.printWelcome(&b)
	text := b.String()
	for _, want := range []string{
		"go run ./cmd/blindgate totp -secret JBSWY3DPEHPK3PXP",
		"go run ./cmd/keyservice passkeys list -passkeys " + filepath.Join("blindgate-demo", "passkeys.json") + " -pending",
		"go run ./cmd/keyservice passkeys approve -passkeys ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("welcome lacks %q:\n%s", want, text)
		}
	}
	for _, bare := range []string{" blindgate totp", "\n       keyservice "} {
		if strings.Contains(text, bare) {
			t.Errorf("welcome tells to run a binary from PATH (%q):\n%s", bare, text)
		}
	}
}

// TestDemoShopOriginFollowsPort: a later run with the shop on another port
// (-shop-addr, say after the first port was taken) moves the demo merchant's
// allowed origin with it, or the shop could not start a checkout.
func TestDemoShopOriginFollowsPort(t *testing.T) {
	dir := t.TempDir()
	st, err := gwapp.OpenStores(gwapp.Config{Store: "bolt", BoltPath: filepath.Join(dir, "gw.db")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	path := filepath.Join(dir, "demo.json")
	for _, origin := range []string{"http://localhost:8081", "http://localhost:18081", "http://localhost:18081"} {
		s, err := demoSetup(ctx, path, st, origin)
		if err != nil {
			t.Fatal(err)
		}
		m, err := st.Merchants.Get(ctx, s.MerchantID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(m.AllowedOrigins, []string{origin}) {
			t.Fatalf("shop at %s: merchant allows %v", origin, m.AllowedOrigins)
		}
	}
}

// TestKeygenEnrolHint: the printed enrolment is the command to run as is,
// with the operations that identity needs and, under docker-compose.yml
// (which sets BLINDGATE_ENROL_WITH and BLINDGATE_ENROL_DIR for
// gateway-admin), the README's compose line.
func TestKeygenEnrolHint(t *testing.T) {
	for _, tc := range []struct {
		name, id, with, dir, want string
	}{
		{"gateway", "gateway", "", "", "keyservice clients add -id gateway -ops inspect,rewrap -public-key %s"},
		{"backoffice", "backoffice", "", "", "keyservice clients add -id backoffice -ops reveal,audit -public-key %s"},
		{"forward", "forward", "", "", "keyservice clients add -id forward -ops forward -public-key %s"},
		{"compose/backoffice", "backoffice", "docker compose run --rm keyservice-admin", "/gateway",
			"docker compose run --rm keyservice-admin clients add -id backoffice -ops reveal,audit -public-key /gateway/backoffice.pub.jwk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("BLINDGATE_ENROL_WITH", tc.with)
			t.Setenv("BLINDGATE_ENROL_DIR", tc.dir)
			dir := t.TempDir()
			pub := filepath.Join(dir, tc.id+".pub.jwk")
			out, err := runCLI(t, "keygen", "-id", tc.id, "-out", filepath.Join(dir, tc.id+".jwk"), "-public-out", pub)
			if err != nil {
				t.Fatalf("keygen: %v\n%s", err, out)
			}
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, pub)
			}
			if !strings.Contains(out, "\n  "+want+"\n") {
				t.Errorf("hint:\n%s\nwant the line %q", out, want)
			}
		})
	}
}

// TestMerchantOriginFromEnv: `-origin env:NAME` takes the origin from the
// variable (docker-compose.yml derives it from BLINDGATE_SHOP_PORT), and an
// unset one is refused rather than stored as text.
func TestMerchantOriginFromEnv(t *testing.T) {
	dir := t.TempDir()
	store := []string{"-store", "bolt", "-bolt", filepath.Join(dir, "gw.db"), "-audit-log", filepath.Join(dir, "audit.log")}
	t.Setenv("BLINDGATE_SHOP_ORIGIN", "http://localhost:18081")
	out, err := runCLI(t, append([]string{"merchants", "add", "-name", "Demo Shop", "-origin", "env:BLINDGATE_SHOP_ORIGIN"}, store...)...)
	if err != nil || !strings.Contains(out, "allowed origins: http://localhost:18081\n") {
		t.Fatalf("merchants add: %v\n%s", err, out)
	}
	t.Setenv("BLINDGATE_SHOP_ORIGIN", "")
	if out, err := runCLI(t, append([]string{"merchants", "add", "-name", "Other", "-origin", "env:BLINDGATE_SHOP_ORIGIN"}, store...)...); err == nil || !strings.Contains(err.Error(), "BLINDGATE_SHOP_ORIGIN") {
		t.Fatalf("an unset origin variable: %v\n%s", err, out)
	}
}
