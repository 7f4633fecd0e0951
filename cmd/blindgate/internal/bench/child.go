package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	rpprof "runtime/pprof"
	"sync/atomic"
	"time"

	gwapp "github.com/blindgate/blindgate/gateway/app"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/runtimetune"
	ksapp "github.com/blindgate/blindgate/keyservice/app"
)

// Roles of a service child process.
const (
	RoleKeyService = "keyservice"
	RoleGateway    = "gateway"
)

// Audience is the key service id the bench's clients sign for.
const Audience = "blindgate-keyservice"

// merchantOrigin is the bench merchant's registered origin.
const merchantOrigin = "https://shop.example.com"

// childConfig is what the parent hands a service child, as a JSON file in
// the run's folder. It holds paths and addresses, never a secret.
type childConfig struct {
	Role    string `json:"role"`
	Dir     string `json:"dir"`
	Redis   string `json:"redis"`
	RedisDB int    `json:"redis_db"`
	// RedisUnbatched: the service's -redis-batch=false.
	RedisUnbatched bool   `json:"redis_unbatched,omitempty"`
	KeyServiceURL  string `json:"keyservice_url,omitempty"`
	// Forward: the gateway signs forwards with the forward identity.
	Forward  bool   `json:"forward,omitempty"`
	LogLevel string `json:"log_level"`
}

// childReady is the one line a child prints on stdout once it accepts
// connections. SecretKey is the bench merchant's API key, created for this
// run in a throw-away database.
type childReady struct {
	Addr       string `json:"addr"`
	Debug      string `json:"debug"`
	SecretKey  string `json:"secret_key,omitempty"`
	MerchantID string `json:"merchant_id,omitempty"`
}

