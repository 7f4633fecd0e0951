package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/destinations"
)

// destinationsCmd manages the forward destinations file. Like clients, each
// change is spooled to the audit log before it is made.
func destinationsCmd(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("destinations: want add, list or remove")
	}
	fs := flag.NewFlagSet("destinations "+args[0], flag.ContinueOnError)
	path := fs.String("destinations", envOr("BLINDGATE_KS_DESTINATIONS", "destinations.json"), "destinations file")
	from := fs.String("from", "", "add: a JSON file holding one destination (or a preset with a \"destination\" member)")
	id := fs.String("id", "", "remove: the destination id")
	hosts := fs.Bool("hosts", false, "list: print the egress proxy's allow-list instead (host:port and the destination's allow_private prefixes, one a line)")
	auditPath := fs.String("audit-log", envOr("BLINDGATE_KS_AUDIT_LOG", "audit.log"), "audit log to record the change in")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	l, err := destinations.Load(*path)
	if errors.Is(err, os.ErrNotExist) {
		l, err = destinations.New(filepath.Dir(*path)), nil
	}
	if err != nil {
		return err
	}
	switch args[0] {
	case "add":
		if *from == "" {
			return errors.New("destinations add: -from is required")
		}
		b, err := os.ReadFile(*from)
		if err != nil {
			return err
		}
		var d destinations.Destination
		var preset struct {
			Destination *destinations.Destination `json:"destination"`
		}
		if json.Unmarshal(b, &preset) == nil && preset.Destination != nil {
			d = *preset.Destination
		} else if err := json.Unmarshal(b, &d); err != nil {
			return fmt.Errorf("destinations add: %s: %w", *from, err)
		}
		if err := l.Add(d); err != nil {
			return err
		}
		target := d.URL
		if target == "" {
			target = "processor key"
		}
		ev := audit.Event{Event: audit.EventDestinationChange, Resource: d.ID, Reason: "add " + target + " for " + strings.Join(d.Merchants, ",")}
		if err := audit.AdminChange(context.Background(), *auditPath, ev, out, func() error { return l.Save(*path) }); err != nil {
			return err
		}
		fmt.Fprintf(out, "destination %s added (%s) for %s\n", d.ID, target, strings.Join(d.Merchants, ", "))
		return nil
	case "remove":
		if *id == "" {
			return errors.New("destinations remove: -id is required")
		}
		if err := l.Remove(*id); err != nil {
			return err
		}
		ev := audit.Event{Event: audit.EventDestinationChange, Resource: *id, Reason: "remove"}
		if err := audit.AdminChange(context.Background(), *auditPath, ev, out, func() error { return l.Save(*path) }); err != nil {
			return err
		}
		fmt.Fprintf(out, "destination %s removed\n", *id)
		return nil
	case "list":
		if *hosts {
			return printEgressAllowList(out, l.All())
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTARGET\tMETHOD\tTRUST\tMERCHANTS")
		for _, c := range l.All() {
			target, method := c.URL, c.Method
			if c.Encrypts() {
				target, method = "processor key "+c.KeyKid, "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, target, method, c.Trust(), strings.Join(c.Merchants, ","))
		}
		return tw.Flush()
	default:
		return fmt.Errorf("destinations: unknown subcommand %q", args[0])
	}
}

// printEgressAllowList prints what cmd/egress takes as -allow or
// -allow-file: every URL destination's host:port once, with the private
// prefixes it may resolve to. Processor-key destinations need no route.
func printEgressAllowList(out io.Writer, all []*destinations.Compiled) error {
	seen := map[string]bool{}
	for _, c := range all {
		if c.Encrypts() {
			continue
		}
		line := net.JoinHostPort(c.Host, c.Port)
		for _, p := range c.Private {
			line += " " + p.String()
		}
		if seen[line] {
			continue
		}
		seen[line] = true
		if _, err := fmt.Fprintln(out, line); err != nil {
			return err
		}
	}
	return nil
}
