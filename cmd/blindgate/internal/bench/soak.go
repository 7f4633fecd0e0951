package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// SoakResult is the leak soak: all three paths under steady closed-loop
// load for a long while, with each service's goroutines, heap and RSS
// sampled from its /stats.
type SoakResult struct {
	KEK      string `json:"kek"`
	Duration string `json:"duration"`
	Workers  int    `json:"workers_per_path"`
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"`
	// ErrorKinds counts the errors by path and kind ("submit: 503
	// unavailable"), so a soak's errors say what failed.
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	Throughput float64          `json:"throughput"`
	Samples    []SoakSample     `json:"samples"`
	Growth     []Growth         `json:"growth"`
}

// SoakSample is one sampling instant.
type SoakSample struct {
	Sec        float64    `json:"sec"`
	KeyService ChildStats `json:"keyservice"`
	Gateway    ChildStats `json:"gateway"`
}

// Growth compares a metric between the second quarter of the soak (after
// warm-up) and the last quarter; growth beyond the allowance is a leak.
type Growth struct {
	Service    string  `json:"service"`
	Metric     string  `json:"metric"`
	Start      float64 `json:"start"`
	End        float64 `json:"end"`
	IdleBefore float64 `json:"idle_before"`
	IdleAfter  float64 `json:"idle_after"`
	Want       string  `json:"want"`
	Got        float64 `json:"got"` // growth in percent
	Unit       string  `json:"unit"`
	Met        bool    `json:"met"`
}

func runSoak(ctx context.Context, o Options, alg, dir string, rdb *redis.Client) (*SoakResult, error) {
	fmt.Fprintf(o.Progress, "\n== soak %s with %s, %d workers per path, sampled every %s\n", o.Soak, kekLabel(alg), o.SoakWorkers, o.SoakSample)
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
	sample := func(sec float64) (SoakSample, error) {
		s := SoakSample{Sec: round(sec, 1)}
		var err1, err2 error
		s.KeyService, err1 = svc.ks.stats(ctx, svc.hc, true)
		s.Gateway, err2 = svc.gw.stats(ctx, svc.hc, true)
		if err1 != nil {
			return s, err1
		}
		return s, err2
	}
	before, err := sample(0)
	if err != nil {
		return nil, err
	}
	res := &SoakResult{KEK: kekLabel(alg), Duration: o.Soak.String(), Workers: o.SoakWorkers}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var drivers []driver
	start := time.Now()
	for _, path := range o.Paths {
		d, err := newDriver(fx, svc, path, false)
		if err != nil {
			return nil, err
		}
		drivers = append(drivers, d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := drive(ctx, d, o.SoakWorkers, 0, 0, o.Soak, 0, func(int) {})
			mu.Lock()
			res.Requests += w.ok
			res.Errors += w.failed
			for kind, n := range w.errKinds {
				if res.ErrorKinds == nil {
					res.ErrorKinds = map[string]int64{}
				}
				res.ErrorKinds[path+": "+kind] += n
			}
			mu.Unlock()
		}()
	}
	tick := time.NewTicker(o.SoakSample)
	func() {
		defer tick.Stop()
		done := time.After(o.Soak)
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-tick.C:
				s, err := sample(time.Since(start).Seconds())
				if err != nil {
					fmt.Fprintf(o.Progress, "   sample: %v\n", err)
					continue
				}
				res.Samples = append(res.Samples, s)
				fmt.Fprintf(o.Progress, "   %6.0fs  ks: %4d goroutines live heap %6.1f MiB rss %5.1f MiB   gw: %4d goroutines live heap %6.1f MiB rss %5.1f MiB\n",
					s.Sec, s.KeyService.Goroutines, mib(int64(s.KeyService.HeapAlloc)), mib(s.KeyService.RSS),
					s.Gateway.Goroutines, mib(int64(s.Gateway.HeapAlloc)), mib(s.Gateway.RSS))
			}
		}
	}()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Throughput = round(float64(res.Requests)/time.Since(start).Seconds(), 1)
	// Idle again: drop the load generator's connections and give the
	// servers' idle workers time to retire before the last sample.
	for _, d := range drivers {
		d.closeIdle()
	}
	sleepCtx(ctx, min(15*time.Second, max(time.Second, o.Soak/4)))
	after, err := sample(time.Since(start).Seconds())
	if err != nil {
		return nil, err
	}
	res.Growth = growth(res.Samples, before, after, o.Soak)
	return res, nil
}

func growth(samples []SoakSample, before, after SoakSample, d time.Duration) []Growth {
	type metric struct {
		name, unit string
		slack      float64
		get        func(ChildStats) float64
	}
	metrics := []metric{
		{"goroutines", "", 10, func(s ChildStats) float64 { return float64(s.Goroutines) }},
		{"live_heap_mib", "MiB", 2, func(s ChildStats) float64 { return mib(int64(s.HeapAlloc)) }},
		{"rss_mib", "MiB", 4, func(s ChildStats) float64 { return mib(s.RSS) }},
	}
	avg := func(from, to float64, role string, get func(ChildStats) float64) (float64, bool) {
		var sum float64
		n := 0
		for _, s := range samples {
			if s.Sec >= from && s.Sec <= to {
				st := s.KeyService
				if role == RoleGateway {
					st = s.Gateway
				}
				sum += get(st)
				n++
			}
		}
		if n == 0 {
			return 0, false
		}
		return sum / float64(n), true
	}
	total := d.Seconds()
	var out []Growth
	for _, role := range []string{RoleKeyService, RoleGateway} {
		pick := func(s SoakSample) ChildStats {
			if role == RoleGateway {
				return s.Gateway
			}
			return s.KeyService
		}
		for _, m := range metrics {
			start, ok1 := avg(total/4, total/2, role, m.get)
			end, ok2 := avg(total*3/4, total+1, role, m.get)
			if !ok1 || !ok2 {
				continue
			}
			g := Growth{
				Service: role, Metric: m.name, Start: round(start, 1), End: round(end, 1),
				IdleBefore: round(m.get(pick(before)), 1), IdleAfter: round(m.get(pick(after)), 1),
				Want: fmt.Sprintf("< %.0f%% (+%.0f%s slack)", (soakGrowthRatio-1)*100, m.slack, m.unit), Unit: "%",
			}
			if start > 0 {
				g.Got = round((end-start)/start*100, 1)
			}
			g.Met = end <= start*soakGrowthRatio+m.slack
			out = append(out, g)
		}
	}
	return out
}
