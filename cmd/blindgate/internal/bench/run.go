// Package bench is Blindgate's load harness. It starts the real key service
// and gateway as child processes on loopback (Redis, durable audit logs),
// measures the raw crypto limit of the configured KEK on this machine, then
// drives inspect, reveal, the full checkout submit and (on request) the
// merchant API's forward to a local processor stand-in closed-loop over
// keep-alive HTTP, and reports throughput, latency, CPU per request, peak
// RSS and the ratio to the measured limit, as text, JSON and a PNG chart.
//
// The services run in their own processes so that their CPU time and
// resident memory are measured apart from the load generator's (which
// shares the machine's cores and is reported too).
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Options configure a run. Zero fields take the defaults of Defaults.
type Options struct {
	KEKs        []string      // keyring algorithms (keyring.Alg*)
	Paths       []string      // PathInspect, PathReveal, PathSubmit, PathForward, PathForwardReplay
	Concurrency []int         // closed-loop worker counts swept per path
	Duration    time.Duration // measured window per point
	// MinRequests stretches a window past Duration (up to 20 times, or 10 s) until
	// that many requests have completed in it: a tiny window on a starved
	// machine may otherwise hold none. Zero keeps windows exact.
	MinRequests   int64
	Warmup        time.Duration // unmeasured lead-in per point
	LimitDuration time.Duration // per crypto-limit measurement at the start of a KEK
	// PointLimitDuration is the primary limit's re-measurement before
	// each point.
	PointLimitDuration time.Duration
	NoHalfLoad         bool // skip the paced submit run at half of saturation
	NoPresign          bool // sign key-service requests inside the timed loop
	NoSweep            bool // only the soak

	RedisAddr  string
	RedisDB    int  // -1: lease a free database 1-15 the way the tests do
	RedisFlush bool // allow emptying an explicitly chosen, non-empty database
	// RedisUnbatched runs both services with -redis-batch=false: every
	// script on its own round trip, to measure what batching buys.
	RedisUnbatched bool

	Dir  string // run folder (keyrings, audit logs, child logs); "" = temporary
	Keep bool   // keep a temporary run folder

	Soak        time.Duration // leak soak length (0: none)
	SoakSample  time.Duration // sampling interval of the soak
	SoakWorkers int           // closed-loop workers per path during the soak

	// A window in which other processes used more than BusyThreshold
	// cores is measured again, up to Retries times, after waiting up to
	// QuietWait for a quiet second; the least disturbed one is kept.
	Retries       int
	QuietWait     time.Duration
	BusyThreshold float64

	// Costs, when positive, also measures the cost of that many requests
	// of each path, one at a time (CostResult), for every KEK.
	Costs int

	// Each path is profiled (both services, CPU) at its saturation point
	// after its sweep, for its CPU per request by stage (PathResult.Stages)
	// unless NoStages; ProfileDir, when set, keeps the profiles there.
	ProfileDir  string
	ProfileTime time.Duration // length of each profile
	NoStages    bool

	// ChildCommand returns the command that runs ChildMain with cfgPath
	// (the blindgate binary: "blindgate bench child <cfg>").
	ChildCommand func(cfgPath string) *exec.Cmd
	Progress     io.Writer
	LogLevel     string // services' log level
}

