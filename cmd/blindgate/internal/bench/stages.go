package bench

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// The CPU budget per request by stage (issue 17): each path is profiled at
// its saturation point and every CPU sample of a service is charged to one
// stage of that service's request. A sample's stack is walked from the leaf
// up and the first frame that matches a stage's patterns decides, so work
// done deep inside a domain call belongs to that call: Redis I/O under the
// admission script is admission, not Redis. The HTTP layer (Fiber,
// fasthttp, our handlers) and the request's orchestration are fallbacks:
// they count only when no other stage matched anywhere in the stack, so
// fasthttp's body read under the bind is bind, and only what the layer
// does on its own (reading, routing, writing the answer) is "http". Where
// one frame matches two stages, the one listed first wins. Allocating is
// charged to the code that allocated, the collector's work (its background
// workers, and the assists it asks of an allocating goroutine) to "gc",
// the scheduler's search for work to "sched", and anything else to
// "other".

// stage is one line of a service's CPU budget: the frames whose work it is,
// as regular expressions matched at the start of a frame's function name
// ("bg/" stands for this module's import path), and the paths on which it
// can cost anything (none listed: any path). A fallback stage counts only
// for a stack in which no other stage matched. A new package or path is
// one line here.
type stage struct {
	id       string
	paths    []string
	patterns []string
	fallback bool
}

const modulePath = "github.com/blindgate/blindgate/"

var (
	fiberHTTP = []string{`bg/internal/httpapi\.`, `bg/internal/httpmetrics\.`, `github\.com/gofiber/fiber/`, `github\.com/valyala/fasthttp`}
	// gcWork is the collector's: its background workers, and the assists
	// and phase changes it makes a request's goroutine do.
	gcWork = []string{`runtime\.gcBgMarkWorker`, `runtime\.bgsweep`, `runtime\.bgscavenge`, `runtime\.forcegchelper`,
		`runtime\.gcAssistAlloc`, `runtime\.gcStart`, `runtime\.gcMarkDone`, `runtime\.gcMarkTermination`}
	// scheduler is the runtime looking for work (and polling the network)
	// between goroutines: what a busy service pays for switching.
	scheduler = []string{`runtime\.(mcall|mstart|schedule|findRunnable|park_m|gosched_m|goexit0|sysmon)$`}
	// outbound is net/http's client machinery (HTTP/1.1 and HTTP/2), whose
	// connection reads and writes run on goroutines of their own, with no
	// caller's frame to match.
	outbound    = []string{`net/http\.\(\*persistConn\)`, `net/http\.\(\*Transport\)`, `net/http\.persistConnWriter`, `net/http\.(\(\*)?http2`}
	forwardOnly = []string{PathForward, PathForwardReplay}
	// batchedRedis is the flushers of redisx's batched scripts: the writes
	// and reads of the round trips that carry several requests' scripts,
	// on goroutines of their own. A request's wait for its script, and a
	// script it sends itself (sendOwn, which a pattern without the $ would
	// take for send), stay with the stage that sent it.
	batchedRedis = []string{`bg/internal/redisx\.\(\*batcher\)\.(flush|send|take)$`}
)

