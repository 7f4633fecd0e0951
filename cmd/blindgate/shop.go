package main

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/blindgate/blindgate/checkout"
)

//go:embed demoshop
var shopFS embed.FS

// shop is the demo merchant: its page embeds the checkout, its server holds
// the secret API key and talks to the gateway's merchant API. It is what a
// merchant integration looks like, not part of Blindgate.
type shop struct {
	gateway, secretKey string
	log                *slog.Logger
	hc                 *http.Client
	page               *template.Template
	embedSRI           string
}

func newShop(gateway, secretKey string, log *slog.Logger) *shop {
	assets, err := checkout.NewAssets()
	sri := ""
	if err == nil {
		sri = assets.SRI(checkout.ScriptEmbed)
	}
	return &shop{
		gateway: gateway, secretKey: secretKey, log: log, embedSRI: sri,
		hc:   &http.Client{Timeout: 10 * time.Second},
		page: template.Must(template.ParseFS(shopFS, "demoshop/index.html")),
	}
}

func (s *shop) serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	origin := "http://localhost:" + port(ln)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", fmt.Sprintf("default-src 'none'; script-src 'self' %[1]s; style-src 'self'; connect-src 'self'; frame-src %[1]s; base-uri 'none'; form-action 'none'", s.gateway))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = s.page.Execute(w, map[string]string{"Gateway": s.gateway, "EmbedSRI": s.embedSRI, "Origin": origin})
	})
	for _, f := range []string{"shop.js", "shop.css"} {
		mux.HandleFunc("GET /"+f, func(w http.ResponseWriter, r *http.Request) {
			b, _ := shopFS.ReadFile("demoshop/" + f)
			ct := "text/css; charset=utf-8"
			if strings.HasSuffix(f, ".js") {
				ct = "text/javascript; charset=utf-8"
			}
			w.Header().Set("Content-Type", ct)
			_, _ = w.Write(b)
		})
	}
	mux.HandleFunc("POST /api/session", func(w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(map[string]any{"allowed_origins": []string{origin}, "locale": "en"})
		s.proxy(w, r.Context(), http.MethodPost, "/v1/checkout/sessions", body)
	})
	mux.HandleFunc("GET /api/token/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.proxy(w, r.Context(), http.MethodGet, "/v1/tokens/"+r.PathValue("id"), nil)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// proxy calls the gateway's merchant API with the shop's secret key.
func (s *shop) proxy(w http.ResponseWriter, ctx context.Context, method, path string, body []byte) {
	req, _ := http.NewRequestWithContext(ctx, method, s.gateway+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.secretKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		s.log.Error("gateway call failed", "path", path, "err", err)
		http.Error(w, `{"error":{"code":"gateway_unreachable","message":"gateway unreachable"}}`, http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
}
