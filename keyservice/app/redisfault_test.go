package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/redisx"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/app"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

const redisTimeout = 200 * time.Millisecond

// faultyKeyService is the key service as cmd/keyservice wires it, on a
// dedicated Redis behind a fault proxy, served on loopback.
type faultyKeyService struct {
	base   string
	cfg    app.Config
	app    *app.App
	client *client.Client
}

func serveOnFaultyRedis(t *testing.T, fr *testenv.FaultyRedis) *faultyKeyService {
	t.Helper()
	base, s, a, cfg := serveWith(t, func(c *app.Config) { c.Redis = redisx.Config{Addrs: fr.Addr, Timeout: redisTimeout} })
	return &faultyKeyService{base: base, cfg: cfg, app: a, client: client.New(base, s, nil)}
}

func (k *faultyKeyService) inspect(t *testing.T) error {
	t.Helper()
	kr, err := k.app.Holder().Keyring()
	if err != nil {
		t.Fatal(err)
	}
	pub := kr.PublicKeys()[0]
	jwe, err := jose.Encrypt([]byte(fmt.Sprintf(`{"pan":"4242424242424242","exp_month":1,"exp_year":2031,"iat":%d}`, time.Now().Unix())), pub.Key, pub.Kid, map[string]string{jose.HeaderSessionID: "cs_1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = k.client.Inspect(context.Background(), wire.InspectRequest{JWE: string(jwe), Session: "cs_1", Merchant: "m_1"})
	return err
}

// decrypts reads the key service's decrypt counter and its audit trail's
// inspects: both must stay still while Redis is failing.
func (k *faultyKeyService) decrypts(t *testing.T) (metric string, audited int) {
	t.Helper()
	resp, err := http.Get(k.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^blindgate_keyservice_decrypts_total\{client="gateway",op="inspect"\} (\S+)$`).FindStringSubmatch(string(b))
	if m != nil {
		metric = m[1]
	}
	evs, _, err := audit.FileTrail(k.cfg.AuditPath).Query(context.Background(), audit.Filter{Event: audit.EventInspect})
	if err != nil {
		t.Fatal(err)
	}
	return metric, len(evs)
}

func (k *faultyKeyService) readyz(t *testing.T) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(k.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestRedisFaults: with Redis full (maxmemory, noeviction), silent, slow or
// restarted, a signed inspect is refused 503 unavailable within the Redis
// timeout, nothing is decrypted, /readyz fails "redis", concurrent requests
// all get their answer; and once Redis is back the same process serves
// again: no restart.
func TestRedisFaults(t *testing.T) {
	fr := testenv.NewFaultyRedis(t)
	ks := serveOnFaultyRedis(t, fr)
	if err := ks.inspect(t); err != nil {
		t.Fatalf("inspect before the fault: %v", err)
	}
	for _, f := range fr.Faults(10 * redisTimeout) {
		t.Run("503/"+f.Name, func(t *testing.T) {
			beforeMetric, beforeAudit := ks.decrypts(t)
			f.Inject(t)
			start := time.Now()
			err := ks.inspect(t)
			took := time.Since(start)
			var ke *client.Error
			if !errors.As(err, &ke) || ke.Status != 503 || ke.Code != "unavailable" {
				t.Fatalf("inspect with Redis %s: %v, want 503 unavailable", f.Name, err)
			}
			// The jti claim and the limits are one Redis call; the bound
			// leaves room for a second (each call is within the timeout).
			if took > 2*redisTimeout+2*time.Second {
				t.Errorf("inspect with Redis %s answered after %s (Redis timeout %s)", f.Name, took, redisTimeout)
			}
			t.Logf("inspect with Redis %s: %v after %s", f.Name, ke.Code, took.Round(time.Millisecond))

			var wg sync.WaitGroup
			var bad sync.Map
			for i := range 40 {
				wg.Go(func() {
					if err := ks.inspect(t); !errors.As(err, new(*client.Error)) || err.(*client.Error).Code != "unavailable" {
						bad.Store(i, err)
					}
				})
			}
			wg.Wait()
			bad.Range(func(k, v any) bool { t.Errorf("concurrent inspect %v: %v", k, v); return true })

			if m, a := ks.decrypts(t); m != beforeMetric || a != beforeAudit {
				t.Errorf("decrypts while Redis is %s: metric %q -> %q, audited inspects %d -> %d", f.Name, beforeMetric, m, beforeAudit, a)
			}
			waitReadyz(t, ks, 503, "redis")
			f.Heal(t)
			start = time.Now()
			for {
				if err := ks.inspect(t); err == nil {
					break
				} else if time.Since(start) > 10*time.Second {
					t.Fatalf("inspect still failing 10s after Redis %s ended: %v", f.Name, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("inspect served again %s after Redis %s ended", time.Since(start).Round(time.Millisecond), f.Name)
			waitReadyz(t, ks, 200, "")
		})
	}
}

// waitReadyz polls /readyz (whose Redis probe is cached for a second) until
// it answers status, with failing naming check when given.
func waitReadyz(t *testing.T, ks *faultyKeyService, status int, check string) {
	t.Helper()
	start := time.Now()
	for {
		st, m := ks.readyz(t)
		failing, _ := json.Marshal(m["failing"])
		if st == status && (check == "" || strings.Contains(string(failing), `"`+check+`"`)) {
			t.Logf("readyz %d after %s", st, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("readyz %d %v, want %d failing %q", st, m, status, check)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