// stageTables are the stages of each service, in the order they are
// printed (and matched, where one frame matches two).
var stageTables = map[string][]stage{
	RoleKeyService: {
		{id: "bind", patterns: []string{`bg/internal/httpapi\.Bind`, `bg/keyservice/api\.bind`, `bg/internal/jose\.Open`,
			`bg/keyservice/wire\.\w+Request\.(Validate|Check)`, `bg/keyservice/wire\.Validate`}},
		{id: "verify", patterns: []string{`bg/keyservice/sigauth\.`}},
		{id: "admission", patterns: []string{`bg/keyservice/admit\.`, `bg/keyservice/replay\.`, `bg/internal/ratelimit\.`}},
		{id: "decrypt", patterns: []string{`bg/internal/jose\.\(\*JWE\)\.Decrypt`, `bg/internal/jose\.Decrypt`,
			`github\.com/lestrrat-go/jwx/v2/jwe\.Decrypt`, `bg/keyservice/keyring\.`, `bg/keyservice/hsm\.`}},
		{id: "card", patterns: []string{`bg/keyservice/card\.`}},
		{id: "guard", patterns: []string{`bg/keyservice/guard\.`}},
		{id: "passkey", paths: []string{PathReveal}, patterns: []string{`bg/keyservice/passkeys\.`, `bg/internal/passkey\.`, `bg/keyservice/nonce\.`}},
		// The browser key's thumbprint is computed with its one parse, at bind.
		{id: "seal", paths: []string{PathReveal}, patterns: []string{`bg/internal/jose\.EncryptDirect`}},
		{id: "forward", paths: forwardOnly, patterns: append([]string{`bg/keyservice/forward\.`, `bg/internal/safedial\.`}, outbound...)},
		{id: "redis", patterns: batchedRedis},
		{id: "audit", patterns: []string{`bg/internal/audit\.`}},
		{id: "http", fallback: true, patterns: append([]string{`bg/keyservice/api\.`}, fiberHTTP...)},
		{id: "gc", patterns: gcWork},
		{id: "sched", patterns: scheduler},
		// The request's own orchestration, between the stages above.
		{id: "other", fallback: true, patterns: []string{`bg/keyservice/unwrap\.`}},
	},
	RoleGateway: {
		{id: "bind", patterns: []string{`bg/internal/httpapi\.Bind`, `bg/gateway/ingest\.Submission\.Validate`}},
		// On submit, the merchant API's key check of checkout sessions the
		// load generator opens when a window outruns what was prepared.
		{id: "auth", paths: []string{PathSubmit, PathForward, PathForwardReplay}, patterns: []string{`bg/gateway/merchants\.`}},
		{id: "limits", patterns: []string{`bg/internal/ratelimit\.`, `bg/gateway/sessions\.`}},
		{id: "idempotency", paths: forwardOnly, patterns: []string{`bg/gateway/idempotency\.`}},
		{id: "sign", patterns: []string{`bg/keyservice/client\.\(\*Signer\)`, `bg/internal/jose\.Sign`}},
		{id: "ks-call", patterns: append([]string{`bg/keyservice/client\.`}, outbound...)},
		{id: "tokens", paths: []string{PathSubmit, PathForward, PathForwardReplay}, patterns: []string{`bg/gateway/tokens\.`}},
		// Webhooks are queued on the request and delivered by a poller that
		// runs whatever the path.
		{id: "webhooks", patterns: []string{`bg/gateway/webhooks\.`}},
		{id: "redis", patterns: batchedRedis},
		{id: "audit", patterns: []string{`bg/internal/audit\.`}},
		{id: "http", fallback: true, patterns: append([]string{`bg/gateway/web\.`}, fiberHTTP...)},
		{id: "gc", patterns: gcWork},
		{id: "sched", patterns: scheduler},
		{id: "other", fallback: true, patterns: []string{`bg/gateway/ingest\.`, `bg/gateway/forwarding\.`}},
	},
}

// stageOther takes every sample no stage matched.
const stageOther = "other"

// stageColumns is the order of the stage columns of the printed table: the
// stages of both services, a stage both have in one column.
var stageColumns = []string{"http", "bind", "verify", "auth", "admission", "limits", "idempotency", "decrypt", "card", "guard",
	"passkey", "seal", "forward", "sign", "ks-call", "tokens", "webhooks", "redis", "audit", "gc", "sched", stageOther}

// pathServices are the services a path's requests go through, in the
// order they do.
func pathServices(path string) []string {
	if path == PathInspect || path == PathReveal {
		return []string{RoleKeyService}
	}
	return []string{RoleGateway, RoleKeyService}
}

// classifier charges profile samples to the stages of one table.
type classifier struct {
	ids      []string
	fallback []bool
	res      [][]*regexp.Regexp
	memo     map[string][2]int // function name -> first stage, first fallback stage (-1: none)
}

func newClassifier(table []stage) (*classifier, error) {
	c := &classifier{memo: map[string][2]int{}}
	for _, st := range table {
		var rs []*regexp.Regexp
		for _, p := range st.patterns {
			if rest, ok := strings.CutPrefix(p, "bg/"); ok {
				p = regexp.QuoteMeta(modulePath) + rest
			}
			re, err := regexp.Compile("^(?:" + p + ")")
			if err != nil {
				return nil, fmt.Errorf("bench: stage %s: %w", st.id, err)
			}
			rs = append(rs, re)
		}
		c.ids = append(c.ids, st.id)
		c.fallback = append(c.fallback, st.fallback)
		c.res = append(c.res, rs)
	}
	return c, nil
}

