package api_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/replay"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// fullDisk fails the audit log's writes once full is set.
type fullDisk struct {
	audit.File
	full atomic.Bool
}

func (f *fullDisk) Write(p []byte) (int, error) {
	if f.full.Load() {
		return 0, errors.New("injected: no space left on device")
	}
	return f.File.Write(p)
}

// TestReadyzTellsTheTruth: /readyz is 503 and names the failing check
// whenever the key service cannot decrypt; /healthz (liveness) stays 200.
func TestReadyzTellsTheTruth(t *testing.T) {
	deadRedis := func(t *testing.T) redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	tests := []struct {
		name    string
		redis   func(t *testing.T) redis.UniversalClient // nil: no Redis (memory backends)
		fault   func(t *testing.T, z *kstest.Zone, disk *fullDisk)
		failing []string
		status  map[string]string
	}{
		{"200/all-ok", nil, nil, nil, map[string]string{"seal": "ok", "keyring": "ok", "audit": "ok"}},
		{"503/sealed", nil, func(t *testing.T, z *kstest.Zone, _ *fullDisk) { z.Holder.Seal() }, []string{"seal"}, map[string]string{"seal": "sealed"}},
		{"503/audit-disk-full", nil, func(t *testing.T, z *kstest.Zone, disk *fullDisk) {
			disk.full.Store(true)
			// The next append finds the disk full and the log fails closed.
			resp, m := callZone(t, z, nil, http.MethodPost, "/v1/inspect", wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs_1", Merchant: "m_1"})
			if resp.StatusCode != 401 {
				t.Fatalf("unsigned inspect: %d %v", resp.StatusCode, m)
			}
			if z.Audit.Healthy() == nil {
				t.Fatal("audit log still healthy after a failed append")
			}
		}, []string{"audit"}, map[string]string{"audit": "failing"}},
		{"503/keyring-file-unreadable", nil, func(t *testing.T, z *kstest.Zone, _ *fullDisk) {
			if err := os.Remove(filepath.Join(filepath.Dir(z.AuditPath), "keyring.sealed")); err != nil {
				t.Fatal(err)
			}
		}, []string{"keyring"}, map[string]string{"keyring": "unreadable", "seal": "ok"}},
		{"200/redis-up", func(t *testing.T) redis.UniversalClient { return testenv.Redis(t) }, nil, nil, map[string]string{"redis": "ok"}},
		{"503/redis-down", deadRedis, nil, []string{"redis"}, map[string]string{"redis": "failing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var disk *fullDisk
			o := kstest.Options{
				Clients:   []kstest.Client{{ID: "gateway", Ops: []string{wire.OpInspect}}},
				AuditFile: func(f audit.File) audit.File { disk = &fullDisk{File: f}; return disk },
			}
			if tc.redis != nil {
				rdb := tc.redis(t)
				o.Replay, o.Limiter, o.Redis = replay.NewRedis(rdb, "t:jti:"), ratelimit.NewRedis(rdb, "t:rl:"), redisx.Pinger{C: rdb}
			}
			z := kstest.NewZone(t, o)
			if tc.fault != nil {
				tc.fault(t, z, disk)
			}
			resp, m := callZone(t, z, nil, http.MethodGet, "/readyz", nil)
			wantStatus := 200
			if len(tc.failing) > 0 {
				wantStatus = 503
			}
			if resp.StatusCode != wantStatus || m["ready"] != (wantStatus == 200) {
				t.Fatalf("readyz: %d %v, want %d", resp.StatusCode, m, wantStatus)
			}
			var failing []string
			for _, f := range m["failing"].([]any) {
				failing = append(failing, f.(string))
			}
			if !slices.Equal(failing, tc.failing) {
				t.Fatalf("failing %v, want %v (%v)", failing, tc.failing, m)
			}
			checks := m["checks"].(map[string]any)
			for name, want := range tc.status {
				if checks[name] != want {
					t.Errorf("check %s: %v, want %s", name, checks[name], want)
				}
			}
			if resp, _ := callZone(t, z, nil, http.MethodGet, "/healthz", nil); resp.StatusCode != 200 {
				t.Errorf("healthz: %d: liveness must not follow readiness", resp.StatusCode)
			}
			metrics := scrape(t, z)
			for _, name := range tc.failing {
				if want := fmt.Sprintf(`blindgate_keyservice_ready{check=%q} 0`, name); !strings.Contains(metrics, want) {
					t.Errorf("metrics lack %s\n%s", want, grepLines(metrics, "blindgate_keyservice_ready"))
				}
			}
			for name, st := range tc.status {
				if st == "ok" {
					if want := fmt.Sprintf(`blindgate_keyservice_ready{check=%q} 1`, name); !strings.Contains(metrics, want) {
						t.Errorf("metrics lack %s\n%s", want, grepLines(metrics, "blindgate_keyservice_ready"))
					}
				}
			}
		})
	}
}

// TestClockSkewAnswered: a signature from a caller whose clock is off by
// more than the skew gets 401 clock_skew, not a bare unauthenticated, and
// nothing is decrypted.
func TestClockSkewAnswered(t *testing.T) {
	z := kstest.NewZone(t, kstest.Options{Clients: []kstest.Client{{ID: "gateway", Ops: []string{wire.OpInspect}}}})
	for _, tc := range []struct {
		name   string
		offset time.Duration
	}{
		{"401/clock_skew/gateway-ahead", time.Minute},
		{"401/clock_skew/gateway-behind", -2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := *z.Signer(t, "gateway")
			s.Now = func() time.Time { return time.Now().Add(tc.offset) }
			jwe := z.Encrypt(t, fmt.Sprintf(`{"pan":%q,"exp_month":1,"exp_year":2031,"iat":%d}`, testPAN, time.Now().Unix()), "cs_1")
			resp, m := callZone(t, z, &s, http.MethodPost, "/v1/inspect", wire.InspectRequest{JWE: jwe, Session: "cs_1", Merchant: "m_1"})
			if resp.StatusCode != 401 || errCode(m) != "clock_skew" {
				t.Fatalf("skewed request: %d %v, want 401 clock_skew", resp.StatusCode, m)
			}
			if resp.Header.Get("Date") == "" {
				t.Error("no Date header: the caller cannot measure the skew")
			}
		})
	}
	if evs := z.Events(t, audit.Filter{Event: audit.EventInspect}); len(evs) != 0 {
		t.Fatalf("%d inspects audited for skewed requests", len(evs))
	}
	if evs := z.Events(t, audit.Filter{Event: audit.EventDenied}); len(evs) != 2 || evs[0].Code != "clock_skew" {
		t.Fatalf("denials %+v, want two with code clock_skew", evs)
	}
}

func callZone(t *testing.T, z *kstest.Zone, s *client.Signer, method, path string, body any) (*http.Response, map[string]any) {
	t.Helper()
	ts := &testServer{Zone: z}
	return ts.call(t, s, method, path, body)
}

func scrape(t *testing.T, z *kstest.Zone) string {
	t.Helper()
	resp, err := z.Server.App().Test(httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