// Defaults fills the zero fields.
func (o *Options) Defaults() {
	if len(o.KEKs) == 0 {
		o.KEKs = []string{keyring.AlgRSA3072, keyring.AlgECDHP256}
	}
	if len(o.Paths) == 0 {
		o.Paths = []string{PathInspect, PathReveal, PathSubmit}
	}
	if len(o.Concurrency) == 0 {
		o.Concurrency = []int{1, 2, 4, 8, 16, 32}
	}
	if o.Duration <= 0 {
		o.Duration = 2 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = 300 * time.Millisecond
	}
	if o.LimitDuration <= 0 {
		o.LimitDuration = 1500 * time.Millisecond
	}
	if o.PointLimitDuration <= 0 {
		o.PointLimitDuration = 600 * time.Millisecond
	}
	if o.RedisAddr == "" {
		o.RedisAddr = "127.0.0.1:6379"
	}
	if o.SoakSample <= 0 {
		o.SoakSample = 10 * time.Second
	}
	if o.SoakWorkers <= 0 {
		o.SoakWorkers = 2
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.QuietWait <= 0 {
		o.QuietWait = 15 * time.Second
	}
	if o.BusyThreshold <= 0 {
		o.BusyThreshold = 0.25
	}
	if o.ProfileTime <= 0 {
		o.ProfileTime = 5 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
}

// Report is the whole result, also written as JSON.
type Report struct {
	Started  time.Time    `json:"started"`
	Machine  Machine      `json:"machine"`
	Settings Settings     `json:"settings"`
	KEKs     []KEKResult  `json:"keks"`
	Soak     *SoakResult  `json:"soak,omitempty"`
	Costs    []CostResult `json:"costs,omitempty"`
	Targets  []TargetEval `json:"targets"`
}

// Settings echo the options that shape the figures.
type Settings struct {
	DurationSec float64 `json:"duration_sec"`
	WarmupSec   float64 `json:"warmup_sec"`
	Concurrency []int   `json:"concurrency"`
	Presigned   bool    `json:"presigned"`
	Redis       string  `json:"redis"`
	// AuditDir is the -dir folder as given; empty for a temporary one. The
	// report is published, so it holds no path the user did not choose.
	AuditDir string `json:"audit_dir,omitempty"`
}

// KEKResult is one KEK's limit and paths.
type KEKResult struct {
	KEK    string  `json:"kek"`
	Label  string  `json:"label"`
	Limits []Limit `json:"limits"` // Limits[0] is what ratios refer to
	// LimitSamples are Limits[0] measured again before every point and
	// after the last (ops/s, in time order); LimitCPUSamples the CPU per op
	// of the same measurements, LimitCPUPerOpUs their mean.
	LimitSamples    []float64 `json:"limit_samples"`
	LimitCPUSamples []float64 `json:"limit_cpu_samples_us"`
	LimitCPUPerOpUs float64   `json:"limit_cpu_per_op_us"`
	// LimitDrift is (max-min)/mean of LimitSamples: how much the machine's
	// capacity moved during the run (other tenants). Above ~0.15 the
	// throughput ratios are unreliable; the CPU-basis ratios much less so.
	LimitDrift float64      `json:"limit_drift"`
	Paths      []PathResult `json:"paths"`
	// PeakRSSMiB is the highest VmHWM each service reached over all points.
	PeakRSSMiB map[string]float64 `json:"peak_rss_mib"`
}

// PathResult is one path's sweep.
type PathResult struct {
	Path   string  `json:"path"`
	Points []Point `json:"points"`
	// Limit is the mean of the points' limits (for reference).
	Limit          float64 `json:"limit"`
	BestThroughput float64 `json:"best_throughput"`
	BestWorkers    int     `json:"best_workers"`
	// RatioToLimit is the highest of the points' RatioToLimit (closed-loop
	// points), reached at RatioWorkers.
	RatioToLimit float64 `json:"ratio_to_limit"`
	RatioWorkers int     `json:"ratio_workers"`
	// RatioToInspect is submit's (or a forward path's) RatioToLimit over
	// inspect's: throughputs each normalised by the crypto limit measured
	// around them, so that a drift of the machine between the two sweeps
	// cancels out. CPURatioToInspect is the same from the CPU-basis ratios.
	RatioToInspect    float64 `json:"ratio_to_inspect,omitempty"`
	CPURatioToInspect float64 `json:"cpu_ratio_to_inspect,omitempty"`
	// ThroughputToInspect is the path's best throughput over inspect's
	// best, as measured (forward paths only).
	ThroughputToInspect float64 `json:"throughput_to_inspect,omitempty"`
	// BestCPURatio is the highest CPURatio of the sweep.
	BestCPURatio float64  `json:"best_cpu_ratio"`
	HalfLoad     *Point   `json:"half_load,omitempty"`
	Profiles     []string `json:"profiles,omitempty"` // file names in the -profile folder
	// Stages is the CPU per request by stage of each service the path goes
	// through, from profiles at BestWorkers (see stages.go).
	Stages []StageCPU `json:"stages,omitempty"`
}

// Point is one measured window.
type Point struct {
	Workers    int              `json:"workers"`
	TargetRate float64          `json:"target_rate,omitempty"` // paced runs only
	Seconds    float64          `json:"seconds"`
	Requests   int64            `json:"requests"`
	Errors     int64            `json:"errors"`
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	Throughput float64          `json:"throughput"`
	P50Ms      float64          `json:"p50_ms"`
	P99Ms      float64          `json:"p99_ms"`
	MeanMs     float64          `json:"mean_ms"`
	MaxMs      float64          `json:"max_ms"`
	// Limit is the mean of the crypto limit measured just before and just
	// after this window; RatioToLimit is Throughput over it.
	Limit        float64 `json:"limit"`
	RatioToLimit float64 `json:"ratio_to_limit"`
	limitIdx     int     // index of the limit sample taken just before the window
	// CPURatio is the crypto operation's CPU time (from the limit
	// measurements) over the CPU time one request cost all processes
	// (services, Redis, load generator): the throughput ratio this point
	// would reach on a machine of its own. Other tenants of the machine
	// barely move it, unlike RatioToLimit.
	CPURatio float64 `json:"cpu_ratio"`
	// CPUPerReqUs is CPU time per successful request, in microseconds, of
	// each process: keyservice, gateway, redis (the whole server) and
	// loadgen (this process).
	CPUPerReqUs map[string]float64 `json:"cpu_per_req_us"`
	// CoresBusy is each process's CPU time over the window's wall time.
	CoresBusy  map[string]float64 `json:"cores_busy"`
	PeakRSSMiB map[string]float64 `json:"peak_rss_mib"`
	// AuditPerFsync is the key service's durable audit appends per fsync
	// in the window (the group-commit batch size), GatewayAuditPerFsync the
	// gateway's.
	AuditPerFsync        float64 `json:"audit_appends_per_fsync,omitempty"`
	GatewayAuditPerFsync float64 `json:"gateway_audit_appends_per_fsync,omitempty"`
	// ScriptsPerTrip is the key service's Lua scripts per Redis round trip
	// in the window (redisx's batch size), GatewayScriptsPerTrip the
	// gateway's; 0 when none ran.
	ScriptsPerTrip        float64 `json:"redis_scripts_per_round_trip,omitempty"`
	GatewayScriptsPerTrip float64 `json:"gateway_redis_scripts_per_round_trip,omitempty"`
	// ForeignCores is the cores other processes of the machine used during
	// the window (all CPU time minus the bench's processes), and Attempts
	// how many windows were measured to get this one (see Options.Retries).
	ForeignCores float64 `json:"foreign_cores"`
	Attempts     int     `json:"attempts"`
	// Inline counts requests whose client-side preparation (signature or
	// session) ran inside the window because the prepared pool ran out.
	Inline int64 `json:"inline,omitempty"`
	// Standin is what the processor stand-in saw in the window (forward
	// paths only; a replay window should show no requests).
	Standin *StandinWindow `json:"standin,omitempty"`
	// AddedP50Ms and AddedP99Ms are the forward's latency percentiles minus
	// the stand-in's own handling time at the same percentile: what the
	// gateway, the key service and the connection to the destination add
	// (PathForward only).
	AddedP50Ms float64 `json:"added_p50_ms,omitempty"`
	AddedP99Ms float64 `json:"added_p99_ms,omitempty"`
}

// StandinWindow is the processor stand-in's side of one window: requests
// it handled and its own handling time (request body read to answer
// written, inside its handler).
type StandinWindow struct {
	Requests int64   `json:"requests"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
}

// Run executes the benchmark.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.Defaults()
	if o.ChildCommand == nil {
		return nil, errors.New("bench: no child command")
	}
	for _, p := range o.Paths {
		if p != PathInspect && p != PathReveal && p != PathSubmit && !forwardPath(p) {
			return nil, fmt.Errorf("bench: unknown path %q", p)
		}
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "blindgate-bench-")
		if err != nil {
			return nil, err
		}
		dir = d
		if !o.Keep {
			defer os.RemoveAll(dir)
		}
	}
	dir, _ = filepath.Abs(dir)
	rdb, release, err := openRedis(ctx, o)
	if err != nil {
		return nil, err
	}
	defer release()
	rep := &Report{
		Started: time.Now().UTC(), Machine: machine(),
		Settings: Settings{
			DurationSec: o.Duration.Seconds(), WarmupSec: o.Warmup.Seconds(), Concurrency: o.Concurrency,
			Presigned: !o.NoPresign, Redis: fmt.Sprintf("%s db %d", o.RedisAddr, rdb.Options().DB), AuditDir: o.Dir,
		},
	}
	fmt.Fprintf(o.Progress, "machine: %d CPU (%s), %s, load %s; run folder %s\n", rep.Machine.NumCPU, rep.Machine.CPUModel, rep.Machine.GoVersion, rep.Machine.Load1, dir)
	if !o.NoSweep {
		for _, alg := range o.KEKs {
			kr, err := runKEK(ctx, o, alg, filepath.Join(dir, slug(alg)), rdb)
			if err != nil {
				return rep, fmt.Errorf("bench %s: %w", kekLabel(alg), err)
			}
			rep.KEKs = append(rep.KEKs, *kr)
		}
	}
	if o.Soak > 0 {
		s, err := runSoak(ctx, o, o.KEKs[0], filepath.Join(dir, "soak"), rdb)
		if err != nil {
			return rep, fmt.Errorf("bench soak: %w", err)
		}
		rep.Soak = s
	}
	if o.Costs > 0 {
		for _, alg := range o.KEKs {
			c, err := runCosts(ctx, o, alg, filepath.Join(dir, "costs-"+slug(alg)), rdb)
			if err != nil {
				return rep, fmt.Errorf("bench costs %s: %w", kekLabel(alg), err)
			}
			rep.Costs = append(rep.Costs, *c)
		}
	}
	rep.Targets = evaluate(rep)
	return rep, nil
}

func slug(alg string) string {
	return strings.ToLower(strings.NewReplacer("/", "-", "+", "-").Replace(alg))
}

// openRedis connects to the bench's Redis database. Without an explicit
// database it leases one the way internal/testenv does (so a bench never
// shares a database with a concurrently running test); an explicit one
// must be empty unless RedisFlush says it may be emptied.
func openRedis(ctx context.Context, o Options) (*redis.Client, func(), error) {
	ping := redis.NewClient(&redis.Options{Addr: o.RedisAddr, MaxRetries: -1})
	if err := ping.Ping(ctx).Err(); err != nil {
		_ = ping.Close()
		return nil, nil, fmt.Errorf("bench: Redis at %s: %w (start one: redis-server --daemonize yes)", o.RedisAddr, err)
	}
	db := o.RedisDB
	release := func() {}
	if db < 0 {
		owner := fmt.Sprintf("bench-%d-%d", os.Getpid(), time.Now().UnixNano())
		for n := 1; n <= 15 && db < 0; n++ {
			key := fmt.Sprintf("blindgate:testenv:db:%d", n)
			ok, err := ping.SetNX(ctx, key, owner, 10*time.Minute).Result()
			if err != nil {
				_ = ping.Close()
				return nil, nil, err
			}
			if ok {
				db = n
				lctx, stop := context.WithCancel(context.Background())
				go func() {
					t := time.NewTicker(time.Minute)
					defer t.Stop()
					for {
						select {
						case <-lctx.Done():
							return
						case <-t.C:
							ping.Expire(lctx, key, 10*time.Minute)
						}
					}
				}()
				release = func() {
					stop()
					if v, _ := ping.Get(context.Background(), key).Result(); v == owner {
						ping.Del(context.Background(), key)
					}
					_ = ping.Close()
				}
			}
		}
		if db < 0 {
			_ = ping.Close()
			return nil, nil, errors.New("bench: no free Redis database 1-15 (tests hold them); pass -redis-db")
		}
	} else {
		release = func() { _ = ping.Close() }
	}
	rdb := redis.NewClient(&redis.Options{Addr: o.RedisAddr, DB: db})
	if o.RedisDB >= 0 && !o.RedisFlush {
		if n, err := rdb.DBSize(ctx).Result(); err != nil || n > 0 {
			release()
			_ = rdb.Close()
			return nil, nil, fmt.Errorf("bench: Redis database %d is not empty (%d keys): the bench empties its database; pass -redis-flush to allow it", db, n)
		}
	}
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		release()
		_ = rdb.Close()
		return nil, nil, err
	}
	return rdb, func() {
		_ = rdb.FlushDB(context.Background()).Err()
		_ = rdb.Close()
		release()
	}, nil
}

// services are the two child processes of one KEK's run, and the
// processor stand-in when a forward path is driven.
type services struct {
	ks, gw  *child
	standin *standin
	rdb     *redis.Client
	hc      *http.Client
}

func startServices(ctx context.Context, o Options, dir string, rdb *redis.Client) (*services, error) {
	s := &services{rdb: rdb, hc: &http.Client{Timeout: 5 * time.Minute}}
	base := childConfig{Dir: dir, Redis: o.RedisAddr, RedisDB: rdb.Options().DB, RedisUnbatched: o.RedisUnbatched, LogLevel: o.LogLevel,
		Forward: slices.ContainsFunc(o.Paths, forwardPath)}
	ksCfg := base
	ksCfg.Role = RoleKeyService
	var err error
	if s.ks, err = startChild(ctx, o.ChildCommand, ksCfg); err != nil {
		return nil, err
	}
	gwCfg := base
	gwCfg.Role, gwCfg.KeyServiceURL = RoleGateway, "http://"+s.ks.ready.Addr
	if s.gw, err = startChild(ctx, o.ChildCommand, gwCfg); err != nil {
		s.ks.stop()
		return nil, err
	}
	if base.Forward {
		// The destination names the merchant the gateway just made; the key
		// service's watcher loads the file within seconds, and the forward
		// driver waits for it.
		if s.standin, err = startStandin(dir); err == nil {
			err = s.standin.writeDestinations(dir, s.gw.ready.MerchantID)
		}
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("bench: processor stand-in: %w", err)
		}
	}
	return s, nil
}

func (s *services) stop() {
	s.gw.stop()
	s.ks.stop()
	s.standin.stop()
}

// snapshot is the CPU and memory state at one edge of a window.
type snapshot struct {
	at                  time.Time
	ks, gw, redis, self time.Duration
	peakKS, peakGW      int64
	appends, syncs      uint64
	gwAppends, gwSyncs  uint64
	scripts, trips      uint64
	gwScripts, gwTrips  uint64
	machine             time.Duration
}

func (s *services) snap(ctx context.Context) snapshot {
	sn := snapshot{at: time.Now(), self: selfCPU(), redis: redisCPU(ctx, s.rdb), machine: machineBusy()}
	sn.ks, _ = procCPU(s.ks.pid())
	sn.gw, _ = procCPU(s.gw.pid())
	_, sn.peakKS, _ = procMem(s.ks.pid())
	_, sn.peakGW, _ = procMem(s.gw.pid())
	if st, err := s.ks.stats(ctx, s.hc, false); err == nil {
		sn.appends, sn.syncs = st.AuditAppends, st.AuditSyncs
		sn.scripts, sn.trips = st.RedisScripts, st.RedisTrips
	}
	if st, err := s.gw.stats(ctx, s.hc, false); err == nil {
		sn.gwAppends, sn.gwSyncs = st.AuditAppends, st.AuditSyncs
		sn.gwScripts, sn.gwTrips = st.RedisScripts, st.RedisTrips
	}
	return sn
}

// measureQuiet prepares n requests, samples the crypto limit and measures a
// window, again (up to
// o.Retries times, after waiting for a quiet machine) while other processes
// took more than o.BusyThreshold cores; it keeps the least disturbed one.
func (s *services) measureQuiet(ctx context.Context, o Options, d driver, n, workers int, rate float64, sampleLimit func() (int, error), res *KEKResult) (Point, error) {
	var best Point
	for a := 0; a <= o.Retries; a++ {
		if a > 0 {
			fmt.Fprintf(o.Progress, "   (window disturbed: other processes used %.2f cores; waiting for a quiet machine)\n", best.ForeignCores)
			waitQuiet(ctx, o.BusyThreshold, o.QuietWait)
		}
		if err := d.prepare(ctx, n); err != nil {
			return Point{}, fmt.Errorf("prepare: %w", err)
		}
		// The limit right before the window (services idle); the one right
		// after is the next point's.
		idx, err := sampleLimit()
		if err != nil {
			return Point{}, err
		}
		pt := s.measure(ctx, o, d, workers, rate, res.LimitSamples[idx])
		pt.limitIdx = idx
		if err := ctx.Err(); err != nil {
			return Point{}, err
		}
		if a == 0 || pt.ForeignCores < best.ForeignCores {
			best = pt
		}
		best.Attempts = a + 1
		if best.ForeignCores <= o.BusyThreshold {
			break
		}
	}
	return best, nil
}

// measure runs one window and turns it into a Point.
func (s *services) measure(ctx context.Context, o Options, d driver, workers int, rate, limit float64) Point {
	return s.measureFrom(ctx, o, d, workers, rate, limit, nil)
}

// measureFrom is measure, calling atStart (when not nil) as the window
// opens.
func (s *services) measureFrom(ctx context.Context, o Options, d driver, workers int, rate, limit float64, atStart func()) Point {
	var before, after snapshot
	var sin StandinWindow
	var sinLat hist
	fwd, _ := d.(*forwardDriver)
	mark := func(edge int) {
		if edge == 0 {
			_ = resetPeakRSS(s.ks.pid())
			_ = resetPeakRSS(s.gw.pid())
			if fwd != nil {
				s.standin.take()
			}
			before = s.snap(ctx)
			if atStart != nil {
				atStart()
			}
			return
		}
		after = s.snap(ctx)
		if fwd != nil {
			sin.Requests, sinLat = s.standin.take()
		}
	}
	w := drive(ctx, d, workers, rate, o.Warmup, o.Duration, o.MinRequests, mark)
	ms := func(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }
	p := Point{
		Workers: workers, TargetRate: round(rate, 1), Seconds: round(w.elapsed.Seconds(), 3),
		Requests: w.ok, Errors: w.failed, Throughput: round(float64(w.ok)/w.elapsed.Seconds(), 1),
		P50Ms: ms(w.lat.quantile(0.50)), P99Ms: ms(w.lat.quantile(0.99)), MeanMs: ms(w.lat.mean()), MaxMs: ms(w.lat.max),
		CPUPerReqUs: map[string]float64{}, CoresBusy: map[string]float64{},
		PeakRSSMiB: map[string]float64{RoleKeyService: mib(after.peakKS), RoleGateway: mib(after.peakGW)},
		Inline:     d.inline(),
	}
	if len(w.errKinds) > 0 {
		p.ErrorKinds = w.errKinds
	}
	if fwd != nil {
		sin.P50Ms, sin.P99Ms = ms(sinLat.quantile(0.50)), ms(sinLat.quantile(0.99))
		p.Standin = &sin
		if !fwd.replay && sin.Requests > 0 {
			p.AddedP50Ms, p.AddedP99Ms = round(p.P50Ms-sin.P50Ms, 3), round(p.P99Ms-sin.P99Ms, 3)
		}
	}
	if limit > 0 {
		p.RatioToLimit = round(p.Throughput/limit, 3)
	}
	if n := after.syncs - before.syncs; n > 0 {
		p.AuditPerFsync = round(float64(after.appends-before.appends)/float64(n), 1)
	}
	if n := after.gwSyncs - before.gwSyncs; n > 0 {
		p.GatewayAuditPerFsync = round(float64(after.gwAppends-before.gwAppends)/float64(n), 1)
	}
	if n := after.trips - before.trips; n > 0 {
		p.ScriptsPerTrip = round(float64(after.scripts-before.scripts)/float64(n), 1)
	}
	if n := after.gwTrips - before.gwTrips; n > 0 {
		p.GatewayScriptsPerTrip = round(float64(after.gwScripts-before.gwScripts)/float64(n), 1)
	}
	wall := after.at.Sub(before.at).Seconds()
	ours := (after.ks - before.ks) + (after.gw - before.gw) + (after.redis - before.redis) + (after.self - before.self)
	if wall > 0 {
		p.ForeignCores = round(max(0, (after.machine-before.machine-ours).Seconds()/wall), 2)
	}
	p.Attempts = 1
	for name, used := range map[string]time.Duration{
		RoleKeyService: after.ks - before.ks, RoleGateway: after.gw - before.gw,
		"redis": after.redis - before.redis, "loadgen": after.self - before.self,
	} {
		if w.ok > 0 {
			p.CPUPerReqUs[name] = round(float64(used)/float64(time.Microsecond)/float64(w.ok), 1)
		}
		if wall > 0 {
			p.CoresBusy[name] = round(used.Seconds()/wall, 2)
		}
	}
	return p
}

func mib(b int64) float64 { return round(float64(b)/(1<<20), 1) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// runKEK measures one KEK: its crypto limits, then every path's sweep. The
// primary limit is measured again (services idle) right before every
// point, and after the last one; a point's ratios use the mean of the
// measurements just before and just after it. On a shared machine capacity
// drifts (here a vCPU's RSA decrypt went from 2.8 to 4.9 ms of CPU within a
// minute, with nothing else running in the VM), and a ratio is only
// meaningful between figures taken close together.
func runKEK(ctx context.Context, o Options, alg, dir string, rdb *redis.Client) (*KEKResult, error) {
	label := kekLabel(alg)
	fmt.Fprintf(o.Progress, "\n== KEK %s: generating keyring and client keys\n", label)
	fx, err := newFixture(dir, alg)
	if err != nil {
		return nil, err
	}
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return nil, err
	}
	limits, err := measureLimitsQuiet(ctx, o, fx, o.LimitDuration, false)
	if err != nil {
		return nil, err
	}
	for _, l := range limits {
		fmt.Fprintf(o.Progress, "   limit %-34s %9.0f ops/s on %d threads, %.0f us CPU per op\n", l.Name, l.OpsPerSec, l.Threads, l.CPUPerOpUs)
	}
	res := &KEKResult{KEK: alg, Label: label, Limits: limits, PeakRSSMiB: map[string]float64{}}
	// sampleLimit measures the primary limit now and returns its index.
	sampleLimit := func() (int, error) {
		l, err := measureLimitsQuiet(ctx, o, fx, o.PointLimitDuration, true)
		if err != nil {
			return 0, err
		}
		res.LimitSamples = append(res.LimitSamples, l[0].OpsPerSec)
		res.LimitCPUSamples = append(res.LimitCPUSamples, l[0].CPUPerOpUs)
		return len(res.LimitSamples) - 1, nil
	}
	svc, err := startServices(ctx, o, dir, rdb)
	if err != nil {
		return nil, err
	}
	defer svc.stop()

	tputAt := map[string]map[int]float64{}
	// pendingProfile is a path to profile once every path is swept.
	type pendingProfile struct {
		d     driver
		path  int // in res.Paths
		limit float64
	}
	var profiles []pendingProfile
	for _, path := range o.Paths {
		d, err := newDriver(fx, svc, path, !o.NoPresign && o.Warmup+o.Duration < wire.MaxTTL/2)
		if err != nil {
			return nil, err
		}
		pr := PathResult{Path: path}
		tputAt[path] = map[int]float64{}
		prev, prevC := 0.0, 0
		limit := limits[0].OpsPerSec
		for _, c := range o.Concurrency {
			est := limit
			switch {
			case prev > 0:
				est = min(limit, prev*float64(c)/float64(prevC))
			case path == PathSubmit && tputAt[PathInspect][c] == 0:
				est = limit / 4 // sessions are dear to make; a shortfall is made inline and counted
			}
			if path == PathSubmit && tputAt[PathInspect][c] > 0 {
				est = min(est, tputAt[PathInspect][c])
			}
			factor := 1.4
			if path == PathSubmit {
				factor = 1.6 // a session made inside the window costs both the gateway and the load generator
			}
			n := int(est*factor*(o.Warmup+o.Duration).Seconds()) + 4*c + 16
			pt, err := svc.measureQuiet(ctx, o, d, n, c, 0, sampleLimit, res)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			limit = res.LimitSamples[pt.limitIdx]
			printPoint(o.Progress, label, path, pt)
			pr.Points = append(pr.Points, pt)
			tputAt[path][c] = pt.Throughput
			prev, prevC = pt.Throughput, c
			if pt.Throughput > pr.BestThroughput {
				pr.BestThroughput, pr.BestWorkers = pt.Throughput, c
			}
			for k, v := range pt.PeakRSSMiB {
				res.PeakRSSMiB[k] = max(res.PeakRSSMiB[k], v)
			}
		}
		if path == PathSubmit && !o.NoHalfLoad && pr.BestThroughput > 0 {
			rate := pr.BestThroughput / 2
			workers := max(slices.Max(o.Concurrency), 8)
			pt, err := svc.measureQuiet(ctx, o, d, int(rate*1.2*(o.Warmup+o.Duration).Seconds())+16, workers, rate, sampleLimit, res)
			if err != nil {
				return nil, err
			}
			printPoint(o.Progress, label, path+"@50%", pt)
			pr.HalfLoad = &pt
		}
		res.Paths = append(res.Paths, pr)
		if (o.ProfileDir != "" || !o.NoStages) && pr.BestWorkers > 0 {
			profiles = append(profiles, pendingProfile{d, len(res.Paths) - 1, limit})
		}
	}
	// Every path is profiled after every sweep: a profile's buffers, and
	// what the service builds from them, stay resident a while after it
	// ends, and a point measured next would report them as the service's
	// peak RSS (2.3 MiB more at the first point after one, in a run of
	// reveal and submit at 1 and 32 workers).
	for _, p := range profiles {
		pr := &res.Paths[p.path]
		if err := profilePath(ctx, o, svc, p.d, label, pr, p.limit); err != nil {
			return nil, fmt.Errorf("%s: %w", pr.Path, err)
		}
	}
	if _, err := sampleLimit(); err != nil {
		return nil, err
	}
	res.finish()
	return res, nil
}

// finish computes every ratio once the limit samples around each point are in.
func (r *KEKResult) finish() {
	var cpuPerOp float64
	for _, c := range r.LimitCPUSamples {
		cpuPerOp += c / float64(len(r.LimitCPUSamples))
	}
	r.LimitCPUPerOpUs = round(cpuPerOp, 1)
	if len(r.LimitSamples) > 0 {
		lo, hi, mean := slices.Min(r.LimitSamples), slices.Max(r.LimitSamples), 0.0
		for _, v := range r.LimitSamples {
			mean += v / float64(len(r.LimitSamples))
		}
		r.LimitDrift = round((hi-lo)/mean, 3)
	}
	around := func(s []float64, i int) float64 {
		if i+1 < len(s) {
			return (s[i] + s[i+1]) / 2
		}
		return s[i]
	}
	inspect := r.path(PathInspect)
	for i := range r.Paths {
		p := &r.Paths[i]
		pts := make([]*Point, 0, len(p.Points)+1)
		for j := range p.Points {
			pts = append(pts, &p.Points[j])
		}
		if p.HalfLoad != nil {
			pts = append(pts, p.HalfLoad)
		}
		var limitSum float64
		for _, pt := range pts {
			if pt.limitIdx >= len(r.LimitSamples) {
				continue
			}
			pt.Limit = round(around(r.LimitSamples, pt.limitIdx), 1)
			limitSum += pt.Limit
			if pt.Limit > 0 {
				pt.RatioToLimit = round(pt.Throughput/pt.Limit, 3)
			}
			var total float64
			for _, v := range pt.CPUPerReqUs {
				total += v
			}
			if total > 0 {
				pt.CPURatio = round(around(r.LimitCPUSamples, pt.limitIdx)/total, 3)
			}
			if pt.TargetRate > 0 {
				continue
			}
			if pt.RatioToLimit > p.RatioToLimit {
				p.RatioToLimit, p.RatioWorkers = pt.RatioToLimit, pt.Workers
			}
			p.BestCPURatio = max(p.BestCPURatio, pt.CPURatio)
		}
		p.Limit = round(limitSum/float64(len(pts)), 1)
	}
	// Ratios to inspect once every path's own figures are in (inspect need
	// not be swept first).
	for i := range r.Paths {
		p := &r.Paths[i]
		if inspect == nil || (p.Path != PathSubmit && !forwardPath(p.Path)) {
			continue
		}
		if inspect.RatioToLimit > 0 {
			p.RatioToInspect = round(p.RatioToLimit/inspect.RatioToLimit, 3)
		}
		if inspect.BestCPURatio > 0 {
			p.CPURatioToInspect = round(p.BestCPURatio/inspect.BestCPURatio, 3)
		}
		if forwardPath(p.Path) && inspect.BestThroughput > 0 {
			p.ThroughputToInspect = round(p.BestThroughput/inspect.BestThroughput, 3)
		}
	}
}

func newDriver(fx *fixture, svc *services, path string, presign bool) (driver, error) {
	ks := "http://" + svc.ks.ready.Addr
	switch path {
	case PathInspect:
		const session = "cs_bench"
		jwe, err := fx.cardJWE(session)
		if err != nil {
			return nil, err
		}
		body, _ := json.Marshal(wire.InspectRequest{JWE: string(jwe), Session: session, Merchant: "m_bench"})
		return &signedDriver{hc: newHost(svc.ks.ready.Addr), url: ks + wire.PathInspect, path: wire.PathInspect, body: body, signer: fx.gateway, presign: presign}, nil
	case PathReveal:
		jwe, err := fx.cardJWE("cs_bench")
		if err != nil {
			return nil, err
		}
		return &revealDriver{hc: newHost(svc.ks.ready.Addr), base: ks, jwe: string(jwe), fx: fx, presign: presign}, nil
	case PathSubmit:
		return &submitDriver{hc: newHost(svc.gw.ready.Addr), secretKey: svc.gw.ready.SecretKey, fx: fx}, nil
	case PathForward, PathForwardReplay:
		return newForwardDriver(svc, fx, path == PathForwardReplay)
	}
	return nil, fmt.Errorf("bench: unknown path %q", path)
}

// profilePath drives the path at its saturation concurrency while both
// services record a CPU profile over the measured window (which is not
// reported as a point), keeps the profiles in o.ProfileDir if set, and
// turns those of the services on the path into their CPU per request by
// stage.
func profilePath(ctx context.Context, o Options, svc *services, d driver, label string, pr *PathResult, limit float64) error {
	// Prepared for the sweep's best throughput and some; a shortfall is
	// made inline (and costs the load generator, not the services).
	n := int(pr.BestThroughput*1.5*(o.Warmup+o.ProfileTime).Seconds()) + 4*pr.BestWorkers + 16
	if err := d.prepare(ctx, n); err != nil {
		return err
	}
	kids := []*child{svc.ks, svc.gw}
	raw := make([][]byte, len(kids))
	errs := make([]error, len(kids))
	var wg sync.WaitGroup
	start := func() {
		for i, c := range kids {
			wg.Go(func() { raw[i], errs[i] = c.profile(ctx, svc.hc, o.ProfileTime) })
		}
	}
	// The window opens as the profiles start and closes just after they
	// end (a loopback request apart), so its throughput is the profiles'.
	po := o
	po.Duration = o.ProfileTime + 20*time.Millisecond
	pt := svc.measureFrom(ctx, po, d, pr.BestWorkers, 0, limit, start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if pt.Errors > 0 {
		fmt.Fprintf(o.Progress, "   (profiled window: %d errors %v)\n", pt.Errors, pt.ErrorKinds)
	}
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return err
		}
		for i, c := range kids {
			name := fmt.Sprintf("%s-%s-%s.pprof", strings.ToLower(strings.ReplaceAll(label, "-", "")), pr.Path, c.role)
			if err := os.WriteFile(filepath.Join(o.ProfileDir, name), raw[i], 0o644); err != nil {
				return err
			}
			pr.Profiles = append(pr.Profiles, name)
		}
	}
	fmt.Fprintf(o.Progress, "   profiled %s %s at %d workers (%.0f req/s) for %s\n", label, pr.Path, pr.BestWorkers, pt.Throughput, o.ProfileTime)
	if o.NoStages {
		return nil
	}
	for _, role := range pathServices(pr.Path) {
		i := slices.IndexFunc(kids, func(c *child) bool { return c.role == role })
		sc, err := stagesOf(raw[i], role, pt)
		if err != nil {
			return err
		}
		pr.Stages = append(pr.Stages, sc)
		fmt.Fprintf(o.Progress, "     %s\n", stageLine(sc))
	}
	return nil
}

func printPoint(w io.Writer, label, path string, p Point) {
	errs := ""
	if p.Errors > 0 {
		errs = fmt.Sprintf("  errors %d %v", p.Errors, p.ErrorKinds)
	}
	if p.Inline > 0 {
		errs += fmt.Sprintf("  (inline-prepared %d)", p.Inline)
	}
	if p.ForeignCores > 0.1 {
		errs += fmt.Sprintf("  [others used %.2f cores]", p.ForeignCores)
	}
	if s := p.Standin; s != nil {
		errs += fmt.Sprintf("  stand-in %d req p50 %.3f p99 %.3f ms", s.Requests, s.P50Ms, s.P99Ms)
		if s.Requests > 0 && p.P50Ms > 0 {
			errs += fmt.Sprintf(", forward adds p50 %.2f p99 %.2f ms", p.AddedP50Ms, p.AddedP99Ms)
		}
	}
	fmt.Fprintf(w, "   %-8s %-11s c=%-3d %8.0f req/s %5.1f%%  p50 %6.2f p99 %6.2f ms  cpu/req us ks %5.0f gw %5.0f redis %4.0f gen %4.0f  audit/fsync ks %4s gw %4s  scripts/RT ks %4s gw %4s  rss MiB ks %4.1f gw %5.1f%s\n",
		label, path, p.Workers, p.Throughput, 100*p.RatioToLimit, p.P50Ms, p.P99Ms,
		p.CPUPerReqUs[RoleKeyService], p.CPUPerReqUs[RoleGateway], p.CPUPerReqUs["redis"], p.CPUPerReqUs["loadgen"],
		batchSize(p.AuditPerFsync), batchSize(p.GatewayAuditPerFsync), batchSize(p.ScriptsPerTrip), batchSize(p.GatewayScriptsPerTrip),
		p.PeakRSSMiB[RoleKeyService], p.PeakRSSMiB[RoleGateway], errs)
}
