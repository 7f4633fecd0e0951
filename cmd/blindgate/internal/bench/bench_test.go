package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/keyring"
)

// childEnv makes the test binary act as a service child (see TestMain).
const childEnv = "BLINDGATE_BENCH_CHILD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := ChildMain(ctx, cfg, os.Stdin, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testChildCommand(cfgPath string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+cfgPath)
	return cmd
}

// TestSmoke runs the whole harness briefly (one worker, a tiny sweep and
// soak, every path including forward to the processor stand-in) against
// real services and Redis, and checks the report is sane. It makes no
// claim about timings.
func TestSmoke(t *testing.T) {
	rdb := testenv.Redis(t) // leases and flushes a database of our own
	testenv.SkipShort(t, "starts two service processes")
	o := Options{
		KEKs:               []string{keyring.AlgECDHP256},
		Paths:              []string{PathInspect, PathReveal, PathSubmit, PathForward, PathForwardReplay},
		Concurrency:        []int{1, 2},
		Duration:           300 * time.Millisecond,
		MinRequests:        5, // CI runs this beside the e2e suite on two cores
		Warmup:             100 * time.Millisecond,
		LimitDuration:      200 * time.Millisecond,
		PointLimitDuration: 100 * time.Millisecond,
		RedisAddr:          rdb.Options().Addr,
		RedisDB:            rdb.Options().DB,
		RedisFlush:         true,
		Dir:                t.TempDir(),
		Soak:               2 * time.Second,
		SoakSample:         250 * time.Millisecond,
		SoakWorkers:        1,
		Costs:              4,
		ProfileTime:        time.Second, // stages are on by default: a short profile
		ChildCommand:       testChildCommand,
	}
	var progress bytes.Buffer
	o.Progress = &progress
	if testing.Verbose() {
		o.Progress = io.MultiWriter(os.Stderr, &progress)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	// Profiles come after every measured point: a point measured after one
	// would report the profiler's memory as the service's peak RSS.
	lastPoint, firstProfile := -1, -1
	for i, l := range strings.Split(progress.String(), "\n") {
		switch {
		case strings.Contains(l, " c="):
			lastPoint = i
		case strings.HasPrefix(strings.TrimSpace(l), "profiled ") && firstProfile < 0:
			firstProfile = i
		}
	}
	if firstProfile < 0 || firstProfile < lastPoint {
		t.Errorf("a point was measured after a profile (first profile at line %d, last point at line %d)", firstProfile, lastPoint)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("report JSON does not read back: %v", err)
	}
	if len(back.KEKs) != 1 || len(back.KEKs[0].Limits) == 0 || back.KEKs[0].Limits[0].OpsPerSec <= 0 {
		t.Fatalf("no crypto limit measured: %+v", back.KEKs)
	}
	k := back.KEKs[0]
	if len(k.Paths) != len(o.Paths) {
		t.Fatalf("paths: got %d, want %d", len(k.Paths), len(o.Paths))
	}
	for _, p := range k.Paths {
		if len(p.Points) != len(o.Concurrency) {
			t.Fatalf("%s: %d points, want %d", p.Path, len(p.Points), len(o.Concurrency))
		}
		for _, pt := range p.Points {
			if pt.Throughput <= 0 || pt.Requests == 0 {
				t.Errorf("%s c=%d: no throughput", p.Path, pt.Workers)
			}
			if pt.Errors != 0 {
				t.Errorf("%s c=%d: %d errors %v", p.Path, pt.Workers, pt.Errors, pt.ErrorKinds)
			}
			if pt.RatioToLimit <= 0 || pt.P50Ms <= 0 || pt.P99Ms < pt.P50Ms {
				t.Errorf("%s c=%d: ratio %v p50 %v p99 %v", p.Path, pt.Workers, pt.RatioToLimit, pt.P50Ms, pt.P99Ms)
			}
			// CPU time comes in 10 ms ticks, so a slow window may show none:
			// check that it was measured, not how much.
			for _, k := range []string{RoleKeyService, RoleGateway, "redis", "loadgen"} {
				if v, ok := pt.CPUPerReqUs[k]; !ok || v < 0 {
					t.Errorf("%s c=%d: no CPU figure for %s: %v", p.Path, pt.Workers, k, pt.CPUPerReqUs)
				}
			}
			if pt.PeakRSSMiB[RoleKeyService] <= 0 || pt.PeakRSSMiB[RoleGateway] <= 0 {
				t.Errorf("%s c=%d: peak RSS missing: %v", p.Path, pt.Workers, pt.PeakRSSMiB)
			}
			// Every path's key-service requests run scripts (the jti
			// claim at least), batched by default: the counters must show
			// them, at one script per round trip or more.
			if pt.ScriptsPerTrip < 1 {
				t.Errorf("%s c=%d: key service scripts per Redis round trip %v", p.Path, pt.Workers, pt.ScriptsPerTrip)
			}
		}
		if p.RatioToLimit <= 0 || p.BestWorkers == 0 {
			t.Errorf("%s: ratio to limit not computed", p.Path)
		}
		checkStages(t, p)
	}
	sub := k.path(PathSubmit)
	if sub.RatioToInspect <= 0 || sub.HalfLoad == nil || sub.HalfLoad.Requests == 0 {
		t.Errorf("submit: ratio to inspect %v, half load %+v", sub.RatioToInspect, sub.HalfLoad)
	}
	// Forward: the path ran through to the stand-in and produced its
	// figures; a replay never reached it (the driver counts an answer that
	// is not a replay as an error, checked above).
	fwd, replay := k.path(PathForward), k.path(PathForwardReplay)
	if fwd.RatioToInspect <= 0 || fwd.ThroughputToInspect <= 0 || replay.ThroughputToInspect <= 0 {
		t.Errorf("forward: ratio to inspect %v (throughput %v), replay %v", fwd.RatioToInspect, fwd.ThroughputToInspect, replay.ThroughputToInspect)
	}
	for _, pt := range fwd.Points {
		if s := pt.Standin; s == nil || s.Requests == 0 || s.P50Ms <= 0 || pt.AddedP50Ms == 0 || pt.AddedP99Ms == 0 {
			t.Errorf("forward c=%d: stand-in %+v, added p50 %v p99 %v", pt.Workers, pt.Standin, pt.AddedP50Ms, pt.AddedP99Ms)
		}
	}
	for _, pt := range replay.Points {
		if s := pt.Standin; s == nil || s.Requests != 0 {
			t.Errorf("forward-replay c=%d: the stand-in saw %+v", pt.Workers, pt.Standin)
		}
	}
	if back.Soak == nil || len(back.Soak.Samples) == 0 || back.Soak.Requests == 0 {
		t.Errorf("soak: %+v", back.Soak)
	}
	if len(back.Targets) == 0 {
		t.Error("no targets evaluated")
	}
	// Costs: every path measured, without errors, each audited where it
	// should be. Redis figures are the shared test server's here (other
	// tests' calls included), so only the audit logs' growth is checked.
	if len(back.Costs) != 1 {
		t.Fatalf("costs: %d results, want 1", len(back.Costs))
	}
	var costPaths []string
	for _, p := range back.Costs[0].Paths {
		costPaths = append(costPaths, p.Path)
		if p.Requests != 4 || p.Errors != 0 {
			t.Errorf("cost of %s: %d requests, %d errors", p.Path, p.Requests, p.Errors)
		}
		audited := map[string]string{PathSubmit: RoleGateway, PathInspect: RoleKeyService, PathReveal: RoleKeyService}[p.Path]
		if audited != "" && p.AuditBytes[audited] <= 0 {
			t.Errorf("cost of %s: the %s audit log did not grow: %v", p.Path, audited, p.AuditBytes)
		}
	}
	if want := []string{PathSession, PathSubmit, PathInspect, PathReveal}; !slices.Equal(costPaths, want) {
		t.Errorf("cost rows %v, want %v", costPaths, want)
	}
	img, err := Chart(&back)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(img)); err != nil {
		t.Fatalf("chart is not a PNG: %v", err)
	}
	var md bytes.Buffer
	PrintSummary(&md, &back)
	if !bytes.Contains(md.Bytes(), []byte("| inspect |")) || !bytes.Contains(md.Bytes(), []byte("forward / inspect")) {
		t.Errorf("summary lacks the inspect rows:\n%s", md.String())
	}
	if !bytes.Contains(md.Bytes(), []byte("CPU µs per request by stage")) || !bytes.Contains(md.Bytes(), []byte("| inspect | keyservice |")) {
		t.Errorf("summary lacks the stage table:\n%s", md.String())
	}
	md.Reset()
	PrintCosts(&md, &back)
	if !bytes.Contains(md.Bytes(), []byte("| submit | 4 |")) {
		t.Errorf("cost tables lack the submit row:\n%s", md.String())
	}
}

