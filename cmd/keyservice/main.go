// Command keyservice is Blindgate's key service: the only process that holds
// the private key-encryption keys. `keyservice serve` runs it; the other
// subcommands administer its keyring, client allow-list and audit log.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: keyservice <command> [flags]

commands:
  serve                         run the key service
  keys init|rotate|list|retire|upgrade  manage the sealed keyring
  keys rekey|rotate-master      new key shares (same master key), or a new master key
  clients add|list|revoke       manage the signed-request allow-list
  destinations add|list|remove  manage where cards may be forwarded (forwarding in progress)
  passkeys list|approve|revoke  approve the operators' passkeys that approve reveals
  audit verify                  check the audit log's hash chain and signed checkpoints
  audit recover                 set aside a torn last line of a stopped service's audit log (as a start does)
  unseal                        send a key share to a running key service
Run "keyservice <command> -h" for its flags.
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "keyservice:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "keys":
		return keysCmd(args[1:], stdout)
	case "clients":
		return clientsCmd(args[1:], stdout)
	case "destinations":
		return destinationsCmd(args[1:], stdout)
	case "passkeys":
		return passkeysCmd(args[1:], stdout)
	case "audit":
		return auditCmd(args[1:], stdout)
	case "unseal":
		return unsealCmd(ctx, args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg appConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := newApp(cfg, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
