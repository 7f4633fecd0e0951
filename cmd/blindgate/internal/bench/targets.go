package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/blindgate/blindgate/keyservice/keyring"
)

// TargetEval is one of the targets (issue 17's, which tightened issue 6's)
// checked against this run.
type TargetEval struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Unit string  `json:"unit"`
	Met  bool    `json:"met"`
	// GotCPU is the same ratio from CPU time per request instead of
	// throughput (see Point.CPURatio): what a machine without other
	// tenants would show. Informational; Met follows Got.
	GotCPU float64 `json:"got_cpu_basis,omitempty"`
}

// The targets (issue 17).
const (
	ratioRSA         = 0.85 // inspect/reveal over rsa.DecryptOAEP, RSA-3072
	ratioECDHInspect = 0.40 // inspect over jwx decrypt, ECDH-ES P-256
	ratioECDHReveal  = 0.35 // reveal over jwx decrypt, ECDH-ES P-256
	ratioSubmit      = 0.80 // submit over inspect
	halfLoadP99Ms    = 10
	rssCeilingMiB    = 48
	soakGrowthRatio  = 1.25 // last-quarter over second-quarter average
)

func (r *KEKResult) path(name string) *PathResult {
	for i := range r.Paths {
		if r.Paths[i].Path == name {
			return &r.Paths[i]
		}
	}
	return nil
}

func evaluate(rep *Report) []TargetEval {
	var out []TargetEval
	for _, k := range rep.KEKs {
		for _, name := range []string{PathInspect, PathReveal} {
			want := ratioECDHInspect
			switch {
			case k.KEK == keyring.AlgRSA3072:
				want = ratioRSA
			case name == PathReveal:
				want = ratioECDHReveal
			}
			if p := k.path(name); p != nil {
				out = append(out, TargetEval{
					Name: fmt.Sprintf("%s %s / %s", k.Label, name, k.Limits[0].Name),
					Want: fmt.Sprintf(">= %.0f%%", want*100), Got: round(p.RatioToLimit*100, 1), Unit: "%",
					Met: p.RatioToLimit >= want, GotCPU: round(p.BestCPURatio*100, 1),
				})
			}
		}
		if p := k.path(PathSubmit); p != nil {
			if p.RatioToInspect > 0 {
				out = append(out, TargetEval{
					Name: k.Label + " submit / inspect (each over its crypto limit)", Want: fmt.Sprintf(">= %.0f%%", ratioSubmit*100),
					Got: round(p.RatioToInspect*100, 1), Unit: "%", Met: p.RatioToInspect >= ratioSubmit,
					GotCPU: round(p.CPURatioToInspect*100, 1),
				})
			}
			if h := p.HalfLoad; h != nil {
				out = append(out, TargetEval{
					Name: fmt.Sprintf("%s submit p99 at half of saturation (%.0f req/s)", k.Label, h.TargetRate),
					Want: fmt.Sprintf("< %d ms", halfLoadP99Ms), Got: h.P99Ms, Unit: "ms",
					Met: h.P99Ms < halfLoadP99Ms && h.Requests > 0 && h.Errors == 0,
				})
			}
		}
		for _, role := range []string{RoleKeyService, RoleGateway} {
			if v, ok := k.PeakRSSMiB[role]; ok {
				out = append(out, TargetEval{
					Name: fmt.Sprintf("%s %s peak RSS", k.Label, role), Want: fmt.Sprintf("< %d MiB", rssCeilingMiB),
					Got: v, Unit: "MiB", Met: v < rssCeilingMiB,
				})
			}
		}
	}
	if s := rep.Soak; s != nil {
		for _, g := range s.Growth {
			out = append(out, TargetEval{
				Name: fmt.Sprintf("soak %s %s growth (%s)", g.Service, g.Metric, s.Duration),
				Want: g.Want, Got: g.Got, Unit: g.Unit, Met: g.Met,
			})
		}
	}
	return out
}

