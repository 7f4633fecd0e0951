package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/internal/ratelimit"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/nonce"
	"github.com/blindgate/blindgate/keyservice/replay"
	"github.com/blindgate/blindgate/keyservice/unwrap"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// benchKS is a key service on a loopback listener with a durable audit log
// in a temporary folder and limits far above what a benchmark reaches.
type benchKS struct {
	url        string
	zone       *kstest.Zone
	svc        *unwrap.Service
	jwe        string
	gateway    *client.Signer
	backoffice *client.Signer
	hc         *http.Client
	rdb        *redis.Client // nil on memory
}

func newBenchKS(b *testing.B, alg string, useRedis bool) *benchKS {
	b.Helper()
	o := kstest.Options{
		Alg: alg,
		// Signatures are made before the timer starts: they must outlive the run.
		Clients: []kstest.Client{
			{ID: "gateway", Ops: []string{wire.OpInspect}, TTL: wire.MaxTTL},
			{ID: "backoffice", Ops: []string{wire.OpReveal}, TTL: wire.MaxTTL},
		},
		Limits: func(limits *unwrap.Limits) {
			for _, l := range []*ratelimit.Limit{&limits.InspectPerClient, &limits.RevealActorShort, &limits.RevealActorDaily, &limits.RevealClientShort, &limits.RevealClientDaily} {
				l.Rate, l.Period, l.Burst = 10_000_000, time.Second, 10_000_000
			}
		},
		Listen: true,
		// Reveal nonces are made before the timer starts, b.N of them.
		Nonces: nonce.NewMemory(nil, 10_000_000),
		// Challenges are counted as the app counts them, never refused.
		ChallengeLimit: ratelimit.Limit{Name: "challenge-client", Rate: 10_000_000, Period: time.Second, Burst: 10_000_000},
	}
	var rdb *redis.Client
	if useRedis {
		// The key service's stores as keyservice/app wires them on Redis:
		// one client, so a reveal's round trips are the app's.
		rdb = testenv.Redis(b)
		o.Replay, o.Limiter = replay.NewRedis(rdb, "bg:ks:jti:"), ratelimit.NewRedis(rdb, "bg:ks:rl:")
		o.Nonces = nonce.NewRedis(rdb, "bg:ks:nonce:")
	}
	z := kstest.NewZone(b, o)
	ks := &benchKS{url: z.URL, zone: z, svc: z.Service, gateway: z.Signer(b, "gateway"), backoffice: z.Signer(b, "backoffice"), rdb: rdb}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	ks.hc = &http.Client{Transport: tr}
	b.Cleanup(tr.CloseIdleConnections)
	ks.jwe = z.Encrypt(b, fmt.Sprintf(`{"pan":"4242424242424242","exp_month":12,"exp_year":%d,"name":"B","iat":%d}`, time.Now().Year()+2, time.Now().Unix()), "cs_bench")
	return ks
}

// run posts body to path b.N times from `parallel` goroutines per CPU, each
// request with its own pre-made signature.
func (ks *benchKS) run(b *testing.B, s *client.Signer, path string, body []byte, parallel int) {
	b.Helper()
	ks.runEach(b, s, path, func(int) []byte { return body }, parallel)
}