// checkStages checks a path's CPU per request by stage is sane: a row for
// each service the path goes through, only that service's stages, none
// that cannot apply to the path, a decrypt on inspect, and a total near
// the CPU measured over the same window. The profile is a sample, so the
// checks that need many samples wait for them (a starved CI machine gives
// few); none is a timing.
func checkStages(t *testing.T, p PathResult) {
	t.Helper()
	var services []string
	for _, sc := range p.Stages {
		services = append(services, sc.Service)
	}
	if want := pathServices(p.Path); !slices.Equal(services, want) {
		t.Errorf("%s: stages of %v, want %v", p.Path, services, want)
		return
	}
	for _, sc := range p.Stages {
		if sc.Workers != p.BestWorkers || sc.Throughput <= 0 || sc.ProfileSec <= 0 || sc.Hz <= 0 {
			t.Errorf("%s %s: profiled window %+v (best workers %d)", p.Path, sc.Service, sc, p.BestWorkers)
		}
		// The samples the CPU measured over the window should have given:
		// with 20 expected, none comes once in e^20.
		expected := sc.MeasuredUs / 1e6 * sc.Throughput * sc.ProfileSec * float64(sc.Hz)
		if sc.Samples == 0 || len(sc.UsPerReq) == 0 || sc.TotalUs <= 0 {
			if expected >= 20 {
				t.Errorf("%s %s: no stages (%.0f samples expected): %+v", p.Path, sc.Service, expected, sc)
			} else {
				t.Logf("%s %s: no samples, %.1f expected (a starved machine)", p.Path, sc.Service, expected)
			}
			continue
		}
		var sum float64
		for id, v := range sc.UsPerReq {
			sum += v
			if !slices.ContainsFunc(stageTables[sc.Service], func(st stage) bool { return st.id == id }) {
				t.Errorf("%s %s: stage %q is not one of the service's", p.Path, sc.Service, id)
			} else if v > 0 && !stageApplies(sc.Service, id, p.Path) {
				t.Errorf("%s %s: %.0f µs/req in %q, which does not apply to the path", p.Path, sc.Service, v, id)
			}
		}
		if d := sum - sc.TotalUs; d > 1 || d < -1 {
			t.Errorf("%s %s: stages add up to %.1f, total %.1f", p.Path, sc.Service, sum, sc.TotalUs)
		}
		// A decrypt is a third of an inspect's samples or more: none in 30
		// comes about once in 50,000 runs. 20 samples put the total within
		// a quarter of what the profile covered; the sampler misses part of
		// the kernel's time in fsync, hence the wide factor.
		if p.Path == PathInspect {
			if sc.Samples >= 30 && sc.UsPerReq["decrypt"] <= 0 {
				t.Errorf("inspect: no decrypt in the key service's stages: %v", sc.UsPerReq)
			} else if sc.Samples < 30 {
				t.Logf("inspect: %d samples, too few to look for the decrypt", sc.Samples)
			}
		}
		if sc.Samples >= 20 && sc.MeasuredUs > 0 && (sc.TotalUs > 3*sc.MeasuredUs || sc.TotalUs < sc.MeasuredUs/3) {
			t.Errorf("%s %s: stages total %.0f µs/req, measured %.0f", p.Path, sc.Service, sc.TotalUs, sc.MeasuredUs)
		}
	}
}

