// Command shop is the demo merchant of docker-compose.yml: a shop page on its
// own origin that embeds Blindgate's hosted checkout, and the shop's server,
// which holds the merchant's secret API key, creates checkout sessions and
// reads the masked card of the token the page receives. It is what a merchant
// integration looks like, not part of Blindgate; it never sees a card number.
//
//	shop -addr 0.0.0.0:8081 -origin http://localhost:8081 \
//	     -gateway-url http://localhost:8080 -gateway-api-url http://gateway:8080 \
//	     -secret-key env:BLINDGATE_SHOP_MERCHANT_KEY
//
// Every flag has an environment variable (BLINDGATE_SHOP_<FLAG>). Without a
// merchant key the page explains how to create one and the shop stays idle.
package main

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/internal/secret"
)

//go:embed site
var site embed.FS

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
	if c.gatewayAPIURL == "" {
		c.gatewayAPIURL = c.gatewayURL
	}
	s, err := newShop(c, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	log.Info("shop listening", "addr", ln.Addr().String(), "origin", c.origin, "gateway", c.gatewayURL, "configured", s.secretKey != "")
	return serve(ctx, ln, s.routes())
}

func env(name, def string) string {
	if v, ok := os.LookupEnv("BLINDGATE_SHOP_" + name); ok {
		return v
	}
	return def
}

type shop struct {
	cfg       config
	secretKey string // "" until a merchant is created: the page says how
	embedSRI  string
	page      *template.Template
	hc        *http.Client
	log       *slog.Logger
}

func newShop(c config, log *slog.Logger) (*shop, error) {
	for name, v := range map[string]string{"origin": c.origin, "gateway-url": c.gatewayURL, "gateway-api-url": c.gatewayAPIURL} {
		if err := checkOrigin(v); err != nil {
			return nil, fmt.Errorf("-%s: %w", name, err)
		}
	}
	if err := secret.Validate(c.secretKeyRef); err != nil {
		return nil, fmt.Errorf("-secret-key: %w", err)
	}
	key, err := secret.Resolve(c.secretKeyRef)
	if err != nil {
		log.Warn("no merchant key yet: the shop page explains how to create one", "err", err)
	}
	// The hash is pinned from this build's copy of embed.js, as a merchant
	// pins it from a release: a gateway serving another script is refused
	// by the browser instead of trusted.
	assets, err := checkout.NewAssets()
	if err != nil {
		return nil, err
	}
	page, err := template.ParseFS(site, "site/index.html")
	if err != nil {
		return nil, err
	}
	return &shop{
		cfg: c, secretKey: string(key), embedSRI: assets.SRI(checkout.ScriptEmbed), page: page,
		hc: &http.Client{Timeout: 10 * time.Second}, log: log,
	}, nil
}

// checkOrigin accepts scheme://host[:port] with nothing after it.
func checkOrigin(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" {
		return fmt.Errorf("%q is not an origin like https://shop.example", s)
	}
	return nil
}

var tokenID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

func (s *shop) routes() http.Handler {
	gw := strings.TrimSuffix(s.cfg.gatewayURL, "/")
	csp := fmt.Sprintf("default-src 'none'; script-src 'self' %[1]s; style-src 'self'; connect-src 'self'; frame-src %[1]s; base-uri 'none'; form-action 'none'; frame-ancestors 'none'", gw)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		var buf bytes.Buffer
		if err := s.page.Execute(&buf, map[string]any{
			"Gateway": gw, "EmbedSRI": s.embedSRI, "Origin": s.cfg.origin, "Configured": s.secretKey != "",
		}); err != nil {
			http.Error(w, "page error", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(buf.Bytes())
	})
	for name, ct := range map[string]string{"shop.js": "text/javascript; charset=utf-8", "shop.css": "text/css; charset=utf-8"} {
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) {
			b, _ := site.ReadFile("site/" + name)
			w.Header().Set("Content-Type", ct)
			_, _ = w.Write(b)
		})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"status":"ok","configured":%t}`, s.secretKey != "")
	})
	mux.HandleFunc("POST /api/session", func(w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(map[string]any{"allowed_origins": []string{s.cfg.origin}, "locale": "en"})
		s.proxy(w, r.Context(), http.MethodPost, "/v1/checkout/sessions", body)
	})
	mux.HandleFunc("GET /api/token/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !tokenID.MatchString(id) {
			writeError(w, http.StatusBadRequest, "bad_token", "not a token id")
			return
		}
		s.proxy(w, r.Context(), http.MethodGet, "/v1/tokens/"+id, nil)
	})
	return mux
}

// proxy calls the merchant API with the shop's secret key, which never
// reaches the browser.
func (s *shop) proxy(w http.ResponseWriter, ctx context.Context, method, path string, body []byte) {
	if s.secretKey == "" {
		writeError(w, http.StatusServiceUnavailable, "not_configured", "the shop has no merchant key yet; see the page")
		return
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(s.cfg.gatewayAPIURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "request error")
		return
	}
	req.Header.Set("Authorization", "Bearer "+s.secretKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		s.log.Error("gateway call failed", "path", path, "err", err)
		writeError(w, http.StatusBadGateway, "gateway_unreachable", "gateway unreachable")
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