// PrintSummary writes the report's tables as Markdown (BENCHMARKS.md pastes
// them as they are).
func PrintSummary(w io.Writer, rep *Report) {
	m := rep.Machine
	fmt.Fprintf(w, "Machine: %d CPU, %s, %s %s/%s, kernel %s, load average at start %s. Window %.1fs after %.1fs warm-up per point; Redis %s.\n\n",
		m.NumCPU, m.CPUModel, m.GoVersion, m.OS, m.Arch, m.Kernel, m.Load1, rep.Settings.DurationSec, rep.Settings.WarmupSec, rep.Settings.Redis)
	for _, k := range rep.KEKs {
		fmt.Fprintf(w, "### %s\n\n", k.Label)
		for _, l := range k.Limits {
			fmt.Fprintf(w, "- limit: %s: **%.0f ops/s** on %d threads, %.0f µs CPU per operation", l.Name, l.OpsPerSec, l.Threads, l.CPUPerOpUs)
			if l.Note != "" {
				fmt.Fprintf(w, " (%s)", l.Note)
			}
			fmt.Fprintln(w)
		}
		if n := len(k.LimitSamples); n > 0 {
			s := slices.Sorted(slices.Values(k.LimitSamples))
			c := slices.Sorted(slices.Values(k.LimitCPUSamples))
			fmt.Fprintf(w, "- %s re-measured before every point (services idle), %d times: min %.0f, median %.0f, max %.0f ops/s (CPU per op %.0f-%.0f µs); each point's ratio uses the measurements just before and after it; drift %.0f%%",
				k.Limits[0].Name, n, s[0], s[n/2], s[n-1], c[0], c[len(c)-1], k.LimitDrift*100)
		}
		if k.LimitDrift > 0.15 {
			fmt.Fprint(w, " (the machine's capacity moved during the run)")
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| path | workers | req/s | limit | % of limit | CPU basis % | p50 ms | p99 ms | mean ms | CPU µs/req ks | gw | redis | loadgen | cores ks | gw | gen | peak RSS MiB ks | gw | audit/fsync ks | gw | scripts/RT ks | gw | errors | others' cores |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, p := range k.Paths {
			rows := p.Points
			if p.HalfLoad != nil {
				rows = append(append([]Point(nil), rows...), *p.HalfLoad)
			}
			for _, pt := range rows {
				name := p.Path
				if pt.TargetRate > 0 {
					name = fmt.Sprintf("%s @ %.0f/s", p.Path, pt.TargetRate)
				} else if pt.Workers == p.RatioWorkers {
					name = "**" + p.Path + "**"
				}
				fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.1f | %.1f | %.2f | %.2f | %.2f | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.1f | %.1f | %s | %s | %s | %s | %d | %.2f |\n",
					name, pt.Workers, pt.Throughput, pt.Limit, pt.RatioToLimit*100, pt.CPURatio*100, pt.P50Ms, pt.P99Ms, pt.MeanMs,
					pt.CPUPerReqUs[RoleKeyService], pt.CPUPerReqUs[RoleGateway], pt.CPUPerReqUs["redis"], pt.CPUPerReqUs["loadgen"],
					pt.CoresBusy[RoleKeyService], pt.CoresBusy[RoleGateway], pt.CoresBusy["loadgen"],
					pt.PeakRSSMiB[RoleKeyService], pt.PeakRSSMiB[RoleGateway], batchSize(pt.AuditPerFsync), batchSize(pt.GatewayAuditPerFsync),
					batchSize(pt.ScriptsPerTrip), batchSize(pt.GatewayScriptsPerTrip), pt.Errors, pt.ForeignCores)
			}
		}
		fmt.Fprintln(w)
		printStages(w, k)
	}
	printForward(w, rep)
	if s := rep.Soak; s != nil {
		fmt.Fprintf(w, "### Soak (%s, %s, %d workers per path, %.0f req/s on average, %d errors)\n\n", s.Duration, s.KEK, s.Workers, s.Throughput, s.Errors)
		if len(s.ErrorKinds) > 0 {
			fmt.Fprintf(w, "Errors by path and kind: %v\n\n", s.ErrorKinds)
		}
		fmt.Fprintln(w, "| service | metric | start (2nd quarter avg) | end (last quarter avg) | idle before | idle after |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|")
		for _, g := range s.Growth {
			fmt.Fprintf(w, "| %s | %s | %.1f | %.1f | %.1f | %.1f |\n", g.Service, g.Metric, g.Start, g.End, g.IdleBefore, g.IdleAfter)
		}
		fmt.Fprintln(w)
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintln(w, "| target | want | got | met | CPU basis |")
		fmt.Fprintln(w, "|---|---|---:|---|---:|")
		for _, t := range rep.Targets {
			met := "yes"
			if !t.Met {
				met = "**no**"
			}
			cpu := ""
			if t.GotCPU > 0 {
				cpu = fmt.Sprintf("%.1f %%", t.GotCPU)
			}
			fmt.Fprintf(w, "| %s | %s | %.1f %s | %s | %s |\n", t.Name, t.Want, t.Got, t.Unit, met, cpu)
		}
		fmt.Fprintln(w)
	}
}

