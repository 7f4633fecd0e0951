// Command shop is the demo merchant of docker-compose.yml (package
// internal/demoshop): a shop page on its own origin that embeds Blindgate's
// hosted checkout, and the shop's server, which holds the merchant's secret
// API key. It is what a merchant integration looks like, not part of
// Blindgate; it never sees a card number.
//
//	shop -addr 0.0.0.0:8081 -origin http://localhost:8081 \
//	     -gateway-url http://localhost:8080 -gateway-api-url http://gateway:8080 \
//	     -secret-key env:BLINDGATE_SHOP_MERCHANT_KEY
//
// Every flag has an environment variable (BLINDGATE_SHOP_<FLAG>). Without a
// merchant key the page explains how to create one and the shop stays idle.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/blindgate/blindgate/internal/demoshop"
	"github.com/blindgate/blindgate/internal/secret"
)

type config struct {
	addr, origin, gatewayURL, gatewayAPIURL, secretKeyRef string
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], log); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			log.Error("shop stopped", "err", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	var c config
	fs := flag.NewFlagSet("shop", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", env("ADDR", "127.0.0.1:8081"), "listen address")
	fs.StringVar(&c.origin, "origin", env("ORIGIN", "http://localhost:8081"), "this shop's origin as browsers see it (the merchant's allowed origin)")
	fs.StringVar(&c.gatewayURL, "gateway-url", env("GATEWAY_URL", "http://localhost:8080"), "the gateway's origin as browsers see it (embed.js, checkout frame)")
	fs.StringVar(&c.gatewayAPIURL, "gateway-api-url", env("GATEWAY_API_URL", ""), "how this server reaches the merchant API (default: -gateway-url)")
	fs.StringVar(&c.secretKeyRef, "secret-key", env("SECRET_KEY", "env:BLINDGATE_SHOP_MERCHANT_KEY"), "the merchant's secret API key, as env:NAME or file:PATH")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, configured, err := newShop(c, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	log.Info("shop listening", "addr", ln.Addr().String(), "origin", c.origin, "gateway", c.gatewayURL, "configured", configured)
	return s.Serve(ctx, ln)
}

func env(name, def string) string {
	if v, ok := os.LookupEnv("BLINDGATE_SHOP_" + name); ok {
		return v
	}
	return def
}

// newShop resolves the secret key reference and builds the shop. A key that
// cannot be read yet is not an error: the shop starts idle and its page says
// how to create the merchant (the compose stack's first-run steps).
func newShop(c config, log *slog.Logger) (shop *demoshop.Shop, configured bool, err error) {
	if err := secret.Validate(c.secretKeyRef); err != nil {
		return nil, false, fmt.Errorf("-secret-key: %w", err)
	}
	key, err := secret.Resolve(c.secretKeyRef)
	if err != nil {
		log.Warn("no merchant key yet: the shop page explains how to create one", "err", err)
	}
	shop, err = demoshop.New(demoshop.Config{
		Origin: c.origin, GatewayURL: c.gatewayURL, GatewayAPIURL: c.gatewayAPIURL, SecretKey: string(key), Log: log,
	})
	return shop, len(key) > 0, err
}
