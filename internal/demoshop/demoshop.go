// Package demoshop is the demo merchant that `blindgate demo` and the shop
// image of docker-compose.yml run: a shop page on its own origin that embeds
// Blindgate's hosted checkout, and the shop's server, which holds the
// merchant's secret API key, creates checkout sessions and reports, once, the
// card of the checkout this browser started (brand and last 4: what a shop
// shows its shopper). It has no open token lookup: a page that could read
// any token's masked card (BIN, fingerprint) through the shop's key was an
// oracle for anyone. It is what a merchant integration looks like, not part
// of Blindgate; it never sees a card number, which is why it imports nothing
// of the key service (the shop image must link no card code).
package demoshop

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
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
	"sync"
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
	orders   *orders
}

// orderCookie binds a browser to the checkout session the shop created for
// it; the cookie value is random and the mapping lives only in this process.
const orderCookie = "shop_order"

// orderTTL bounds how long a started checkout may be reported.
const orderTTL = 30 * time.Minute

// orders maps a browser's cookie to the checkout session started for it.
type orders struct {
	mu sync.Mutex
	m  map[string]order
}

type order struct {
	session string
	expires time.Time
}

// maxOrders bounds the table; the oldest expire first and a full table
// refuses new checkouts rather than forgetting open ones.
const maxOrders = 10_000

func (o *orders) add(session string) (string, bool) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", false
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, v := range o.m {
		if now.After(v.expires) {
			delete(o.m, k)
		}
	}
	if len(o.m) >= maxOrders {
		return "", false
	}
	o.m[id] = order{session: session, expires: now.Add(orderTTL)}
	return id, true
}

// take returns the session of cookie id and forgets it: a card is reported once.
func (o *orders) take(id string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	v, ok := o.m[id]
	delete(o.m, id)
	if !ok || time.Now().After(v.expires) {
		return "", false
	}
	return v.session, true
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
		hc: &http.Client{Timeout: 10 * time.Second}, orders: &orders{m: map[string]order{}},
	}, nil
}

var tokenID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// Handler returns the shop's routes: the page and its assets, /healthz, and
// the two API calls the page makes (start a checkout; report the card of the
// checkout this browser started, once).
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
		// The page's one item, €25.00: the checkout's button names the amount.
		// The order number goes with the session, so the back office finds
		// the token by it, as a support agent would.
		body, _ := json.Marshal(map[string]any{"allowed_origins": []string{s.cfg.Origin}, "locale": "en", "amount": 2500, "currency": "EUR",
			"reference": "DEMO-" + rand.Text()[:8], "metadata": map[string]string{"item": "Blindgate T-shirt"}})
		status, out, ok := s.call(w, r.Context(), http.MethodPost, "/v1/checkout/sessions", body)
		if !ok {
			return
		}
		var sess struct {
			ID string `json:"id"`
		}
		if status != http.StatusCreated {
			// Whoever set the shop up reads this (docker compose logs shop)
			// and the page shows the same code: a wrong key, an origin the
			// merchant does not allow, a gateway not ready.
			s.cfg.Log.Warn("the gateway refused a checkout session", "status", status, "code", errorCode(out))
		}
		if status == http.StatusCreated && json.Unmarshal(out, &sess) == nil && tokenID.MatchString(sess.ID) {
			cookie, ok := s.orders.add(sess.ID)
			if !ok {
				writeError(w, http.StatusServiceUnavailable, "busy", "too many open checkouts; retry later")
				return
			}
			http.SetCookie(w, &http.Cookie{
				Name: orderCookie, Value: cookie, Path: "/api/", MaxAge: int(orderTTL / time.Second),
				HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: strings.HasPrefix(s.cfg.Origin, "https://"),
			})
		}
		writeJSON(w, status, out)
	})
	// The page posts the token it got from the checkout; the server answers
	// only for the session it started for this browser's cookie, once, and
	// only with what a shop shows its shopper.
	mux.HandleFunc("POST /api/paid", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Token string `json:"token"`
		}
		c, err := r.Cookie(orderCookie)
		if err != nil || json.NewDecoder(io.LimitReader(r.Body, 1024)).Decode(&req) != nil || !tokenID.MatchString(req.Token) {
			writeError(w, http.StatusBadRequest, "bad_request", "no checkout of yours to report")
			return
		}
		session, ok := s.orders.take(c.Value)
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "no checkout of yours to report")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: orderCookie, Value: "", Path: "/api/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		status, out, ok := s.call(w, r.Context(), http.MethodGet, "/v1/tokens/"+req.Token, nil)
		if !ok {
			return
		}
		var tok struct {
			SessionID string `json:"session_id"`
			Brand     string `json:"brand"`
			Last4     string `json:"last4"`
		}
		if status != http.StatusOK || json.Unmarshal(out, &tok) != nil || tok.SessionID != session {
			writeError(w, http.StatusNotFound, "not_found", "no checkout of yours to report")
			return
		}
		b, _ := json.Marshal(map[string]string{"token": req.Token, "brand": tok.Brand, "last4": tok.Last4})
		writeJSON(w, http.StatusOK, b)
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

// call asks the merchant API with the shop's secret key, which never
// reaches the browser. On failure it has written the answer and ok is false.
func (s *Shop) call(w http.ResponseWriter, ctx context.Context, method, path string, body []byte) (int, []byte, bool) {
	if s.cfg.SecretKey == "" {
		writeError(w, http.StatusServiceUnavailable, "not_configured", "the shop has no merchant key yet; see the page")
		return 0, nil, false
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(s.cfg.GatewayAPIURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "request error")
		return 0, nil, false
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
		return 0, nil, false
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadGateway, "gateway_unreachable", "gateway answer unreadable")
		return 0, nil, false
	}
	return resp.StatusCode, out, true
}

// errorCode is the code of an error answer ({"error":{"code"}}), or "".
func errorCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
