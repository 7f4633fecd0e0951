package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a redis-server of a test's own, on a free loopback port,
// for faults the shared server must never see (maxmemory, a restart). It
// keeps nothing on disk.
type RedisServer struct {
	Addr string
	bin  string
	args []string
	dir  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartRedisServer starts a dedicated redis-server with extra args (e.g.
// "--maxmemory", "2mb", "--maxmemory-policy", "noeviction"), stopped at
// cleanup. Without a redis-server binary ($BLINDGATE_TEST_REDIS_SERVER or
// on PATH) it skips (fails under CI).
func StartRedisServer(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	bin := os.Getenv("BLINDGATE_TEST_REDIS_SERVER")
	if bin == "" {
		bin = "redis-server"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		Missing(t, "no redis-server binary to start a dedicated Redis (set BLINDGATE_TEST_REDIS_SERVER): %v", err)
		return nil
	}
	s := &RedisServer{Addr: "127.0.0.1:" + strconv.Itoa(FreePort(t)), bin: path, args: args, dir: t.TempDir()}
	t.Cleanup(func() { s.kill() })
	s.Start(t)
	return s
}

// Start starts the server (again, after Stop) on the same address and
// waits until it answers.
func (s *RedisServer) Start(t testing.TB) {
	t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dedicated redis-server at %s does not answer: %v", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (as a crash would: no shutdown save) and waits for
// it to exit.
func (s *RedisServer) Stop(t testing.TB) {
	t.Helper()
	s.kill()
}

func (s *RedisServer) kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// Client returns a plain client of the server (for the test's own setup),
// closed at cleanup.
func (s *RedisServer) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// RefuseWrites makes the server refuse every write the way a full Redis
// does ("OOM command not allowed when used memory > 'maxmemory'", policy
// noeviction) while reads still answer: it stores 1 MiB of filler and sets
// maxmemory half a MiB above what was used before, well below what is used
// now, so the refusal does not hinge on a few bytes. FreeMemory undoes it.
func (s *RedisServer) RefuseWrites(t testing.TB) {
	t.Helper()
	c := s.Client(t)
	ctx := context.Background()
	used := usedMemory(t, c)
	val := make([]byte, 64<<10)
	for i := range 16 {
		if err := c.Set(ctx, fmt.Sprintf("testenv:fill:%d", i), val, 0).Err(); err != nil {
			t.Fatalf("filling the dedicated Redis: %v", err)
		}
	}
	if err := c.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatalf("config set: %v", err)
	}
	if err := c.ConfigSet(ctx, "maxmemory", strconv.FormatInt(used+512<<10, 10)).Err(); err != nil {
		t.Fatalf("config set: %v", err)
	}
	if err := c.Set(ctx, "testenv:probe", "x", 0).Err(); !isOOM(err) {
		t.Fatalf("the dedicated Redis still takes writes after filling: %v", err)
	}
}

// FreeMemory deletes the filler of RefuseWrites (DEL is allowed when full)
// and lifts maxmemory (the clients' own connections grow the server's use
// meanwhile): the server takes writes again, as after an operator freed
// memory or raised the limit.
func (s *RedisServer) FreeMemory(t testing.TB) {
	t.Helper()
	c := s.Client(t)
	ctx := context.Background()
	for i := range 16 {
		if err := c.Del(ctx, fmt.Sprintf("testenv:fill:%d", i)).Err(); err != nil {
			t.Fatalf("freeing the dedicated Redis: %v", err)
		}
	}
	if err := c.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatalf("config set: %v", err)
	}
	if err := c.Set(ctx, "testenv:probe", "x", 0).Err(); err != nil {
		t.Fatalf("the dedicated Redis refuses writes after freeing memory: %v", err)
	}
}

func usedMemory(t testing.TB, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatalf("info memory: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				break
			}
			return n
		}
	}
	t.Fatalf("no used_memory in INFO memory")
	return 0
}

func isOOM(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "OOM")
}

