package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/pquerna/otp/totp"

	gwapp "github.com/blindgate/blindgate/gateway/app"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/internal/demoshop"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/runtimetune"
	ksapp "github.com/blindgate/blindgate/keyservice/app"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/sigauth"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// demoState is what the first run creates and later runs reuse. It holds
// demo credentials in clear, which is why it lives only in the demo folder.
type demoState struct {
	MerchantID string         `json:"merchant_id"`
	SecretKey  string         `json:"secret_key"`
	Operators  []demoOperator `json:"operators"`
}

type demoOperator struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	Role       string `json:"role"`
	TOTPSecret string `json:"totp_secret"`
}

type demoConfig struct {
	dir, ksAddr, gwAddr, shopAddr, logLevel string
}

func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var dc demoConfig
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&dc.dir, "dir", "blindgate-demo", "folder for the demo's keys, stores and logs")
	fs.StringVar(&dc.ksAddr, "keyservice-addr", "127.0.0.1:8443", "key service listen address")
	fs.StringVar(&dc.gwAddr, "gateway-addr", "127.0.0.1:8080", "gateway listen address (the page origin is http://127.0.0.1:PORT)")
	fs.StringVar(&dc.shopAddr, "shop-addr", "127.0.0.1:8081", "demo shop listen address (served as http://localhost:PORT, another origin)")
	fs.StringVar(&dc.logLevel, "log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	runtimetune.Apply()
	d, err := startDemo(ctx, dc, stderr)
	if err != nil {
		return err
	}
	d.printWelcome(stdout)
	return d.wait()
}

type runningDemo struct {
	state               demoState
	gatewayURL, shopURL string
	backofficeURL       string // the gateway's listener at localhost (passkeys need a host name)
	dir                 string
	ksURL               string
	errc                chan error
	n                   int
}

// startDemo sets up (first run) and starts the three listeners. It returns
// once all three accept connections.
func startDemo(ctx context.Context, dc demoConfig, stderr io.Writer) (*runningDemo, error) {
	if err := os.MkdirAll(dc.dir, 0o700); err != nil {
		return nil, err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(dc.logLevel))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	p := func(name string) string { return filepath.Join(dc.dir, name) }

	if err := demoClients(p("clients.json"), p("gateway.jwk"), p("backoffice.jwk")); err != nil {
		return nil, err
	}
	ksLn, err := demoListen(dc.ksAddr, "key service", "keyservice-addr")
	if err != nil {
		return nil, err
	}
	gwLn, err := demoListen(dc.gwAddr, "gateway", "gateway-addr")
	if err != nil {
		ksLn.Close()
		return nil, err
	}
	shopLn, err := demoListen(dc.shopAddr, "demo shop", "shop-addr")
	if err != nil {
		ksLn.Close()
		gwLn.Close()
		return nil, err
	}
	// The back office is opened at localhost, not 127.0.0.1: WebAuthn has
	// no relying party id for an IP address, so passkeys need a host name.
	backofficeURL := "http://localhost:" + port(gwLn)
	ks, err := ksapp.New(ksapp.Config{
		Addr: ksLn.Addr().String(), DevHTTP: true, KeyringPath: p("keyring.sealed"), Shares: 1, DevUnseal: true,
		ClientsPath: p("clients.json"), Audience: demoAudience(p("keyring.sealed")), Skew: 5 * time.Second,
		AuditPath: p("keyservice-audit.log"), Freshness: 15 * time.Minute, Redis: redisx.Config{Addrs: ksapp.RedisMemory},
		RevealPerMinute: 5, RevealPerDay: 50, RevealClientPerMinute: 60, RevealClientPerDay: 1000, InspectPerSecond: 2000, LogLevel: dc.logLevel,
		// Reveals are approved by the operator's passkey, approved in the
		// key zone (printWelcome prints the command).
		RevealApproval: "passkey", WebAuthnOrigins: backofficeURL, PasskeysPath: p("passkeys.json"),
	}, log.With("service", "keyservice"))
	if err != nil {
		return nil, err
	}
	d := &runningDemo{
		dir:           dc.dir,
		backofficeURL: backofficeURL,
		ksURL:         "http://" + ksLn.Addr().String(),
		gatewayURL:    "http://127.0.0.1:" + port(gwLn),
		shopURL:       "http://localhost:" + port(shopLn),
		errc:          make(chan error, 3),
	}
	gw, err := gwapp.New(gwapp.Config{
		Addr: gwLn.Addr().String(), PublicURL: d.gatewayURL, BackofficeURL: d.backofficeURL, MetricsAddr: "", Store: "bolt", BoltPath: p("gateway.db"),
		KeyServiceURL: d.ksURL, Audience: ks.Audience(),
		CheckoutClientID: "gateway", CheckoutKeyFile: p("gateway.jwk"),
		BackofficeClientID: "backoffice", BackofficeKeyFile: p("backoffice.jwk"),
		AuditPath: p("gateway-audit.log"), CVCTTL: 10 * time.Minute, SubmitPerIP: 30, LogLevel: dc.logLevel,
	}, log.With("service", "gateway"))
	if err != nil {
		return nil, err
	}
	if d.state, err = demoSetup(ctx, p("demo.json"), gw.Stores(), d.shopURL); err != nil {
		return nil, err
	}
	shop, err := demoshop.New(demoshop.Config{
		Origin: d.shopURL, GatewayURL: d.gatewayURL, SecretKey: d.state.SecretKey, Log: log.With("service", "shop"),
	})
	if err != nil {
		return nil, err
	}
	go func() { d.errc <- ks.Serve(ctx, ksLn) }()
	go func() { d.errc <- gw.Serve(ctx, gwLn) }()
	go func() { d.errc <- shop.Serve(ctx, shopLn) }()
	d.n = 3
	return d, nil
}

