package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/blindgate/blindgate/gateway/app"
	"github.com/blindgate/blindgate/gateway/merchants"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/rewrap"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/secret"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func merchantsCmd(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("merchants: want add or list")
	}
	var cfg app.Config
	fs := flag.NewFlagSet("merchants "+args[0], flag.ContinueOnError)
	cfg.StoreFlags(fs)
	name := fs.String("name", "", "add: merchant name")
	var origins multiFlag
	fs.Var(&origins, "origin", "add: an origin allowed to embed the checkout, e.g. https://shop.example (repeatable); env:NAME reads it from that variable (docker-compose.yml gives gateway-admin BLINDGATE_SHOP_ORIGIN)")
	auditPath := fs.String("audit-log", envOr("BLINDGATE_GW_AUDIT_LOG", "gateway-audit.log"), "add: the gateway audit log to record the change in")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := resolveOrigins(origins); err != nil {
		return err
	}
	st, err := app.OpenStores(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "add":
		var (
			m  merchants.Merchant
			sk string
		)
		ev := audit.Event{Event: audit.EventMerchantChange, Resource: *name, Reason: "create with origins " + strings.Join(origins, " ")}
		err := audit.AdminChange(ctx, *auditPath, ev, out, func() (err error) {
			m, sk, err = st.Merchants.Create(ctx, *name, origins)
			return err
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "merchant %s (%s) created; allowed origins: %s\n", m.ID, m.Name, strings.Join(m.AllowedOrigins, " "))
		fmt.Fprintf(out, "secret API key (shown once; only its hash is stored):\n  %s\n", sk)
		return nil
	case "list":
		ms, err := st.Merchants.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tORIGINS\tCREATED")
		for _, m := range ms {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.ID, m.Name, strings.Join(m.AllowedOrigins, " "), m.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	default:
		return fmt.Errorf("merchants: unknown subcommand %q", args[0])
	}
}

func operatorsCmd(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("operators: want add or list")
	}
	var cfg app.Config
	fs := flag.NewFlagSet("operators "+args[0], flag.ContinueOnError)
	cfg.StoreFlags(fs)
	username := fs.String("username", "", "add: login name")
	role := fs.String("role", "viewer", "add: viewer, revealer or admin")
	merchant := fs.String("merchant", "", "add: merchant id the operator is scoped to; empty = platform operator (all merchants)")
	pwRef := fs.String("password", "", "add: password reference (env:NAME or file:PATH); empty = generate and print once")
	auditPath := fs.String("audit-log", envOr("BLINDGATE_GW_AUDIT_LOG", "gateway-audit.log"), "add: the gateway audit log to record the change in")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	st, err := app.OpenStores(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "add":
		r, err := operators.ParseRole(*role)
		if err != nil {
			return err
		}
		pw, generated := "", false
		if *pwRef != "" {
			b, err := secret.Resolve(*pwRef)
			if err != nil {
				return err
			}
			pw = string(b)
		} else {
			pw, generated = operators.GeneratePassword(), true
		}
		scope := "all merchants"
		if *merchant != "" {
			scope = "merchant " + *merchant
		}
		// Recorded before the store changes (no record, no change); the
		// operator id does not exist yet, so the login name stands for it.
		ev := audit.Event{Event: audit.EventOperatorChange, Resource: *username, Reason: "create as " + string(r) + " for " + scope}
		var op operators.Operator
		err = audit.AdminChange(ctx, *auditPath, ev, out, func() (err error) {
			op, err = st.Operators.Create(ctx, *username, r, *merchant, pw)
			return err
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "operator %s (%s) created as %s for %s; MFA enrolment happens at first login\n", op.Username, op.ID, op.Role, scope)
		if generated {
			fmt.Fprintf(out, "password (shown once):\n  %s\n", pw)
		}
		return nil
	case "list":
		ops, err := st.Operators.List(ctx, *merchant)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSERNAME\tROLE\tMERCHANT\tTOTP\tPASSKEYS\tDISABLED")
		for _, o := range ops {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%d\t%v\n", o.ID, o.Username, o.Role, o.MerchantID, o.TOTPEnabled, len(o.Passkeys), o.Disabled)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("operators: unknown subcommand %q", args[0])
	}
}

// resolveOrigins replaces each env:NAME origin by that variable's value, so
// that one documented command follows the ports a deployment chose (the
// compose shop's origin follows BLINDGATE_SHOP_PORT).
func resolveOrigins(origins []string) error {
	for i, o := range origins {
		name, ok := strings.CutPrefix(o, "env:")
		if !ok {
			continue
		}
		v := strings.TrimSpace(os.Getenv(name))
		if v == "" {
			return fmt.Errorf("merchants: -origin %s: the variable %s is empty or unset", o, name)
		}
		origins[i] = v
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// rewrapCmd runs a rewrap pass with the gateway's configuration (its store
// and its checkout identity, which may call rewrap), paced by -rewrap-rate.
// A pass cut short (Ctrl-C, a crash) is resumed by the next run of the same
// command from its saved position; -restart starts it over.
func rewrapCmd(ctx context.Context, args []string, out, errw io.Writer) error {
	var cfg app.Config
	fs := flag.NewFlagSet("rewrap", flag.ContinueOnError)
	cfg.Flags(fs)
	kid := fs.String("kid", "", "the old KEK version whose ciphertexts to move (see keyservice keys list)")
	all := fs.Bool("all", false, "every token, also those under the newest KEK: refresh masked fields and fingerprints after a change of scheme")
	restart := fs.Bool("restart", false, "discard the saved position of an interrupted pass and start over")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*kid == "") == !*all {
		return errors.New("rewrap: give -kid <old kid> or -all")
	}
	if cfg.RewrapRate < 0 {
		return errors.New("rewrap: -rewrap-rate must be >= 0")
	}
	st, err := app.OpenStores(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer st.Close()
	ks, err := app.KeyServiceClient(cfg, cfg.CheckoutClientID, cfg.CheckoutKeyFile)
	if err != nil {
		return err
	}
	scope := rewrap.Scope{Kid: *kid, All: *all}
	bar := newProgress(errw)
	job := &rewrap.Job{Store: st.Tokens, KS: ks, State: st.RewrapState, Rate: float64(cfg.RewrapRate), Progress: bar.update}
	if st.RewrapLeaser != nil {
		// One pass at a time across the gateways' background jobs and
		// this command.
		lease, err := st.RewrapLeaser.TryLease(ctx)
		if err != nil {
			return err
		}
		if lease == nil {
			return errors.New("rewrap: another pass is running (a gateway's background rewrap or another blindgate rewrap); run this again when it is done (blindgate_gateway_rewrap_progress_ratio)")
		}
		defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
		job.KeepAlive = lease.Refresh
	}
	p, err := job.Run(ctx, scope, *restart)
	bar.finish(p)
	if p.Resumed {
		fmt.Fprintf(out, "resumed a pass started %s; the counts include its earlier runs\n", p.Started.UTC().Format(time.RFC3339))
	}
	// One line, stable for scripts: skipped = changed meanwhile, failed =
	// refused by the key service; refreshed = new masked fields only.
	name := *kid
	if *all {
		name = "all"
	}
	fmt.Fprintf(out, "rewrap %s: moved %d, skipped %d, failed %d, refreshed %d, unchanged %d\n", name, p.Moved, p.Skipped, p.Failed, p.Refreshed, p.Unchanged)
	switch {
	case err != nil && !p.Done():
		return fmt.Errorf("%w (position saved: run the same command again to go on)", err)
	case err == nil && p.Failed > 0:
		err = fmt.Errorf("rewrap: the key service refused %d ciphertexts; they keep their old ciphertext and fields", p.Failed)
	}
	return err
}

// keygenCmd makes a request-signing key pair: the private JWK stays with the
// client, the public one goes to `keyservice clients add -public-key`.
func keygenCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	id := fs.String("id", "gateway", "client id the key is for")
	priv := fs.String("out", "", "private key file to create (JWK, mode 0600)")
	pub := fs.String("public-out", "", "public key file to create (JWK)")
	ops := fs.String("ops", "", "operations the enrolment hint grants (default: what the gateway's identity of that -id needs: gateway inspect,rewrap; backoffice reveal,audit; forward forward)")
	enrolWith := fs.String("enrol-with", envOr("BLINDGATE_ENROL_WITH", "keyservice"), "how the printed hint runs keyservice in the key zone (docker-compose.yml: docker compose run --rm keyservice-admin)")
	enrolDir := fs.String("enrol-dir", envOr("BLINDGATE_ENROL_DIR", ""), "the folder the key zone reads the public key from, for the hint (docker-compose.yml: /gateway); empty: -public-out as given")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *priv == "" || *pub == "" {
		return errors.New("keygen: -out and -public-out are required")
	}
	if *ops == "" {
		*ops = enrolOps(*id)
	}
	kid, pk, err := client.GenerateKeyFile(*priv, *id)
	if err != nil {
		return err
	}
	b, err := jose.MarshalPublicJWK(pk, kid)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*pub, b, 0o644); err != nil {
		return err
	}
	pubPath := *pub
	if *enrolDir != "" {
		pubPath = path.Join(*enrolDir, filepath.Base(*pub))
	}
	fmt.Fprintf(out, "key %s: private %s, public %s\nenrol it in the key zone:\n  %s clients add -id %s -ops %s -public-key %s\n", kid, *priv, *pub, *enrolWith, *id, *ops, pubPath)
	return nil
}

// enrolOps is what each of the gateway's identities (gateway/app's default
// client ids) may do, least privilege: the checkout key inspects and
// rewraps, the back office's reveals and reads the audit trail, the forward
// key only forwards. Another id gets a placeholder to fill in.
func enrolOps(id string) string {
	switch id {
	case "gateway":
		return wire.OpInspect + "," + wire.OpRewrap
	case "backoffice":
		return wire.OpReveal + "," + wire.OpAudit
	case "forward":
		return wire.OpForward
	}
	return "<operations>"
}

func totpCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("totp", flag.ContinueOnError)
	ref := fs.String("secret", "", "TOTP secret reference (env:NAME or file:PATH) or the base32 secret itself (demo only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := *ref
	if strings.HasPrefix(s, "env:") || strings.HasPrefix(s, "file:") {
		b, err := secret.Resolve(s)
		if err != nil {
			return err
		}
		s = string(b)
	}
	// A secret copied from an app or typed off a screen may come in groups.
	s = strings.NewReplacer(" ", "", "-", "", "\t", "").Replace(strings.TrimSpace(s))
	code, err := totp.GenerateCode(strings.ToUpper(s), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(out, code)
	return nil
}