// FaultProxy is a TCP proxy on loopback in front of one server, that can
// pass traffic, hold it (a server that accepts and never answers), delay it
// or cut every connection. Tests put it between a client and Redis.
type FaultProxy struct {
	Addr   string
	target string
	ln     net.Listener

	mu     sync.Mutex
	mode   proxyMode
	delay  time.Duration
	lose   []byte        // LoseReplyTo's marker, until a request carries it
	change chan struct{} // closed and replaced at every mode change
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	closed bool
}

type proxyMode int

const (
	modePass proxyMode = iota
	modeStall
	modeDelay
	modeDrop
)

// NewFaultProxy listens on a free loopback port and forwards to target; it
// is closed at cleanup, with every goroutine it started ended.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fault proxy: %v", err)
	}
	p := &FaultProxy{Addr: ln.Addr().String(), target: target, ln: ln, change: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Pass forwards traffic (what was held during a stall goes through).
func (p *FaultProxy) Pass() { p.set(modePass, 0) }

// Stall holds every byte in both directions, on open and new connections,
// until the mode changes: a server that accepts and never answers.
func (p *FaultProxy) Stall() { p.set(modeStall, 0) }

// Delay forwards each chunk d late: a slow server.
func (p *FaultProxy) Delay(d time.Duration) { p.set(modeDelay, d) }

// Drop closes every connection and every new one at once: a server gone
// (crashed, restarting) behind an address that still accepts.
func (p *FaultProxy) Drop() {
	p.set(modeDrop, 0)
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
}

// LoseReplyTo passes traffic as before, but the next request that carries
// marker (a key name, say) has its connection cut when the server's answer
// comes back, without passing the answer on: a command that ran on the
// server while its client saw the connection fail.
func (p *FaultProxy) LoseReplyTo(marker string) {
	p.mu.Lock()
	p.lose = []byte(marker)
	p.mu.Unlock()
}

// carriesLost reports (once per LoseReplyTo) a request chunk that carries
// the marker.
func (p *FaultProxy) carriesLost(chunk []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lose == nil || !bytes.Contains(chunk, p.lose) {
		return false
	}
	p.lose = nil
	return true
}

// Conns is how many connections (client and server sides) are open.
func (p *FaultProxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops the proxy, closes every connection and waits for its
// goroutines.
func (p *FaultProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	_ = p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	close(p.change)
	p.change = make(chan struct{})
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *FaultProxy) set(m proxyMode, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.delay = m, d
	close(p.change)
	p.change = make(chan struct{})
}

func (p *FaultProxy) state() (proxyMode, time.Duration, chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay, p.change, p.closed
}

func (p *FaultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.mode == modeDrop {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *FaultProxy) untrack(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *FaultProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) {
			continue
		}
		server, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil || !p.track(server) {
			if server != nil && err == nil {
				_ = server.Close()
			}
			p.untrack(client)
			continue
		}
		done := make(chan struct{})
		var lost atomic.Bool // this connection's next answer is lost
		var once sync.Once
		end := func() {
			once.Do(func() {
				close(done)
				p.untrack(client)
				p.untrack(server)
			})
		}
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			p.pump(server, client, done, func(chunk []byte) bool {
				if p.carriesLost(chunk) {
					lost.Store(true)
				}
				return true
			})
			end()
		}()
		go func() {
			defer p.wg.Done()
			p.pump(client, server, done, func([]byte) bool { return !lost.Load() })
			end()
		}()
	}
}