func (d *runningDemo) wait() error {
	var errs []error
	for i := 0; i < d.n; i++ {
		if err := <-d.errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *runningDemo) printWelcome(out io.Writer) {
	fmt.Fprintf(out, `
Blindgate demo is running (development mode: dev keyring, plain HTTP, bbolt store; never use it for real cards).

  1. Shop (merchant page, another origin):  %s
     Pay with a test card, e.g. 4242 4242 4242 4242, any future expiry, any CVC.
  2. Back office:                           %s/backoffice/login
`, d.shopURL, d.backofficeURL)
	for _, o := range d.state.Operators {
		fmt.Fprintf(out, "     %-9s user %-10s password %s  TOTP secret %s (code now: go run ./cmd/blindgate totp -secret %s)\n", o.Role, o.Username, o.Password, o.TOTPSecret, o.TOTPSecret)
	}
	fmt.Fprintf(out, `     A reveal is approved with the operator's passkey: enrol one in the back office, then approve it
     here, in the key zone, after comparing its fingerprint with the one the enrolment page shows:
       %s
       %s <fingerprint>
`, d.passkeysCommand("list", "-pending"), d.passkeysCommand("approve"))
	fmt.Fprintf(out, `  3. Merchant API:  curl -H 'Authorization: Bearer %s' %s/v1/tokens
  Key service (internal; signed requests only): %s   Ctrl-C stops everything.
`, d.state.SecretKey, d.gatewayURL, d.ksURL)
}

// passkeysCommand is the exact `keyservice passkeys` command line for the
// demo's registry and audit log.
func (d *runningDemo) passkeysCommand(sub string, extra ...string) string {
	cmd := "go run ./cmd/keyservice passkeys " + sub + " -passkeys " + filepath.Join(d.dir, "passkeys.json")
	if sub != "list" {
		cmd += " -audit-log " + filepath.Join(d.dir, "keyservice-audit.log")
	}
	for _, e := range extra {
		cmd += " " + e
	}
	return cmd
}

// demoListen listens on addr for one of the demo's three services. A port
// already taken (often by another demo, or the usual 8080) is the common
// first-run failure, so the error names the flag that moves it.
func demoListen(addr, what, flagName string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("the %s cannot listen on %s: the port is already in use (another blindgate demo?); choose another with -%s, e.g. go run ./cmd/blindgate demo -%s %s",
			what, addr, flagName, flagName, otherPort(addr))
	}
	return nil, fmt.Errorf("the %s cannot listen on %s (-%s): %w", what, addr, flagName, err)
}

