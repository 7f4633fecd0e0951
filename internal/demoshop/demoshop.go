// Package demoshop is the demo merchant that `blindgate demo` and the shop
// image of docker-compose.yml run: a shop page on its own origin that embeds
// Blindgate's hosted checkout, and the shop's server, which holds the
// merchant's secret API key, creates checkout sessions and reads the masked
// card of the token the page receives. It is what a merchant integration
// looks like, not part of Blindgate; it never sees a card number, which is why
// it imports nothing of the key service (the shop image must link no card
// code).
package demoshop

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/blindgate/blindgate/checkout"
)

//go:embed site
var site embed.FS

// Config configures a Shop.
type Config struct {
	// Origin is this shop's origin as browsers see it: the only origin the
	// checkout sessions it creates allow.
	Origin string
	// GatewayURL is the gateway's origin as browsers see it (embed.js, the
	// checkout frame).
	GatewayURL string
	// GatewayAPIURL is how this server reaches the merchant API (another
	// name inside a container network); empty means GatewayURL.
	GatewayAPIURL string
	// SecretKey is the merchant's secret API key. Empty leaves the shop idle:
	// its page explains how to create a merchant, its API answers 503.
	SecretKey string
	// Log receives gateway call failures; nil discards them.
	Log *slog.Logger
}

// Validate names the first bad field and fills defaults.
func (c *Config) Validate() error {
	if c.GatewayAPIURL == "" {
		c.GatewayAPIURL = c.GatewayURL
	}
	for _, f := range []struct{ name, v string }{
		{"Origin", c.Origin}, {"GatewayURL", c.GatewayURL}, {"GatewayAPIURL", c.GatewayAPIURL},
	} {
		if err := checkOrigin(f.v); err != nil {
			return fmt.Errorf("demoshop: %s: %w", f.name, err)
		}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// checkOrigin accepts scheme://host[:port] with nothing after it.
func checkOrigin(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" {
		return fmt.Errorf("%q is not an origin like https://shop.example", s)
	}
	return nil
}

// Shop serves the demo merchant's page and its small server-side API.
type Shop struct {
	cfg      Config
	gateway  string // GatewayURL without a trailing slash
	embedSRI string
	page     *template.Template
	hc       *http.Client
}

// New validates cfg and prepares the shop.
func New(cfg Config) (*Shop, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The hash is pinned from this build's copy of embed.js, as a merchant
	// pins it from a release: a gateway serving another script is refused
	// by the browser instead of trusted.
	assets, err := checkout.NewAssets()
	if err != nil {
		return nil, fmt.Errorf("demoshop: %w", err)
	}
	page, err := template.ParseFS(site, "site/index.html")
	if err != nil {
		return nil, fmt.Errorf("demoshop: %w", err)
	}
	return &Shop{
		cfg: cfg, gateway: strings.TrimSuffix(cfg.GatewayURL, "/"), embedSRI: assets.SRI(checkout.ScriptEmbed), page: page,
		hc: &http.Client{Timeout: 10 * time.Second},
	}, nil
}

var tokenID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// Handler returns the shop's routes: the page and its assets, /healthz, and
// the two API calls the page makes (start a checkout, read a token's card).
func (s *Shop) Handler() http.Handler {
	csp := fmt.Sprintf("default-src 'none'; script-src 'self' %[1]s; style-src 'self'; connect-src 'self'; frame-src %[1]s; base-uri 'none'; form-action 'none'; frame-ancestors 'none'", s.gateway)
	configured := s.cfg.SecretKey != ""
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		if err := s.page.Execute(&buf, map[string]any{
			"Gateway": s.gateway, "EmbedSRI": s.embedSRI, "Origin": s.cfg.Origin, "Configured": configured,
		}); err != nil {
			http.Error(w, "page error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
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
		_, _ = fmt.Fprintf(w, `{"status":"ok","configured":%t}`, configured)
	})
	mux.HandleFunc("POST /api/session", func(w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(map[string]any{"allowed_origins": []string{s.cfg.Origin}, "locale": "en"})
		s.proxy(w, r.Context(), http.MethodPost, "/v1/checkout/sessions", body)
	})
	mux.HandleFunc("GET /api/token/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		// The id goes into the gateway's URL path: nothing that could
		// change which resource the secret key is used on.
		if !tokenID.MatchString(id) {
			writeError(w, http.StatusBadRequest, "bad_token", "not a token id")
			return
		}
		s.proxy(w, r.Context(), http.MethodGet, "/v1/tokens/"+id, nil)
	})
	return mux
}

// Serve serves Handler on ln until ctx ends, then shuts down gracefully.
func (s *Shop) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
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

// proxy calls the merchant API with the shop's secret key, which never
// reaches the browser.
func (s *Shop) proxy(w http.ResponseWriter, ctx context.Context, method, path string, body []byte) {
	if s.cfg.SecretKey == "" {
		writeError(w, http.StatusServiceUnavailable, "not_configured", "the shop has no merchant key yet; see the page")
		return
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(s.cfg.GatewayAPIURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "request error")
		return
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.SecretKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		// The URL can hold a token id: log the transport failure without it.
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err
		}
		s.cfg.Log.Error("gateway call failed", "method", method, "err", cause)
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
