package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/blindgate/blindgate/keyservice/wire"
)

// PathSession is a cost row of its own: the merchant API's POST
// /v1/checkout/sessions, which every checkout makes before its submit (the
// submit driver makes them ahead of the submissions).
const PathSession = "session"

// CostResult is what one request of each path costs the shared parts of a
// deployment, measured by sending n of them one at a time against the
// services on Redis: the input of the capacity model (docs/SCALING.md).
// Redis figures are the whole server's (INFO commandstats, stats, memory),
// less the calls this measurement makes and the services' background calls
// counted while idle just before: run it on a Redis of its own.
type CostResult struct {
	KEK   string     `json:"kek"`
	Label string     `json:"label"`
	Paths []PathCost `json:"paths"`
	// IdlePerSec is the services' own Redis calls per second, idle (the
	// background work subtracted from every path).
	IdlePerSec map[string]float64 `json:"idle_calls_per_sec"`
}

// PathCost is one path's cost per request.
type PathCost struct {
	Path     string `json:"path"`
	Requests int    `json:"requests"`
	Errors   int    `json:"errors"`
	// RedisCalls is commands per request by name (commands run inside a
	// script count too, as Redis counts them); RedisCallsTotal their sum,
	// RedisUsec the time Redis spent executing them (commandstats usec).
	RedisCalls      map[string]float64 `json:"redis_calls"`
	RedisCallsTotal float64            `json:"redis_calls_total"`
	RedisUsec       float64            `json:"redis_usec"`
	// RedisNetIn and RedisNetOut are bytes through Redis' sockets.
	RedisNetIn  float64 `json:"redis_net_in_bytes"`
	RedisNetOut float64 `json:"redis_net_out_bytes"`
	// RedisMemory and RedisKeys are what the requests left in Redis (until
	// their keys' expiries).
	RedisMemory float64 `json:"redis_memory_bytes"`
	RedisKeys   float64 `json:"redis_keys"`
	// AuditBytes is what each service's audit log (and its checkpoint
	// copy) grew by.
	AuditBytes map[string]float64 `json:"audit_bytes"`
	// CPUUs is CPU time per request of each process, one request at a
	// time (more than at saturation: see the sweep for that).
	CPUUs map[string]float64 `json:"cpu_us"`
}

// costSnap is the state the cost of a batch is read from.
type costSnap struct {
	at            time.Time
	calls, usec   map[string]int64
	netIn, netOut int64
	memory, keys  int64
	audit         map[string]int64
	ks, gw, redis time.Duration
}

// ownCalls are the commands the measurement itself sends.
var ownCalls = []string{"info", "dbsize"}

func (s *services) costSnap(ctx context.Context, dir string) (costSnap, error) {
	sn := costSnap{at: time.Now(), calls: map[string]int64{}, usec: map[string]int64{}, audit: map[string]int64{}}
	info, err := s.rdb.Info(ctx, "commandstats", "stats", "memory").Result()
	if err != nil {
		return sn, err
	}
	for _, l := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok {
			continue
		}
		if name, ok := strings.CutPrefix(k, "cmdstat_"); ok {
			for _, f := range strings.Split(v, ",") {
				fk, fv, _ := strings.Cut(f, "=")
				n, _ := strconv.ParseFloat(fv, 64)
				switch fk {
				case "calls":
					sn.calls[name] = int64(n)
				case "usec":
					sn.usec[name] = int64(n)
				}
			}
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "total_net_input_bytes":
			sn.netIn = n
		case "total_net_output_bytes":
			sn.netOut = n
		case "used_memory":
			sn.memory = n
		}
	}
	if sn.keys, err = s.rdb.DBSize(ctx).Result(); err != nil {
		return sn, err
	}
	for role, glob := range map[string]string{RoleKeyService: "keyservice-audit.log*", RoleGateway: "gateway-audit.log*"} {
		files, _ := filepath.Glob(filepath.Join(dir, glob))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil {
				sn.audit[role] += fi.Size()
			}
		}
	}
	sn.ks, _ = procCPU(s.ks.pid())
	sn.gw, _ = procCPU(s.gw.pid())
	sn.redis = redisCPU(ctx, s.rdb)
	return sn, nil
}