// otherPort suggests addr's host with another port, for the hint above.
func otherPort(addr string) string {
	host, p, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(p)
	if err != nil || perr != nil || n == 0 || n > 55535 {
		return "127.0.0.1:0"
	}
	return net.JoinHostPort(host, strconv.Itoa(n+10000))
}

func port(ln net.Listener) string { return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port) }

// demoClients enrols the gateway's two signing identities: the checkout one
// may inspect and rewrap, the back-office one may reveal and read the audit
// trail (separate keys, so a leak of one does not grant the other).
func demoClients(clientsPath, gatewayKey, backofficeKey string) error {
	if _, err := os.Stat(clientsPath); err == nil {
		return nil
	}
	al := &sigauth.AllowList{}
	for _, c := range []struct {
		id, path string
		ops      []string
	}{
		{"gateway", gatewayKey, []string{wire.OpInspect, wire.OpRewrap}},
		{"backoffice", backofficeKey, []string{wire.OpReveal, wire.OpAudit}},
	} {
		_ = os.Remove(c.path)
		kid, pub, err := client.GenerateKeyFile(c.path, c.id)
		if err != nil {
			return err
		}
		if err := al.AddClient(c.id, c.ops, kid, pub); err != nil {
			return err
		}
	}
	return al.Save(clientsPath)
}

// demoSetup creates the demo merchant and operators on the first run.
func demoSetup(ctx context.Context, path string, st *gwapp.Stores, shopOrigin string) (demoState, error) {
	var s demoState
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &s); err != nil {
			return s, fmt.Errorf("%s: %w", path, err)
		}
		// A later run may put the shop on another port (-shop-addr): the
		// demo merchant then allows that origin instead, or the shop could
		// not start a checkout.
		m, err := st.Merchants.Get(ctx, s.MerchantID)
		if err != nil {
			return s, fmt.Errorf("demo merchant %s: %w", s.MerchantID, err)
		}
		if !slices.Equal(m.AllowedOrigins, []string{shopOrigin}) {
			if _, err := st.Merchants.SetOrigins(ctx, s.MerchantID, []string{shopOrigin}); err != nil {
				return s, fmt.Errorf("demo merchant %s: %w", s.MerchantID, err)
			}
		}
		return s, nil
	}
	m, sk, err := st.Merchants.Create(ctx, "Demo Shop", []string{shopOrigin})
	if err != nil {
		return s, err
	}
	s.MerchantID, s.SecretKey = m.ID, sk
	for _, o := range []struct {
		user string
		role operators.Role
	}{{"admin", operators.RoleAdmin}, {"revealer", operators.RoleRevealer}, {"viewer", operators.RoleViewer}} {
		pw := operators.GeneratePassword()
		op, err := st.Operators.Create(ctx, o.user, o.role, "", pw)
		if err != nil {
			return s, err
		}
		secret, _, _, err := st.Operators.EnrollTOTP(ctx, op.ID)
		if err != nil {
			return s, err
		}
		// Confirm with the previous step's code so the current one is still
		// unused when the person logs in within the next 30 seconds.
		code, err := totp.GenerateCode(secret, time.Now().Add(-30*time.Second))
		if err != nil {
			return s, err
		}
		if err := st.Operators.ConfirmTOTP(ctx, op.ID, code); err != nil {
			return s, err
		}
		s.Operators = append(s.Operators, demoOperator{Username: o.user, Password: pw, Role: string(o.role), TOTPSecret: secret})
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	return s, os.WriteFile(path, b, 0o600)
}

// demoAudience is "" (the keyring's deployment id, as in production) except
// for a demo directory whose keyring predates deployment ids, which keeps
// the audience it always had.
func demoAudience(keyringPath string) string {
	if dep, err := keyring.ReadDeployment(keyringPath); err == nil && dep == "" {
		return "blindgate-keyservice"
	}
	return ""
}
