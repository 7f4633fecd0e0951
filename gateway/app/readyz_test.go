package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/kstest"
)

// standIn answers seal-status as an unsealed key service whose clock is
// offset from ours.
func standIn(t *testing.T, offset time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().Add(offset).UTC().Format(http.TimeFormat))
		_, _ = w.Write([]byte(`{"sealed":false,"shares":0,"needed":1}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestReadyzTellsTheTruth: the gateway's /readyz is 503 and names each check
// that stops a checkout: the key service unreachable, sealed or with a clock
// too far from ours, Redis down, the gateway's audit log failed. /healthz
// stays 200 throughout.
func TestReadyzTellsTheTruth(t *testing.T) {
	tests := []struct {
		name    string
		args    func(t *testing.T) []string
		fault   func(t *testing.T, a *App, z *kstest.Zone)
		failing []string
		status  map[string]string
		metric  string  // a line /metrics must hold
		skew    float64 // about what the skew gauge says (±5 s)
	}{
		{"200/all-ok", nil, nil, nil,
			map[string]string{"audit": "ok", "keyservice": "ok", "keyservice_clock": "ok"}, `blindgate_gateway_ready{check="keyservice"} 1`, 0},
		{"503/keyservice-sealed", nil, func(t *testing.T, _ *App, z *kstest.Zone) { z.Holder.Seal() },
			[]string{"keyservice"}, map[string]string{"keyservice": "sealed"}, `blindgate_gateway_ready{check="keyservice"} 0`, 0},
		{"503/keyservice-unreachable", func(t *testing.T) []string {
			return []string{"-keyservice-url", fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))}
		}, nil, []string{"keyservice"}, map[string]string{"keyservice": "unreachable"}, `blindgate_gateway_ready{check="keyservice"} 0`, 0},
		{"503/audit-log-closed", nil, func(t *testing.T, a *App, _ *kstest.Zone) { _ = a.audit.Close() },
			[]string{"audit"}, map[string]string{"audit": "failing"}, `blindgate_gateway_ready{check="audit"} 0`, 0},
		{"503/clock-behind", func(t *testing.T) []string {
			return []string{"-keyservice-url", standIn(t, -time.Minute)}
		}, nil, []string{"keyservice_clock"}, map[string]string{"keyservice": "ok", "keyservice_clock": "skewed"}, `blindgate_gateway_ready{check="keyservice_clock"} 0`, -60},
		{"503/clock-ahead", func(t *testing.T) []string {
			return []string{"-keyservice-url", standIn(t, time.Minute)}
		}, nil, []string{"keyservice_clock"}, map[string]string{"keyservice_clock": "skewed"}, `blindgate_gateway_ready{check="keyservice_clock"} 0`, 60},
		{"200/clock-within-tolerance", func(t *testing.T) []string {
			return []string{"-keyservice-url", standIn(t, 20*time.Second), "-keyservice-skew", "30s"}
		}, nil, nil, map[string]string{"keyservice_clock": "ok"}, `blindgate_gateway_ready{check="keyservice_clock"} 1`, 20},
		{"200/redis-up", func(t *testing.T) []string {
			rdb := testenv.Redis(t)
			return []string{"-store", "redis", "-redis", rdb.Options().Addr, "-redis-db", strconv.Itoa(rdb.Options().DB)}
		}, nil, nil, map[string]string{"redis": "ok"}, `blindgate_gateway_ready{check="redis"} 1`, 0},
		{"503/redis-down", func(t *testing.T) []string {
			return []string{"-store", "redis", "-redis", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "-redis-timeout", "200ms"}
		}, nil, []string{"redis"}, map[string]string{"redis": "failing"}, `blindgate_gateway_ready{check="redis"} 0`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			z := kstest.NewZone(t, kstest.Options{Listen: true})
			args := []string{"-keyservice-url", z.URL}
			if tc.args != nil {
				args = append(args, tc.args(t)...)
			}
			a, err := New(testConfig(t, args...), testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = a.audit.Close()
				_ = a.stores.Close()
			})
			if tc.fault != nil {
				tc.fault(t, a, z)
			}
			resp, err := a.Server().App().Test(httptest.NewRequest(http.MethodGet, "/readyz", nil), 10_000)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Ready   bool              `json:"ready"`
				Checks  map[string]string `json:"checks"`
				Failing []string          `json:"failing"`
			}
			raw, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("readyz body %s: %v", raw, err)
			}
			want := 200
			if len(tc.failing) > 0 {
				want = 503
			}
			if resp.StatusCode != want || body.Ready != (want == 200) || !slices.Equal(body.Failing, append([]string{}, tc.failing...)) {
				t.Fatalf("readyz %d %s; want %d failing %v", resp.StatusCode, raw, want, tc.failing)
			}
			for name, st := range tc.status {
				if body.Checks[name] != st {
					t.Errorf("check %s = %q, want %q (%s)", name, body.Checks[name], st, raw)
				}
			}
			if strings.Contains(string(raw), "127.0.0.1") || strings.Contains(string(raw), "/") {
				t.Errorf("readyz is public and must not carry addresses or paths: %s", raw)
			}
			if resp, _ := a.Server().App().Test(httptest.NewRequest(http.MethodGet, "/healthz", nil)); resp.StatusCode != 200 {
				t.Errorf("healthz %d: liveness must not follow readiness", resp.StatusCode)
			}
			rec := httptest.NewRecorder()
			promhttp.HandlerFor(a.Server().Metrics().Registry(), promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if !strings.Contains(rec.Body.String(), tc.metric) {
				t.Errorf("metrics lack %q:\n%s", tc.metric, grep(rec.Body.String(), "blindgate_gateway_"))
			}
			if tc.skew != 0 {
				m := skewLine.FindStringSubmatch(rec.Body.String())
				if m == nil {
					t.Fatalf("no skew gauge:\n%s", grep(rec.Body.String(), "blindgate_gateway_"))
				}
				if got, _ := strconv.ParseFloat(m[1], 64); got < tc.skew-5 || got > tc.skew+5 {
					t.Errorf("skew gauge %v, want about %v", got, tc.skew)
				}
			}
		})
	}
}

var skewLine = regexp.MustCompile(`(?m)^blindgate_gateway_keyservice_clock_skew_seconds (\S+)$`)

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") && !strings.Contains(l, "request") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestKeysWhileSealed: GET /v1/keys answers 503 keyservice_unavailable while
// the key service is sealed, also when the gateway fetched the set a moment
// before (the cache is dropped, not served), and the set again once it is
// unsealed: the checkout says "temporarily unavailable" before a card is
// typed, as the Compose first run documents.
func TestKeysWhileSealed(t *testing.T) {
	z := kstest.NewZone(t, kstest.Options{Listen: true})
	a, err := New(testConfig(t, "-keyservice-url", z.URL), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.audit.Close()
		_ = a.stores.Close()
	})
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := a.Server().App().Test(httptest.NewRequest(http.MethodGet, path, nil), 10_000)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	steps := []struct {
		name   string
		before func()
		path   string
		status int
		code   string
	}{
		{"200/unsealed", nil, "/v1/keys", 200, ""},
		// Sealed a moment after a fetch: the gateway's cache is fresh, but
		// readiness (which orchestrators poll) sees the seal and drops it.
		{"503/readyz-sealed", z.Holder.Seal, "/readyz", 503, ""},
		{"503/keys-sealed", nil, "/v1/keys", 503, `"code":"keyservice_unavailable"`},
		{"200/unsealed-again", func() {
			if err := z.Holder.UnsealWithKey(z.Master); err != nil {
				t.Fatal(err)
			}
		}, "/v1/keys", 200, ""},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		st, body := get(s.path)
		if st != s.status || !strings.Contains(body, s.code) {
			t.Fatalf("%s: GET %s %d %s, want %d %s", s.name, s.path, st, body, s.status, s.code)
		}
	}
}
