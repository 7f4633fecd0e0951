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

	"github.com/blindgate/blindgate/internal/runtimetune"
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
	os.Exit(exitCode(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// errNoCommand: run without a command (the usage is printed).
var errNoCommand = errors.New("no command")

// exitCode is the process status for run's error: 0 also when help was asked
// for (-h), 2 without a command, and 1 with the error printed otherwise.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errNoCommand):
		return 2
	}
	fmt.Fprintln(stderr, "keyservice:", err)
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errNoCommand
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
	rt := runtimetune.Apply()
	log.Info("go runtime", "gc_percent", rt.GCPercent, "gomaxprocs", rt.Procs)
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