// runEach is run with the i-th request's body made by body(i), before the
// timer starts.
func (ks *benchKS) runEach(b *testing.B, s *client.Signer, path string, body func(i int) []byte, parallel int) {
	b.Helper()
	auths := make([]string, b.N)
	bodies := make([][]byte, b.N)
	for i := range auths {
		bodies[i] = body(i)
		a, err := s.Authorization(http.MethodPost, ks.url+path, bodies[i])
		if err != nil {
			b.Fatal(err)
		}
		auths[i] = a
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(parallel)
	b.ResetTimer()
	cpu, rcpu := testenv.CPUTime(), ks.redisCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			req, _ := http.NewRequest(http.MethodPost, ks.url+path, bytes.NewReader(bodies[i]))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", auths[i])
			resp, err := ks.hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	// The process's CPU per request, the key service's and the client's
	// together (Redis's own is not in it): unlike req/s it does not move
	// with what else the machine runs.
	b.ReportMetric(float64((testenv.CPUTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
	if ks.rdb != nil {
		// The Redis server's CPU per request: its share of the round trips.
		// Exact only on a Redis of the benchmark's own
		// (BLINDGATE_TEST_REDIS): a shared server counts its other clients.
		b.ReportMetric(float64((ks.redisCPU(b)-rcpu).Microseconds())/float64(b.N), "redis-cpu-µs/op")
	}
}

// redisCPU is the CPU time the Redis server has used (INFO cpu), zero on
// memory.
func (ks *benchKS) redisCPU(b *testing.B) time.Duration {
	if ks.rdb == nil {
		return 0
	}
	info, err := ks.rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

var benchAlgs = []struct{ name, alg string }{
	{"P-256", keyring.AlgECDHP256},
	{"RSA-3072", keyring.AlgRSA3072},
}

// BenchmarkInspect is POST /v1/inspect end to end over loopback HTTP
// keep-alive: signature and replay claim, rate limit, decrypt, card checks,
// fingerprint, durable (group-committed) audit append, JSON answer. The
// client's CPU counts too: compare with BenchmarkInspectDomain and the
// internal/jose decrypt benchmarks to see what HTTP and the signature add.
func BenchmarkInspect(b *testing.B) {
	for _, a := range benchAlgs {
		for _, backend := range []string{"memory", "redis"} {
			b.Run(a.name+"/"+backend, func(b *testing.B) {
				ks := newBenchKS(b, a.alg, backend == "redis")
				body, _ := json.Marshal(wire.InspectRequest{JWE: ks.jwe, Session: "cs_bench", Merchant: "m_bench"})
				ks.run(b, ks.gateway, wire.PathInspect, body, 8)
			})
		}
	}
}

// BenchmarkReveal is POST /v1/reveal end to end with Redis (replay cache,
// limits and nonces, as the app has them): the jti claim with the nonce's
// take, the passkey assertion's verification, the four limits (one batch)
// and an audit append before the decrypt, and the encryption to the
// browser key. The nonces and assertions are made before the timer starts
// (the operator's passkey keeps no counter, as a synced passkey, so their
// order does not matter).
func BenchmarkReveal(b *testing.B) {
	for _, a := range benchAlgs {
		b.Run(a.name+"/redis", func(b *testing.B) {
			ks := newBenchKS(b, a.alg, true)
			auth := ks.zone.EnrolPasskey(b, "backoffice", "op_bench")
			auth.NoCounter = true
			// The passkey registry as it is between enrolments: a file
			// changed less than 2 s ago is read at every reveal (its
			// timestamps cannot yet tell a further change, see
			// keyservice/passkeys fileID), an older one is checked by a stat.
			time.Sleep(2100 * time.Millisecond)
			key, _ := kstest.BrowserKey(b)
			ks.runEach(b, ks.backoffice, wire.PathReveal, func(int) []byte {
				ch, err := ks.zone.Passkeys.RevealChallenge(context.Background(), "backoffice", "127.0.0.1", "op_bench", "tok_bench")
				if err != nil {
					b.Fatal(err)
				}
				body, _ := json.Marshal(wire.RevealRequest{JWE: ks.jwe, Actor: "op_bench", Reason: "benchmark", Token: "tok_bench",
					Nonce: ch.Nonce, BrowserKey: key, Assertion: kstest.Assertion(b, auth, ch.Nonce, "tok_bench", "benchmark", key)})
				return body
			}, 8)
		})
	}
}

// BenchmarkRevealChallenge is POST /v1/reveal/challenge end to end with
// Redis: the signature, the jti claim, the operator's approved passkeys
// (the registry), the client's challenge budget and the nonce's write.
// redis-trips/op counts the Redis round trips of one challenge.
func BenchmarkRevealChallenge(b *testing.B) {
	ks := newBenchKS(b, keyring.AlgECDHP256, true)
	ks.zone.EnrolPasskey(b, "backoffice", "op_bench")
	time.Sleep(2100 * time.Millisecond) // the registry between enrolments, as in BenchmarkReveal
	trips := testenv.CountTrips(ks.rdb)
	body, _ := json.Marshal(wire.RevealChallengeRequest{Actor: "op_bench", Token: "tok_bench"})
	before := trips.Load()
	ks.run(b, ks.backoffice, wire.PathRevealChallenge, body, 8)
	b.ReportMetric(float64(trips.Load()-before)/float64(b.N), "redis-trips/op")
}

// BenchmarkInspectDomain is unwrap.Service.Inspect alone (no HTTP, no
// signature), in-memory limiter, durable audit, from parallel callers.
func BenchmarkInspectDomain(b *testing.B) {
	for _, a := range benchAlgs {
		b.Run(a.name, func(b *testing.B) {
			ks := newBenchKS(b, a.alg, false)
			m := unwrap.Meta{Client: "gateway", Origin: "127.0.0.1"}
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := ks.svc.Inspect(context.Background(), m, unwrap.InspectInput{JWE: ks.jwe, Session: "cs_bench", Merchant: "m_bench"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