// stageOf is the first stage and the first fallback stage that match one
// frame's function, -1 for none.
func (c *classifier) stageOf(fn string) (stage, fallback int) {
	if m, ok := c.memo[fn]; ok {
		return m[0], m[1]
	}
	m := [2]int{-1, -1}
	for j, rs := range c.res {
		k := 0
		if c.fallback[j] {
			k = 1
		}
		if m[k] < 0 && slices.ContainsFunc(rs, func(re *regexp.Regexp) bool { return re.MatchString(fn) }) {
			m[k] = j
		}
	}
	c.memo[fn] = m
	return m[0], m[1]
}

// sampleStage walks a sample's stack from the leaf up (within a location,
// from the innermost inlined function out) and returns the first stage
// that matches; failing that, the first fallback stage; failing that,
// "other".
func (c *classifier) sampleStage(s *profile.Sample) string {
	fb := -1
	for _, loc := range s.Location {
		for _, ln := range loc.Line {
			if ln.Function == nil {
				continue
			}
			i, f := c.stageOf(ln.Function.Name)
			if i >= 0 {
				return c.ids[i]
			}
			if fb < 0 {
				fb = f
			}
		}
	}
	if fb >= 0 {
		return c.ids[fb]
	}
	return stageOther
}

// classify sums a CPU profile's samples by stage. It also returns the
// number of samples.
func (c *classifier) classify(p *profile.Profile) (map[string]time.Duration, int64, error) {
	vi := cpuValue(p)
	if vi < 0 {
		return nil, 0, fmt.Errorf("bench: profile has no CPU time value (%v)", p.SampleType)
	}
	out := map[string]time.Duration{}
	var n int64
	for _, s := range p.Sample {
		if vi >= len(s.Value) || s.Value[vi] == 0 {
			continue
		}
		out[c.sampleStage(s)] += time.Duration(s.Value[vi])
		n++
	}
	return out, n, nil
}

// cpuValue is the index of the CPU time (nanoseconds) among a profile's
// sample values, or -1.
func cpuValue(p *profile.Profile) int {
	for i, t := range p.SampleType {
		if t.Type == "cpu" && t.Unit == "nanoseconds" {
			return i
		}
	}
	return -1
}

// StageCPU is one service's CPU time per request of one path, by stage,
// from a CPU profile taken while the path ran at its saturation point.
type StageCPU struct {
	Service string `json:"service"`
	Workers int    `json:"workers"`
	// ProfileSec is the profile's length and Throughput the path's
	// throughput measured over the same window: the profile saw about
	// ProfileSec × Throughput requests.
	ProfileSec float64 `json:"profile_sec"`
	Throughput float64 `json:"throughput"`
	Samples    int64   `json:"samples"`
	Hz         int     `json:"hz"` // samples per second of CPU time
	// UsPerReq is each stage's CPU time in the profile over the requests
	// served in it, in µs; TotalUs their sum.
	UsPerReq map[string]float64 `json:"us_per_req"`
	TotalUs  float64            `json:"total_us"`
	// MeasuredUs is the service's CPU time per request measured from
	// /proc over the profiled window (what TotalUs should come close to;
	// the sampler misses a little).
	MeasuredUs float64 `json:"measured_us"`
}

// stagesOf turns one service's profile into its CPU per request by stage;
// pt is the window measured while the profile ran.
func stagesOf(raw []byte, service string, pt Point) (StageCPU, error) {
	p, err := profile.Parse(bytes.NewReader(raw))
	if err != nil {
		return StageCPU{}, fmt.Errorf("bench: %s profile: %w", service, err)
	}
	table, ok := stageTables[service]
	if !ok {
		return StageCPU{}, fmt.Errorf("bench: no stage table for %s", service)
	}
	c, err := newClassifier(table)
	if err != nil {
		return StageCPU{}, err
	}
	byStage, n, err := c.classify(p)
	if err != nil {
		return StageCPU{}, fmt.Errorf("bench: %s profile: %w", service, err)
	}
	secs := time.Duration(p.DurationNanos).Seconds()
	sc := StageCPU{
		Service: service, Workers: pt.Workers, ProfileSec: round(secs, 3), Throughput: pt.Throughput,
		Samples: n, UsPerReq: map[string]float64{}, MeasuredUs: pt.CPUPerReqUs[service],
	}
	if p.Period > 0 {
		sc.Hz = int(math.Round(float64(time.Second) / float64(p.Period)))
	}
	reqs := pt.Throughput * secs
	if reqs <= 0 {
		return sc, nil
	}
	var total time.Duration
	for id, d := range byStage {
		sc.UsPerReq[id] = round(float64(d)/float64(time.Microsecond)/reqs, 1)
		total += d
	}
	sc.TotalUs = round(float64(total)/float64(time.Microsecond)/reqs, 1)
	return sc, nil
}

