// Package testenv finds the real services that integration tests need (Redis,
// Chromium, Docker) and decides what their absence means: a skip with a clear
// message on a developer machine, a failure under CI (the CI variable set to
// anything), where a skipped integration test would hide a missing install
// step. The same rule holds for -short: under CI it fails a test that would
// skip for it, so no flag can quietly turn the suite into a subset.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// InCI reports whether the tests run under CI, where every dependency must
// be present. Any non-empty CI counts: CI systems set CI=true, CI=1 or
// CI=yes, and a check for one spelling would let the others skip silently.
func InCI() bool { return ciSet(os.Getenv("CI")) }

func ciSet(v string) bool { return v != "" }

// Missing skips the test, or fails it under CI, because a dependency is absent.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("CI is set and a test dependency is missing: %s", msg)
		return
	}
	t.Skipf("skipping: %s (set CI=true to make this a failure)", msg)
}

// SkipShort skips the test in -short mode, saying what it needs the time
// for; under CI it fails instead: CI runs the whole suite, and a -short that
// reached it would hide every long test behind a green run.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if !testing.Short() {
		return
	}
	if InCI() {
		t.Fatalf("CI is set and -short would skip this test (%s): CI runs without -short", why)
		return
	}
	t.Skipf("skipping in -short mode: %s", why)
}

// RedisAddr is where integration tests look for Redis: $BLINDGATE_TEST_REDIS or
// 127.0.0.1:6379.
func RedisAddr() string {
	if a := os.Getenv("BLINDGATE_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// Redis returns a client for a real Redis server on a database of its own
// (1-15), flushed before and after. The database is leased through a key in
// database 0 (SET NX with a TTL), so test processes of different packages
// running at once never share or flush each other's database. It skips (or
// fails in CI) when no server answers.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lease := redis.NewClient(&redis.Options{Addr: RedisAddr(), MaxRetries: -1})
	if err := lease.Ping(ctx).Err(); err != nil {
		_ = lease.Close()
		Missing(t, "no Redis server at %s: %v", RedisAddr(), err)
		return nil
	}
	owner := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	db := 0
	for deadline := time.Now().Add(2 * time.Minute); db == 0; {
		for n := 1; n <= 15; n++ {
			ok, err := lease.SetNX(context.Background(), fmt.Sprintf("blindgate:testenv:db:%d", n), owner, 10*time.Minute).Result()
			if err != nil {
				t.Fatalf("lease redis db: %v", err)
			}
			if ok {
				db = n
				break
			}
		}
		if db == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no free Redis test database in 2 minutes")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: RedisAddr(), DB: db})
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("flush redis db %d: %v", db, err)
	}
	t.Cleanup(func() {
		_ = c.FlushDB(context.Background()).Err()
		_ = c.Close()
		key := fmt.Sprintf("blindgate:testenv:db:%d", db)
		if v, _ := lease.Get(context.Background(), key).Result(); v == owner {
			_ = lease.Del(context.Background(), key).Err()
		}
		_ = lease.Close()
	})
	return c
}

// ChromiumPath returns the Chromium binary to drive, or skips (fails in CI).
func ChromiumPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("BLINDGATE_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	Missing(t, "no Chromium found (set BLINDGATE_CHROMIUM or install Debian's chromium)")
	return ""
}

// Docker skips (fails in CI) unless a Docker engine answers.
func Docker(t testing.TB) {
	t.Helper()
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" && len(h) > 7 && h[:7] == "unix://" {
		sock = h[7:]
	}
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		Missing(t, "no Docker engine at %s: %v", sock, err)
		return
	}
	_ = c.Close()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
