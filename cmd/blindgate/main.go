// Command blindgate is the all-in-one and admin tool: `blindgate demo` runs
// the whole product on one machine (key service, gateway and a demo shop on
// separate listeners, no Redis, no Docker); the other commands administer a
// gateway's merchants and back-office operators.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: blindgate <command> [flags]

commands:
  demo                 run key service + gateway + demo shop locally (bbolt, no Redis)
  merchants add|list   manage merchants (prints a secret API key once)
  operators add|list   manage back-office operators (prints a password once)
  rewrap               move stored ciphertexts from an old KEK version to the newest (resumable, paced)
  tokens count-by-kid  count stored tokens by KEK version (-out: the count keyservice keys retire reads)
  tokens reindex       list tokens stored before the search index in it (once, after upgrading; resumable, paced)
  keygen               make a request-signing key pair for a key-service client
  totp                 print the current TOTP code for a secret (demo helper)
  sign                 print a signed Authorization header for a key-service request (curl)
  encrypt              encrypt a JSON card from stdin as the checkout page does (testing)
  bench                load-test running services (see BENCHMARKS.md)
  monitor-pages        compare the live payment pages' scripts and security headers
                       with the inventory, once or -every interval (PCI DSS 11.6.1)
Run "blindgate <command> -h" for its flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// errNoCommand: run without a command (the usage is printed).
var errNoCommand = errors.New("no command")

// exitCode is the process status for run's error: 0 also when help was asked
// for (-h prints the flags and is not a failure), 2 without a command, and 1
// with the error printed otherwise.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errNoCommand):
		return 2
	}
	fmt.Fprintln(stderr, "blindgate:", err)
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errNoCommand
	}
	switch args[0] {
	case "demo":
		return demo(ctx, args[1:], stdout, stderr)
	case "merchants":
		return merchantsCmd(ctx, args[1:], stdout)
	case "operators":
		return operatorsCmd(ctx, args[1:], stdout)
	case "rewrap":
		return rewrapCmd(ctx, args[1:], stdout, stderr)
	case "tokens":
		return tokensCmd(ctx, args[1:], stdout, stderr)
	case "keygen":
		return keygenCmd(args[1:], stdout)
	case "sign":
		return signCmd(args[1:], stdout)
	case "encrypt":
		return encryptCmd(ctx, args[1:], stdout)
	case "totp":
		return totpCmd(args[1:], stdout)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "monitor-pages":
		return monitorCmd(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