// stageApplies says whether a service's stage can cost anything on path.
func stageApplies(service, id, path string) bool {
	for _, st := range stageTables[service] {
		if st.id == id {
			return len(st.paths) == 0 || slices.Contains(st.paths, path)
		}
	}
	return false
}

// stageLine is a one-line summary of a StageCPU for the progress output:
// its largest stages first.
func stageLine(sc StageCPU) string {
	ids := make([]string, 0, len(sc.UsPerReq))
	for id := range sc.UsPerReq {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return sc.UsPerReq[ids[i]] > sc.UsPerReq[ids[j]] })
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%s %.0f, ", id, sc.UsPerReq[id])
	}
	return fmt.Sprintf("%s µs/req: %stotal %.0f (measured %.0f, %d samples)", sc.Service, b.String(), sc.TotalUs, sc.MeasuredUs, sc.Samples)
}

// printStages writes a KEK's CPU budget per request by stage: one row per
// path and service, one column per stage (only those with a figure in this
// KEK), the profile's total and the CPU per request measured at the same
// path's saturation point in the sweep.
func printStages(w io.Writer, k KEKResult) {
	seen := map[string]bool{}
	var secs float64
	for _, p := range k.Paths {
		for _, sc := range p.Stages {
			secs = max(secs, sc.ProfileSec)
			for id := range sc.UsPerReq {
				seen[id] = true
			}
		}
	}
	if len(seen) == 0 {
		return
	}
	cols := slices.DeleteFunc(slices.Clone(stageColumns), func(id string) bool { return !seen[id] })
	var extra []string // stages of another version's tables (-from)
	for id := range seen {
		if !slices.Contains(cols, id) {
			extra = append(extra, id)
		}
	}
	slices.Sort(extra)
	cols = append(cols, extra...)
	fmt.Fprintf(w, "CPU µs per request by stage (%s): a %.0f s CPU profile of each service at the path's saturation point; \"total\" is the profile's, \"same window\" the service's CPU per request measured over the profiled window, \"sweep\" the CPU µs/req of the saturation point above.\n\n", k.Label, secs)
	fmt.Fprintf(w, "| path | service | workers | req/s | %s | total | same window | sweep |\n", strings.Join(cols, " | "))
	fmt.Fprintf(w, "|---|---|---:|---:|%s---:|---:|---:|\n", strings.Repeat("---:|", len(cols)))
	for _, p := range k.Paths {
		for _, sc := range p.Stages {
			var cells []string
			for _, id := range cols {
				v, ok := sc.UsPerReq[id]
				switch {
				case ok:
					cells = append(cells, fmt.Sprintf("%.0f", v))
				case slices.ContainsFunc(stageTables[sc.Service], func(st stage) bool { return st.id == id }):
					cells = append(cells, "0")
				default:
					cells = append(cells, "")
				}
			}
			sweep := "-"
			if pt := p.point(sc.Workers); pt != nil {
				sweep = fmt.Sprintf("%.0f", pt.CPUPerReqUs[sc.Service])
			}
			fmt.Fprintf(w, "| %s | %s | %d | %.0f | %s | %.0f | %.0f | %s |\n",
				p.Path, sc.Service, sc.Workers, sc.Throughput, strings.Join(cells, " | "), sc.TotalUs, sc.MeasuredUs, sweep)
		}
	}
	fmt.Fprintln(w)
}

// point is the sweep's closed-loop point at workers, or nil.
func (p *PathResult) point(workers int) *Point {
	for i := range p.Points {
		if p.Points[i].Workers == workers && p.Points[i].TargetRate == 0 {
			return &p.Points[i]
		}
	}
	return nil
}