// ChildStats is what a child's /stats answers: the runtime figures the
// soak watches for growth.
type ChildStats struct {
	Goroutines int    `json:"goroutines"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapSys    uint64 `json:"heap_sys"`
	Sys        uint64 `json:"sys"`
	NumGC      uint32 `json:"num_gc"`
	RSS        int64  `json:"rss"`
	PeakRSS    int64  `json:"peak_rss"`
	// Durable audit appends and the fsyncs that committed them: their
	// ratio is the group-commit batch size.
	AuditAppends uint64 `json:"audit_appends,omitempty"`
	AuditSyncs   uint64 `json:"audit_syncs,omitempty"`
	// Lua scripts sent to Redis and the round trips that carried them
	// (redisx's batching): their ratio is the batch size.
	RedisScripts uint64 `json:"redis_scripts,omitempty"`
	RedisTrips   uint64 `json:"redis_round_trips,omitempty"`
}

// ChildMain runs one service of a benchmark in this process, as the parent
// asked in the config file at cfgPath. It prints a childReady line on
// stdout, then serves until ctx ends or stdin closes (the parent went away).
func ChildMain(ctx context.Context, cfgPath string, stdin io.Reader, stdout, stderr io.Writer) error {
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	var cfg childConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("bench child config: %w", err)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("service", cfg.Role)
	// As the services' own binaries do (cmd/keyservice, cmd/gateway).
	runtimetune.Apply()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if stdin != nil {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			cancel()
		}()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	dbg, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return err
	}
	var app atomic.Pointer[batchingApp]
	go func() { _ = http.Serve(dbg, debugMux(&app)) }()
	defer dbg.Close()

	ready := childReady{Addr: ln.Addr().String(), Debug: dbg.Addr().String()}
	var serve func(context.Context, net.Listener) error
	switch cfg.Role {
	case RoleKeyService:
		var a batchingApp
		serve, a, err = keyService(cfg, ln, log)
		app.Store(&a)
	case RoleGateway:
		var a batchingApp
		serve, a, ready.MerchantID, ready.SecretKey, err = gateway(ctx, cfg, ln, log)
		app.Store(&a)
	default:
		err = fmt.Errorf("bench child: unknown role %q", cfg.Role)
	}
	if err != nil {
		ln.Close()
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, ln) }()
	line, _ := json.Marshal(ready)
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		cancel()
		<-errc
		return err
	}
	return <-errc
}

// debugMux serves /stats (runtime figures; ?gc=1 collects first, so that
// heap_alloc is the live heap, which is what a leak makes grow),
// /cpuprofile and pprof.
func debugMux(app *atomic.Pointer[batchingApp]) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := ChildStats{
			Goroutines: runtime.NumGoroutine(), HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse,
			HeapSys: ms.HeapSys, Sys: ms.Sys, NumGC: ms.NumGC,
		}
		st.RSS, st.PeakRSS, _ = procMem(os.Getpid())
		if a := app.Load(); a != nil && *a != nil {
			au := (*a).AuditStats()
			st.AuditAppends, st.AuditSyncs = au.Appends, au.Syncs
			if rb, ok := (*a).RedisBatching(); ok {
				st.RedisScripts, st.RedisTrips = rb.Scripts, rb.Batches
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("/cpuprofile", cpuProfile)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// keyService builds the real key service (keyservice/app) on Redis with a
// durable audit log, unsealed at start with the run's master key file. Its
// rate limits stay in force (each check still costs its Redis round trip)
// but far above what one machine can do, so the bench measures work, not
// refusals.
func keyService(cfg childConfig, ln net.Listener, log *slog.Logger) (func(context.Context, net.Listener) error, batchingApp, error) {
	p := func(name string) string { return filepath.Join(cfg.Dir, name) }
	const perMinute, perDay, perSecond = 60_000_000, 100_000_000_000, 10_000_000
	// The forward limits' ceiling (config.Validate): far above a forward's pace here.
	const forwardPerSecond = 10_000
	ks, err := ksapp.New(ksapp.Config{
		Addr: ln.Addr().String(), DevHTTP: true, KeyringPath: p(fileKeyring), Shares: 1,
		MasterKey: "file:" + p(fileMasterKey), ClientsPath: p(fileClients), Audience: Audience,
		Skew: 5 * time.Second, AuditPath: p("keyservice-audit.log"), Freshness: 15 * time.Minute,
		Redis:           redisx.Config{Addrs: cfg.Redis, DB: cfg.RedisDB, Unbatched: cfg.RedisUnbatched},
		RevealPerMinute: perMinute, RevealPerDay: perDay,
		RevealClientPerMinute: perMinute, RevealClientPerDay: perDay,
		InspectPerSecond: perSecond, InspectClientPerDay: perDay, InspectMerchantPerDay: perDay, LogLevel: cfg.LogLevel,
		// Written by the parent once the gateway has made the bench merchant
		// (the forward paths only); the key service's watcher loads it.
		DestinationsPath:         p(fileDestinations),
		ForwardMerchantPerSecond: forwardPerSecond, ForwardDestinationPerSecond: forwardPerSecond,
		// Reveals are approved by the bench operator's passkey, which the
		// parent approved in this registry (fixture.enrolPasskey).
		RevealApproval: "passkey", WebAuthnOrigins: benchOrigin, PasskeysPath: p(filePasskeys),
	}, log)
	if err != nil {
		return nil, nil, err
	}
	return ks.Serve, ks, nil
}

// batchingApp is what both service apps expose of their batching, for
// /stats: the audit log's group commit and redisx's batched scripts.
type batchingApp interface {
	AuditStats() audit.Stats
	RedisBatching() (redisx.BatchStats, bool)
}

// gateway builds the real gateway (gateway/app) on Redis and creates the
// bench merchant; it returns the merchant's id and secret key.
func gateway(ctx context.Context, cfg childConfig, ln net.Listener, log *slog.Logger) (func(context.Context, net.Listener) error, batchingApp, string, string, error) {
	p := func(name string) string { return filepath.Join(cfg.Dir, name) }
	publicURL := "http://" + ln.Addr().String()
	forwardKey := ""
	if cfg.Forward {
		forwardKey = p(fileForwardKey)
	}
	gw, err := gwapp.New(gwapp.Config{
		Addr: ln.Addr().String(), PublicURL: publicURL, Store: "redis",
		Redis:         redisx.Config{Addrs: cfg.Redis, DB: cfg.RedisDB, Unbatched: cfg.RedisUnbatched},
		KeyServiceURL: cfg.KeyServiceURL, Audience: Audience,
		CheckoutClientID: clientGateway, CheckoutKeyFile: p(fileGatewayKey),
		AuditPath: p("gateway-audit.log"), CVCTTL: 10 * time.Minute,
		// Per-IP submissions per minute: every bench request comes from 127.0.0.1.
		SubmitPerIP: 100_000_000, LogLevel: cfg.LogLevel,
		ForwardClientID: clientForward, ForwardKeyFile: forwardKey,
	}, log)
	if err != nil {
		return nil, nil, "", "", err
	}
	m, sk, err := gw.Stores().Merchants.Create(ctx, "Bench Shop", []string{merchantOrigin})
	if err != nil {
		return nil, nil, "", "", fmt.Errorf("bench merchant: %w", err)
	}
	return gw.Serve, gw, m.ID, sk, nil
}

// readReady waits for a child's ready line.
func readReady(r *bufio.Reader, timeout time.Duration) (childReady, error) {
	type res struct {
		line []byte
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		l, err := r.ReadBytes('\n')
		ch <- res{l, err}
	}()
	select {
	case x := <-ch:
		if x.err != nil {
			return childReady{}, fmt.Errorf("child exited before it was ready: %w", x.err)
		}
		var cr childReady
		if err := json.Unmarshal(x.line, &cr); err != nil {
			return childReady{}, fmt.Errorf("child ready line: %w", err)
		}
		return cr, nil
	case <-time.After(timeout):
		return childReady{}, errors.New("child not ready in time")
	}
}

// cpuProfile answers a CPU profile of this process over ?d= (a Go
// duration). Unlike pprof's handler it takes less than a second, which
// keeps the harness's smoke test short.
func cpuProfile(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.URL.Query().Get("d"))
	if err != nil || d <= 0 || d > 10*time.Minute {
		http.Error(w, "d: a duration up to 10m", http.StatusBadRequest)
		return
	}
	var buf bytes.Buffer
	if err := rpprof.StartCPUProfile(&buf); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-r.Context().Done():
		t.Stop()
	}
	rpprof.StopCPUProfile()
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(buf.Bytes())
}