// pump copies src to dst chunk by chunk, applying the mode to each chunk;
// pass sees each chunk first, and false ends the connection without it.
func (p *FaultProxy) pump(dst, src net.Conn, done chan struct{}, pass func([]byte) bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.hold(done) {
			return
		}
		if n > 0 && !pass(buf[:n]) {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hold waits as the mode says before a chunk goes through; false means the
// connection ended (or the proxy closed) meanwhile.
func (p *FaultProxy) hold(done chan struct{}) bool {
	for {
		mode, d, change, closed := p.state()
		switch {
		case closed || mode == modeDrop:
			return false
		case mode == modePass:
			return true
		case mode == modeDelay:
			timer := time.NewTimer(d)
			select {
			case <-timer.C:
				return true
			case <-done:
				timer.Stop()
				return false
			case <-change:
				timer.Stop()
			}
		default: // stall
			select {
			case <-done:
				return false
			case <-change:
			}
		}
	}
}

// FaultyRedis is a dedicated redis-server behind a FaultProxy: clients
// under test connect to Addr, and Faults break the pair in each way Redis
// breaks in production.
type FaultyRedis struct {
	Addr   string // the proxy's address: give it to the client under test
	Server *RedisServer
	Proxy  *FaultProxy
}

// NewFaultyRedis starts the server and the proxy in front of it. The
// server keeps an append-only file synced on every write, as production's
// does (docs/contracts.md: the replay cache survives a restart), so a
// restart loses nothing.
func NewFaultyRedis(t testing.TB) *FaultyRedis {
	t.Helper()
	srv := StartRedisServer(t, "--appendonly", "yes", "--appendfsync", "always")
	p := NewFaultProxy(t, srv.Addr)
	return &FaultyRedis{Addr: p.Addr, Server: srv, Proxy: p}
}

// RedisFault is one way Redis fails, and its end.
type RedisFault struct {
	Name   string
	Inject func(t testing.TB)
	Heal   func(t testing.TB)
}

// Faults are: "full" (maxmemory reached with noeviction: writes refused
// with OOM, reads answered), "stalled" (connections accepted, nothing
// answered), "slow" (every answer late by slow: pick it well above the
// client's timeout) and "restarted" (the server killed, then started again
// on the same address from its append-only file).
func (r *FaultyRedis) Faults(slow time.Duration) []RedisFault {
	return []RedisFault{
		{"full", r.Server.RefuseWrites, r.Server.FreeMemory},
		{"stalled", func(testing.TB) { r.Proxy.Stall() }, func(testing.TB) { r.Proxy.Pass() }},
		{"slow", func(testing.TB) { r.Proxy.Delay(slow) }, func(testing.TB) { r.Proxy.Pass() }},
		{"restarted", r.Server.Stop, r.Server.Start},
	}
}

// RedisStats is what a Redis server has spent so far (INFO cpu and
// commandstats): its CPU time, user and system over all its threads, and
// per command (a script's own commands counted under theirs) the calls and
// the microseconds spent in them (wall time, which a busy machine
// inflates; CPU is the robust figure). On a dedicated server
// (StartRedisServer) the difference of two readings is what the test
// asked of it.
type RedisStats struct {
	CPU      time.Duration
	Commands map[string]RedisCommandStats
}

// RedisCommandStats are one command's calls and microseconds.
type RedisCommandStats struct {
	Calls, USec int64
}

// ReadRedisStats reads c's server's RedisStats.
func ReadRedisStats(t testing.TB, c *redis.Client) RedisStats {
	t.Helper()
	info, err := c.Info(context.Background(), "cpu", "commandstats").Result()
	if err != nil {
		t.Fatalf("redis INFO: %v", err)
	}
	st := RedisStats{Commands: map[string]RedisCommandStats{}}
	for line := range strings.SplitSeq(info, "\n") {
		line = strings.TrimSpace(line)
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case name == "used_cpu_sys" || name == "used_cpu_user":
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				t.Fatalf("redis INFO %s: %v", name, err)
			}
			st.CPU += time.Duration(f * float64(time.Second))
		case strings.HasPrefix(name, "cmdstat_"):
			var cs RedisCommandStats
			for field := range strings.SplitSeq(val, ",") {
				k, v, _ := strings.Cut(field, "=")
				n, _ := strconv.ParseInt(v, 10, 64)
				switch k {
				case "calls":
					cs.Calls = n
				case "usec":
					cs.USec = n
				}
			}
			st.Commands[strings.TrimPrefix(name, "cmdstat_")] = cs
		}
	}
	return st
}

// Since is what the server spent between before and s.
func (s RedisStats) Since(before RedisStats) RedisStats {
	out := RedisStats{CPU: s.CPU - before.CPU, Commands: map[string]RedisCommandStats{}}
	for name, c := range s.Commands {
		b := before.Commands[name]
		if c.Calls != b.Calls {
			out.Commands[name] = RedisCommandStats{Calls: c.Calls - b.Calls, USec: c.USec - b.USec}
		}
	}
	return out
}
