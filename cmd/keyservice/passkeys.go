package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/passkeys"
	"github.com/blindgate/blindgate/keyservice/wire"
)

const passkeysUsage = `usage: keyservice passkeys list    [-passkeys FILE] [-pending] [-actor ID]
       keyservice passkeys approve [-passkeys FILE] [-audit-log FILE] <fingerprint|credential-id>
       keyservice passkeys revoke  [-passkeys FILE] [-audit-log FILE] <fingerprint|credential-id>

A passkey the back office registers is pending: it approves no reveal until
approve runs here, in the key zone. Before approving, confirm with the
operator, out of band (in person, by phone), that they enrolled a passkey just
now and that the fingerprint below is the one their enrolment page showed.
`

// passkeysCmd lists, approves and revokes operators' passkeys in the key
// service's registry. Like every admin change, approve and revoke are
// spooled to the audit log before they are made; the running service
// picks the change up at its next reveal (and from its watcher).
func passkeysCmd(args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(out, passkeysUsage)
		return errors.New("passkeys: want list, approve or revoke")
	}
	fs := flag.NewFlagSet("passkeys "+args[0], flag.ContinueOnError)
	path := fs.String("passkeys", envOr("BLINDGATE_KS_PASSKEYS", "passkeys.json"), "the passkey registry (the key service's -passkeys)")
	auditPath := fs.String("audit-log", envOr("BLINDGATE_KS_AUDIT_LOG", "audit.log"), "audit log to record the change in")
	pending := fs.Bool("pending", false, "list: only passkeys awaiting approval")
	actor := fs.String("actor", "", "list: only this operator's passkeys")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if _, err := os.Stat(*path); err != nil {
		return fmt.Errorf("passkeys: %s: %w (the key service creates it at the first registration)", *path, err)
	}
	reg, err := passkeys.Open(*path)
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		if fs.NArg() != 0 {
			return errors.New("passkeys list: no arguments besides flags")
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STATUS\tOPERATOR\tUSERNAME\tFINGERPRINT\tCREATED\tAPPROVED\tAAGUID\tID")
		for _, e := range reg.All() {
			if (*pending && e.Status != wire.PasskeyPending) || (*actor != "" && e.Actor != *actor) {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Status, e.Actor, e.Username, e.Fingerprint(),
				stamp(e.Credential.CreatedAt), stamp(e.ApprovedAt), orDash(e.AAGUID()), e.ID())
		}
		return tw.Flush()
	case "approve", "revoke":
		if fs.NArg() != 1 {
			return fmt.Errorf("passkeys %s: give one fingerprint or credential id, after the flags", args[0])
		}
		e, err := reg.Resolve(fs.Arg(0))
		if err != nil {
			return err
		}
		describePasskey(out, e)
		ev := audit.Event{Event: audit.EventPasskeyApprove, Resource: e.Actor, Credential: e.ID(), Reason: "fingerprint=" + e.Fingerprint()}
		change := func() error { _, err := reg.Approve(e.ID(), audit.CLIActor(), time.Now()); return err }
		if args[0] == "revoke" {
			ev.Event = audit.EventPasskeyRevoke
			change = func() error { _, err := reg.Revoke(e.ID(), audit.CLIActor(), time.Now()); return err }
		} else if e.Status != wire.PasskeyPending {
			// Refused before anything is spooled: nothing to record.
			return fmt.Errorf("passkeys approve: the passkey is %s; only a pending one can be approved", e.Status)
		}
		if err := audit.AdminChange(context.Background(), *auditPath, ev, out, change); err != nil {
			return err
		}
		if args[0] == "revoke" {
			fmt.Fprintf(out, "revoked %s of %s: it approves no reveal from the key service's next request on\n", e.Fingerprint(), e.Actor)
		} else {
			fmt.Fprintf(out, "approved %s: it now approves reveals by %s\n", e.Fingerprint(), e.Actor)
		}
		return nil
	default:
		fmt.Fprint(out, passkeysUsage)
		return fmt.Errorf("passkeys: unknown subcommand %q", args[0])
	}
}

// describe prints what the admin compares before approving.
func describePasskey(out io.Writer, e passkeys.Entry) {
	fmt.Fprintf(out, "passkey %s\n  operator:    %s (%s)\n  status:      %s\n  registered:  %s by client %s\n  authenticator: AAGUID %s, attestation %s (self-reported unless attested)\n",
		e.Fingerprint(), e.Actor, e.Username, e.Status, stamp(e.Credential.CreatedAt), e.Client, orDash(e.AAGUID()), orDash(e.Credential.Attestation))
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
