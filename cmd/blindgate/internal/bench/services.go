package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// child is one service process started by the bench.
type child struct {
	role  string
	cmd   *exec.Cmd
	stdin interface{ Close() error }
	ready childReady
	logf  *os.File
	done  chan error
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// startChild writes the child's config into dir and starts it with
// command, then waits for its ready line. Its stderr (logs) goes to
// dir/<role>.log.
func startChild(ctx context.Context, command func(cfgPath string) *exec.Cmd, cfg childConfig) (*child, error) {
	cfgPath := filepath.Join(cfg.Dir, cfg.Role+".json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(cfg.Dir, cfg.Role+".log"))
	if err != nil {
		return nil, err
	}
	cmd := command(cfgPath)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("bench: start %s: %w", cfg.Role, err)
	}
	c := &child{role: cfg.Role, cmd: cmd, stdin: stdin, logf: logf, done: make(chan error, 1)}
	ready, err := readReady(bufio.NewReader(stdout), 2*time.Minute)
	// Wait only after stdout has been read from: Wait closes the pipe.
	go func() { c.done <- cmd.Wait() }()
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("bench: %s: %w (see %s)", cfg.Role, err, logf.Name())
	}
	c.ready = ready
	return c, nil
}

// stop asks the child to drain and exit (stdin EOF and SIGTERM), and kills
// it if it does not within 20 seconds.
func (c *child) stop() {
	if c == nil || c.cmd.Process == nil {
		return
	}
	_ = c.stdin.Close()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	_ = c.logf.Close()
}

// stats reads the child's runtime figures; gc collects first, so that the
// heap figure is the live heap.
func (c *child) stats(ctx context.Context, hc *http.Client, gc bool) (ChildStats, error) {
	var st ChildStats
	u := "http://" + c.ready.Debug + "/stats"
	if gc {
		u += "?gc=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return st, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// profile records a CPU profile of the child over d and returns it.
func (c *child) profile(ctx context.Context, hc *http.Client, d time.Duration) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/cpuprofile?d=%s", c.ready.Debug, d), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err != nil {
		return nil, fmt.Errorf("bench: %s profile: %w", c.role, err)
	}
	return b, nil
}

// redisCPU is the Redis server's CPU time so far (INFO cpu), with
// microsecond resolution. The server may be shared: its figure is an upper
// bound of what the bench cost it.
func redisCPU(ctx context.Context, rdb *redis.Client) time.Duration {
	s, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