// TestStdlibDecryptMatchesJose keeps the reference decrypt of the limit
// measurement honest: it must open what jose.Encrypt makes, to the same
// plaintext jose.Decrypt gives.
func TestStdlibDecryptMatchesJose(t *testing.T) {
	fx, err := newFixture(t.TempDir(), keyring.AlgECDHP256)
	if err != nil {
		t.Fatal(err)
	}
	jwe, err := fx.cardJWE("cs_1")
	if err != nil {
		t.Fatal(err)
	}
	_, want, err := jose.Decrypt(jwe, fx.priv)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := fx.priv.(*ecdsa.PrivateKey).ECDH()
	if err != nil {
		t.Fatal(err)
	}
	got, err := stdlibDecryptECDHES(jwe, ek)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("stdlib decrypt: %v (equal %v)", err, bytes.Equal(got, want))
	}
	tampered := bytes.Clone(jwe)
	tampered[len(tampered)-3] ^= 1
	if _, err := stdlibDecryptECDHES(tampered, ek); err == nil {
		t.Fatal("a tampered tag decrypted")
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}} {
		got := h.quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d > 0.04 || d < -0.04 {
			t.Errorf("q%.2f = %v, want about %v", c.q, got, c.want)
		}
	}
	if h.mean() < 495*time.Microsecond || h.mean() > 505*time.Microsecond {
		t.Errorf("mean %v", h.mean())
	}
}