// printForward writes the forward paths' figures: throughput beside
// inspect's in the same run, and the latency a forward adds over the
// stand-in's own handling. Ratios only, never a verdict.
func printForward(w io.Writer, rep *Report) {
	for _, k := range rep.KEKs {
		inspect := k.path(PathInspect)
		var fwd []PathResult
		for _, p := range k.Paths {
			if forwardPath(p.Path) {
				fwd = append(fwd, p)
			}
		}
		if len(fwd) == 0 {
			continue
		}
		fmt.Fprintf(w, "### %s forward\n\n", k.Label)
		for _, p := range fwd {
			if inspect == nil {
				fmt.Fprintf(w, "- %s: best %.0f req/s at %d workers (no inspect in this run to compare with)\n", p.Path, p.BestThroughput, p.BestWorkers)
				continue
			}
			fmt.Fprintf(w, "- %s / inspect: **%.1f%%** (best %.0f vs %.0f req/s); each over its crypto limit %.1f%%, CPU basis %.1f%%\n",
				p.Path, p.ThroughputToInspect*100, p.BestThroughput, inspect.BestThroughput, p.RatioToInspect*100, p.CPURatioToInspect*100)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| path | workers | req/s | % of inspect (same workers) | p50 ms | p99 ms | stand-in requests | stand-in p50 ms | stand-in p99 ms | added p50 ms | added p99 ms | CPU µs/req ks | gw | errors |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, p := range fwd {
			for _, pt := range p.Points {
				ofInspect := "-"
				if inspect != nil {
					for _, ip := range inspect.Points {
						if ip.Workers == pt.Workers && ip.Throughput > 0 {
							ofInspect = fmt.Sprintf("%.1f", 100*pt.Throughput/ip.Throughput)
						}
					}
				}
				var s StandinWindow
				if pt.Standin != nil {
					s = *pt.Standin
				}
				added := "- | -"
				if p.Path == PathForward && s.Requests > 0 {
					added = fmt.Sprintf("%.2f | %.2f", pt.AddedP50Ms, pt.AddedP99Ms)
				}
				fmt.Fprintf(w, "| %s | %d | %.0f | %s | %.2f | %.2f | %d | %.3f | %.3f | %s | %.0f | %.0f | %d |\n",
					p.Path, pt.Workers, pt.Throughput, ofInspect, pt.P50Ms, pt.P99Ms, s.Requests, s.P50Ms, s.P99Ms, added,
					pt.CPUPerReqUs[RoleKeyService], pt.CPUPerReqUs[RoleGateway], pt.Errors)
			}
		}
		fmt.Fprintln(w)
	}
}

// batchSize formats a batch size (audit appends per fsync, scripts per
// Redis round trip): "-" where nothing was batched.
func batchSize(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

// shortPath is a path name for a chart legend.
func shortPath(p string) string { return strings.ToUpper(p) }