// runCosts measures the cost of one request of each path for one KEK.
func runCosts(ctx context.Context, o Options, alg, dir string, rdb *redis.Client) (*CostResult, error) {
	label := kekLabel(alg)
	fmt.Fprintf(o.Progress, "\n== costs, KEK %s: %d requests of each path, one at a time\n", label, o.Costs)
	fx, err := newFixture(dir, alg)
	if err != nil {
		return nil, err
	}
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return nil, err
	}
	svc, err := startServices(ctx, o, dir, rdb)
	if err != nil {
		return nil, err
	}
	defer svc.stop()
	res := &CostResult{KEK: alg, Label: label, IdlePerSec: map[string]float64{}}

	// The services' background calls (pollers, leases), to subtract.
	idleFrom, err := svc.costSnap(ctx, dir)
	if err != nil {
		return nil, err
	}
	sleepCtx(ctx, 3*time.Second)
	idleTo, err := svc.costSnap(ctx, dir)
	if err != nil {
		return nil, err
	}
	idleSecs := idleTo.at.Sub(idleFrom.at).Seconds()
	for name, n := range idleTo.calls {
		if d := n - idleFrom.calls[name]; d > 0 && !slices.Contains(ownCalls, name) {
			res.IdlePerSec[name] = round(float64(d)/idleSecs, 2)
		}
	}

	n := o.Costs
	for _, path := range []string{PathSubmit, PathReveal, PathInspect} {
		d, err := newDriver(fx, svc, path, n < 2000 && time.Duration(n)*20*time.Millisecond < wire.MaxTTL/2)
		if err != nil {
			return nil, err
		}
		before, err := svc.costSnap(ctx, dir)
		if err != nil {
			return nil, err
		}
		if err := d.prepare(ctx, n); err != nil {
			return nil, fmt.Errorf("%s: prepare: %w", path, err)
		}
		prepared, err := svc.costSnap(ctx, dir)
		if err != nil {
			return nil, err
		}
		if path == PathSubmit {
			// Preparing a submission is opening its session.
			res.Paths = append(res.Paths, costOf(PathSession, n, 0, before, prepared, res.IdlePerSec))
		}
		errs := 0
		for range n {
			if err := d.send(ctx); err != nil {
				errs++
			}
		}
		after, err := svc.costSnap(ctx, dir)
		if err != nil {
			return nil, err
		}
		pc := costOf(path, n, errs, prepared, after, res.IdlePerSec)
		res.Paths = append(res.Paths, pc)
		fmt.Fprintf(o.Progress, "   %-8s %-7s Redis %5.1f calls %6.0f us  net in %5.0f out %5.0f B  mem %5.0f B  keys %4.2f  audit ks %4.0f gw %4.0f B  cpu us ks %5.0f gw %5.0f redis %4.0f  errors %d\n",
			label, path, pc.RedisCallsTotal, pc.RedisUsec, pc.RedisNetIn, pc.RedisNetOut, pc.RedisMemory, pc.RedisKeys,
			pc.AuditBytes[RoleKeyService], pc.AuditBytes[RoleGateway], pc.CPUUs[RoleKeyService], pc.CPUUs[RoleGateway], pc.CPUUs["redis"], errs)
	}
	slices.SortFunc(res.Paths, func(a, b PathCost) int { return pathRank(a.Path) - pathRank(b.Path) })
	return res, nil
}

func pathRank(p string) int {
	return slices.Index([]string{PathSession, PathSubmit, PathInspect, PathReveal}, p)
}

// costOf turns two snapshots around n requests into their cost per
// request, less the background calls idle would have made meanwhile.
func costOf(path string, n, errs int, a, b costSnap, idle map[string]float64) PathCost {
	per := func(v float64) float64 { return round(v/float64(n), 2) }
	secs := b.at.Sub(a.at).Seconds()
	pc := PathCost{
		Path: path, Requests: n, Errors: errs, RedisCalls: map[string]float64{},
		RedisNetIn: per(float64(b.netIn - a.netIn)), RedisNetOut: per(float64(b.netOut - a.netOut)),
		RedisMemory: per(float64(b.memory - a.memory)), RedisKeys: per(float64(b.keys - a.keys)),
		AuditBytes: map[string]float64{}, CPUUs: map[string]float64{},
	}
	var usec int64
	for name, calls := range b.calls {
		if slices.Contains(ownCalls, name) {
			continue
		}
		d := float64(calls-a.calls[name]) - idle[name]*secs
		usec += b.usec[name] - a.usec[name]
		if v := per(d); v > 0.005 {
			pc.RedisCalls[name] = v
			pc.RedisCallsTotal += v
		}
	}
	pc.RedisCallsTotal = round(pc.RedisCallsTotal, 2)
	pc.RedisUsec = per(float64(usec))
	for role, size := range b.audit {
		pc.AuditBytes[role] = per(float64(size - a.audit[role]))
	}
	for name, used := range map[string]time.Duration{RoleKeyService: b.ks - a.ks, RoleGateway: b.gw - a.gw, "redis": b.redis - a.redis} {
		pc.CPUUs[name] = per(float64(used) / float64(time.Microsecond))
	}
	return pc
}

// PrintCosts writes the cost tables as Markdown.
func PrintCosts(w io.Writer, rep *Report) {
	for _, c := range rep.Costs {
		fmt.Fprintf(w, "\n### Cost per request, %s (one at a time)\n\n", c.Label)
		fmt.Fprintln(w, "| path | requests | Redis calls | Redis µs | calls by command | Redis net in B | out B | Redis memory B | keys | audit B ks | gw | CPU µs ks | gw | redis | errors |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, p := range c.Paths {
			var by []string
			for _, name := range slices.Sorted(func(yield func(string) bool) {
				for k := range p.RedisCalls {
					if !yield(k) {
						return
					}
				}
			}) {
				by = append(by, fmt.Sprintf("%s %.2g", name, p.RedisCalls[name]))
			}
			fmt.Fprintf(w, "| %s | %d | %.1f | %.0f | %s | %.0f | %.0f | %.0f | %.2f | %.0f | %.0f | %.0f | %.0f | %.0f | %d |\n",
				p.Path, p.Requests, p.RedisCallsTotal, p.RedisUsec, strings.Join(by, ", "), p.RedisNetIn, p.RedisNetOut,
				p.RedisMemory, p.RedisKeys, p.AuditBytes[RoleKeyService], p.AuditBytes[RoleGateway],
				p.CPUUs[RoleKeyService], p.CPUUs[RoleGateway], p.CPUUs["redis"], p.Errors)
		}
		if len(c.IdlePerSec) > 0 {
			var idle []string
			for _, k := range slices.Sorted(func(yield func(string) bool) {
				for k := range c.IdlePerSec {
					if !yield(k) {
						return
					}
				}
			}) {
				idle = append(idle, fmt.Sprintf("%s %.2f/s", k, c.IdlePerSec[k]))
			}
			fmt.Fprintf(w, "\nBackground Redis calls of the idle services (subtracted above): %s.\n", strings.Join(idle, ", "))
		}
	}
}
