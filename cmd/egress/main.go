// Command egress is the key zone's only way out: an HTTP CONNECT proxy on
// the key zone and an outside network that opens tunnels only to the
// allow-listed host:port of the forward destinations (package
// cmd/egress/internal/proxy has the rules).
//
//	egress -addr 0.0.0.0:3128 -allow "api.processor.example:443"
//	egress -allow-file /etc/blindgate/egress-allow.txt
//
// The allow-list is what `keyservice destinations list -hosts` prints. Every
// flag has an environment variable (BLINDGATE_EGRESS_<FLAG>). An empty list
// refuses everything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/blindgate/blindgate/cmd/egress/internal/proxy"
	"github.com/blindgate/blindgate/internal/envflag"
)

type config struct {
	addr, allow, allowFile string
	maxTunnel, reload      time.Duration
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], log); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h: the flags were printed; not a failure
		}
		log.Error("egress stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	var c config
	env := envflag.Env("BLINDGATE_EGRESS_")
	fs := flag.NewFlagSet("egress", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", env.String("ADDR", "127.0.0.1:3128"), "listen address")
	fs.StringVar(&c.allow, "allow", env.String("ALLOW", ""), "allowed targets: `host:port [private-prefix ...]` entries, separated by commas or newlines")
	fs.StringVar(&c.allowFile, "allow-file", env.String("ALLOW_FILE", ""), "file of allowed targets, one entry a line (re-read when it changes)")
	fs.DurationVar(&c.maxTunnel, "max-tunnel", env.Duration("MAX_TUNNEL", 5*time.Minute), "longest life of one tunnel")
	fs.DurationVar(&c.reload, "reload", env.Duration("RELOAD", 5*time.Second), "how often -allow-file is checked for changes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.maxTunnel < time.Second || c.reload < 100*time.Millisecond {
		return errors.New("config: max-tunnel must be >= 1s and reload >= 100ms")
	}
	src := allowSource{inline: c.allow, file: c.allowFile}
	al, _, err := src.load()
	if err != nil {
		return err
	}
	if len(al) == 0 {
		log.Warn("egress allow-list is empty: every tunnel is refused")
	}
	p := proxy.New(proxy.Config{Allow: al, Log: log, MaxTunnel: c.maxTunnel})
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go src.watch(ctx, c.reload, p, log)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("egress proxy listening", "addr", ln.Addr().String(), "targets", targets(al))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// allowSource is the inline list and the file, read together.
type allowSource struct {
	inline, file string
	stamp        string
}

func (s *allowSource) load() (proxy.AllowList, bool, error) {
	text := s.inline
	stamp := ""
	if s.file != "" {
		st, err := os.Stat(s.file)
		if err != nil {
			return nil, false, fmt.Errorf("allow-file: %w", err)
		}
		stamp = fmt.Sprint(st.ModTime().UnixNano(), st.Size())
		if stamp == s.stamp {
			return nil, false, nil
		}
		if st.Size() > 1<<20 {
			return nil, false, errors.New("allow-file: larger than 1 MiB")
		}
		b, err := os.ReadFile(s.file)
		if err != nil {
			return nil, false, fmt.Errorf("allow-file: %w", err)
		}
		text += "\n" + string(b)
	}
	al, err := proxy.ParseAllowList(text)
	if err != nil {
		return nil, false, err
	}
	s.stamp = stamp
	return al, true, nil
}

// watch re-reads the file when it changes; a bad file never replaces a
// good list.
func (s *allowSource) watch(ctx context.Context, every time.Duration, p *proxy.Proxy, log *slog.Logger) {
	if s.file == "" {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		al, changed, err := s.load()
		switch {
		case err != nil:
			log.Error("egress allow-list not reloaded; keeping the previous one", "err", err)
		case changed:
			p.SetAllowList(al)
			log.Info("egress allow-list reloaded", "targets", targets(al))
		}
	}
}

func targets(al proxy.AllowList) string {
	var t []string
	for k := range al {
		t = append(t, k)
	}
	return strings.Join(t, ",")
}
