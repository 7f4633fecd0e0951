package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/blindgate/blindgate/cmd/blindgate/internal/bench"
)

// benchCmd load-tests the key service and the gateway (see BENCHMARKS.md).
// "bench child <config>" is the hidden entry point of the service processes
// the benchmark starts.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 2 && args[0] == "child" {
		return bench.ChildMain(ctx, args[1], os.Stdin, stdout, stderr)
	}
	var (
		o                         bench.Options
		keks, paths, conc         string
		jsonPath, chartPath, mdTo string
		fromPath                  string
	)
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&keks, "kek", "rsa3072,p256", "KEK algorithms to measure: rsa3072, p256, p384 (comma-separated)")
	fs.StringVar(&paths, "paths", "inspect,reveal,submit", "paths to drive (comma-separated): inspect, reveal, submit, forward, forward-replay")
	fs.StringVar(&conc, "c", "1,2,4,8,16,32", "closed-loop worker counts to sweep (comma-separated)")
	fs.DurationVar(&o.Duration, "d", 2*time.Second, "measured window per point")
	fs.DurationVar(&o.Warmup, "warmup", 300*time.Millisecond, "unmeasured warm-up before each window")
	fs.DurationVar(&o.LimitDuration, "limit-d", 1500*time.Millisecond, "duration of each raw crypto limit measurement at the start")
	fs.DurationVar(&o.PointLimitDuration, "point-limit-d", 600*time.Millisecond, "duration of the limit re-measurement before every point")
	fs.BoolVar(&o.NoHalfLoad, "no-half-load", false, "skip the paced submit run at half of saturation")
	fs.BoolVar(&o.NoPresign, "no-presign", false, "sign key-service requests inside the timed loop instead of ahead of it")
	fs.IntVar(&o.Retries, "retries", 2, "measure a window again (up to this many times) when other processes took more than -busy cores during it")
	fs.DurationVar(&o.QuietWait, "quiet-wait", 15*time.Second, "before a retry, wait up to this long for a quiet second")
	fs.Float64Var(&o.BusyThreshold, "busy", 0.25, "cores other processes may use during a window before it is retried")
	fs.StringVar(&o.RedisAddr, "redis", "127.0.0.1:6379", "Redis address (a real redis-server)")
	fs.IntVar(&o.RedisDB, "redis-db", -1, "Redis database the bench owns and empties; -1 leases a free one (1-15) as the tests do")
	fs.BoolVar(&o.RedisFlush, "redis-flush", false, "allow emptying a non-empty -redis-db")
	fs.BoolVar(&o.RedisUnbatched, "redis-unbatched", false, "run both services with -redis-batch=false (each Lua script on its own round trip), to measure what batching buys")
	fs.StringVar(&o.Dir, "dir", "", "run folder for keyrings, audit logs and service logs (default: temporary, removed)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary run folder")
	fs.DurationVar(&o.Soak, "soak", 0, "also run a leak soak this long (e.g. 10m) after the sweep")
	fs.DurationVar(&o.SoakSample, "soak-sample", 10*time.Second, "soak sampling interval")
	fs.IntVar(&o.SoakWorkers, "soak-workers", 2, "closed-loop workers per path during the soak")
	fs.BoolVar(&o.NoSweep, "no-sweep", false, "skip the sweep (with -soak or -costs: only those)")
	fs.IntVar(&o.Costs, "costs", 0, "also measure the cost of this many requests of each path, one at a time: Redis calls, bytes and memory, audit bytes, CPU per request (use a Redis server of its own: Redis counts every client)")
	fs.StringVar(&o.ProfileDir, "profile", "", "keep the services' CPU profiles taken at each path's saturation point in this folder")
	fs.DurationVar(&o.ProfileTime, "profile-d", 5*time.Second, "length of each CPU profile")
	fs.BoolVar(&o.NoStages, "no-stages", false, "do not profile each path at its saturation point for its CPU per request by stage (with -profile: keep the profiles, skip the stages)")
	fs.StringVar(&jsonPath, "json", "", "write the results as JSON to this file")
	fs.StringVar(&chartPath, "chart", "", "write a PNG chart of throughput vs workers to this file")
	fs.StringVar(&mdTo, "md", "", "write the Markdown summary tables to this file (they are printed either way)")
	fs.StringVar(&o.LogLevel, "log-level", "warn", "services' log level (their logs go to the run folder)")
	fs.StringVar(&fromPath, "from", "", "do not run: read a -json result file and print its summary (and -chart, -md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	for _, k := range splitList(keks) {
		alg, err := bench.KEKAlg(k)
		if err != nil {
			return err
		}
		o.KEKs = append(o.KEKs, alg)
	}
	o.Paths = splitList(paths)
	if o.Concurrency, err = intList(conc); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	o.ChildCommand = func(cfg string) *exec.Cmd { return exec.Command(exe, "bench", "child", cfg) }
	o.Progress = stderr

	var rep *bench.Report
	if fromPath != "" {
		b, err := os.ReadFile(fromPath)
		if err != nil {
			return err
		}
		rep = &bench.Report{}
		if err := json.Unmarshal(b, rep); err != nil {
			return fmt.Errorf("bench: %s: %w", fromPath, err)
		}
		jsonPath = ""
	} else {
		rep, err = bench.Run(ctx, o)
	}
	if rep != nil && jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if werr := os.WriteFile(jsonPath, append(b, '\n'), 0o644); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if err != nil {
		return err
	}
	if chartPath != "" && len(rep.KEKs) > 0 {
		if err := bench.WriteChart(chartPath, rep); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout)
	bench.PrintSummary(stdout, rep)
	bench.PrintCosts(stdout, rep)
	if mdTo != "" {
		f, err := os.Create(mdTo)
		if err != nil {
			return err
		}
		bench.PrintSummary(f, rep)
		bench.PrintCosts(f, rep)
		return f.Close()
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func intList(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("bench: bad worker count %q", p)
		}
		out = append(out, n)
	}
	return out, nil
}
