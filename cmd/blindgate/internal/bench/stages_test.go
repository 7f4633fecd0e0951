package bench

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

const bgp = modulePath // our frames in the stacks below

// fiberRoot is the root of every request's stack in both services.
var fiberRoot = []string{"github.com/gofiber/fiber/v2.(*Ctx).Next", "github.com/gofiber/fiber/v2.(*App).handler",
	"github.com/valyala/fasthttp.(*Server).serveConn", "github.com/valyala/fasthttp.(*workerPool).workerFunc"}

func req(frames ...string) []string { return append(frames, fiberRoot...) }

// synthProfile builds a CPU profile of the given stacks, leaf first, each
// sample costing 10 ms; a frame "a|b" is one location where a was inlined
// into b.
func synthProfile(d time.Duration, stacks ...[]string) *profile.Profile {
	p := &profile.Profile{
		SampleType:    []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType:    &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:        int64(10 * time.Millisecond),
		DurationNanos: int64(d),
	}
	fns := map[string]*profile.Function{}
	fn := func(name string) *profile.Function {
		if f, ok := fns[name]; ok {
			return f
		}
		f := &profile.Function{ID: uint64(len(p.Function) + 1), Name: name, SystemName: name}
		fns[name] = f
		p.Function = append(p.Function, f)
		return f
	}
	for _, st := range stacks {
		s := &profile.Sample{Value: []int64{1, int64(10 * time.Millisecond)}}
		for _, frame := range st {
			loc := &profile.Location{ID: uint64(len(p.Location) + 1)}
			for _, name := range strings.Split(frame, "|") {
				loc.Line = append(loc.Line, profile.Line{Function: fn(name)})
			}
			p.Location = append(p.Location, loc)
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	return p
}

func TestClassifyStages(t *testing.T) {
	redisIO := []string{"internal/runtime/syscall/linux.Syscall6", "syscall.write", "github.com/redis/go-redis/v9.(*baseClient).process",
		bgp + "internal/redisx.(*deadline).ProcessHook.deadline.ProcessHook.func1", "github.com/redis/go-redis/v9.(*hooksMixin).processHook",
		"github.com/redis/go-redis/v9.(*Script).Run"}
	cases := []struct {
		name, service string
		stack         []string
		want          string
	}{
		{"decrypt/jwx-leaf-under-our-call", RoleKeyService, req("crypto/internal/fips140/nistec.p256SqrInternal",
			"github.com/lestrrat-go/jwx/v2/jwe/internal/keyenc.DeriveZ", "github.com/lestrrat-go/jwx/v2/jwe.Decrypt",
			bgp+"internal/jose.jwxDecrypt", bgp+"internal/jose.(*JWE).Decrypt", bgp+"keyservice/unwrap.(*Service).decryptCard",
			bgp+"keyservice/unwrap.(*Service).inspect", bgp+"keyservice/api.(*Server).inspect"), "decrypt"},
		{"admission/redis-io-through-our-hook", RoleKeyService, req(append(slices.Clone(redisIO),
			bgp+"internal/ratelimit.(*Redis).run", bgp+"keyservice/admit.script.Admit", bgp+"keyservice/unwrap.(*Service).admitInspect",
			bgp+"keyservice/unwrap.(*Service).inspect")...), "admission"},
		{"redis/batched-scripts-flusher", RoleKeyService, []string{"internal/runtime/syscall/linux.Syscall6", "syscall.write",
			"github.com/redis/go-redis/v9.(*Pipeline).Exec", bgp + "internal/redisx.(*batcher).send", bgp + "internal/redisx.(*batcher).flush"}, "redis"},
		{"redis/gateway-flusher", RoleGateway, []string{"github.com/redis/go-redis/v9.(*Pipeline).Exec",
			bgp + "internal/redisx.(*batcher).send", bgp + "internal/redisx.(*batcher).flush"}, "redis"},
		{"admission/waiting-for-a-batched-script", RoleKeyService, req("runtime.selectgo", bgp+"internal/redisx.(*batcher).do",
			bgp+"internal/redisx.(*batched).EvalSha", "github.com/redis/go-redis/v9.(*Script).Run",
			bgp+"internal/ratelimit.(*Redis).run", bgp+"keyservice/admit.script.Admit"), "admission"},
		// A lone script is sent from its caller's goroutine (sendOwn, whose
		// name begins as send's does): its round trip is the request's own.
		{"admission/script-sent-by-its-caller", RoleKeyService, req("internal/runtime/syscall/linux.Syscall6", "syscall.write",
			"github.com/redis/go-redis/v9.(*baseClient).process", bgp+"internal/redisx.(*deadline).ProcessHook.deadline.ProcessHook.func1",
			"github.com/redis/go-redis/v9.(*hooksMixin).processHook", bgp+"internal/redisx.(*batcher).sendOwn", bgp+"internal/redisx.(*batcher).do",
			bgp+"internal/redisx.(*batched).EvalSha", "github.com/redis/go-redis/v9.(*Script).Run",
			bgp+"internal/ratelimit.(*Redis).run", bgp+"keyservice/admit.script.Admit"), "admission"},
		{"limits/gateway-script-sent-by-its-caller", RoleGateway, req("syscall.read", bgp+"internal/redisx.(*batcher).sendOwn",
			bgp+"internal/redisx.(*batcher).do", bgp+"internal/redisx.(*batched).EvalSha", "github.com/redis/go-redis/v9.(*Script).Run",
			bgp+"internal/ratelimit.(*Redis).AllowBatchThen", bgp+"gateway/sessions.(*Redis).AttemptLimited"), "limits"},
		{"admission/deepest-wins-over-verify", RoleKeyService, req(append(slices.Clone(redisIO),
			bgp+"keyservice/replay.(*Redis).Claim", bgp+"keyservice/sigauth.(*Verifier).Verify")...), "admission"},
		{"verify/jose-helper-under-sigauth", RoleKeyService, req("encoding/base64.(*Encoding).Decode", bgp+"internal/jose.decodeB64",
			bgp+"internal/jose.VerifyCompact", bgp+"keyservice/sigauth.(*Verifier).Authenticate"), "verify"},
		{"bind/same-helper-under-open", RoleKeyService, req("encoding/base64.(*Encoding).Decode", bgp+"internal/jose.decodeB64",
			bgp+"internal/jose.parseJWE", bgp+"internal/jose.Open", bgp+"keyservice/unwrap.(*Service).open"), "bind"},
		{"bind/stage-wins-over-http-on-one-frame", RoleKeyService, req("encoding/json.(*Decoder).Token", bgp+"internal/httpapi.Bind",
			bgp+"keyservice/api.(*Server).reveal"), "bind"},
		{"bind/http-helper-deeper-than-bind", RoleKeyService, req("encoding/json.(*Decoder).Token", bgp+"internal/httpapi.noDuplicateKeys",
			bgp+"internal/httpapi.Bind", bgp+"keyservice/api.bind", bgp+"keyservice/api.(*Server).reveal"), "bind"},
		{"bind/fasthttp-frame-deeper-than-bind", RoleKeyService, req("github.com/valyala/fasthttp.(*RequestHeader).VisitAll",
			"github.com/gofiber/fiber/v2.(*Ctx).Body", bgp+"keyservice/api.bind", bgp+"keyservice/api.(*Server).reveal"), "bind"},
		{"seal/reveal-encrypt", RoleKeyService, req("crypto/ecdh.(*PrivateKey).ECDH", bgp+"internal/jose.EncryptDirect",
			bgp+"keyservice/unwrap.(*Service).sealToBrowser", bgp+"keyservice/unwrap.(*Service).Reveal"), "seal"},
		{"passkey/nonce-under-approve", RoleKeyService, req("github.com/redis/go-redis/v9.cmdable.GetDel", bgp+"keyservice/nonce.(*Redis).Take",
			bgp+"keyservice/passkeys.(*Service).Approve"), "passkey"},
		{"inline/innermost-first", RoleKeyService, req("runtime.mallocgc", bgp+"keyservice/card.ParsePlaintext|"+bgp+"internal/audit.(*Log).Append"), "card"},
		{"audit/background-commit", RoleKeyService, []string{"syscall.Fsync", "os.(*File).Sync", bgp + "internal/audit.(*Log).commit", bgp + "internal/audit.(*Log).run"}, "audit"},
		{"forward/http2-read-loop", RoleKeyService, []string{"crypto/tls.(*Conn).Read", "net/http.(*http2Framer).ReadFrame", "net/http.(*http2ClientConn).readLoop"}, "forward"},
		{"http/handler-work", RoleKeyService, req("encoding/json.Marshal", bgp+"keyservice/api.(*Server).inspect"), "http"},
		{"http/fasthttp-alone", RoleKeyService, []string{"syscall.write", "github.com/valyala/fasthttp.(*Server).serveConn", "github.com/valyala/fasthttp.(*workerPool).workerFunc"}, "http"},
		{"other/orchestration-deeper-than-http", RoleKeyService, req("runtime.mallocgc", bgp+"keyservice/unwrap.(*Service).inspect", bgp+"keyservice/api.(*Server).inspect"), "other"},
		{"gc/background-worker", RoleKeyService, []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker.func2", "runtime.systemstack", "runtime.gcBgMarkWorker"}, "gc"},
		{"gc/assist-on-a-request", RoleKeyService, req("runtime.scanobject", "runtime.gcDrainN", "runtime.gcAssistAlloc1", "runtime.gcAssistAlloc",
			"runtime.mallocgc", bgp+"keyservice/sigauth.(*Verifier).Authenticate"), "gc"},
		{"sched/idle-poll", RoleKeyService, []string{"runtime.netpoll", "runtime.findRunnable", "runtime.schedule", "runtime.park_m", "runtime.mcall"}, "sched"},
		{"other/unmatched", RoleKeyService, []string{"example.com/x.f", "runtime.goexit"}, "other"},
		{"other/empty-stack", RoleKeyService, nil, "other"},
		{"other/gateway-frame-in-key-service", RoleKeyService, []string{bgp + "gateway/tokens.(*Redis).PutThen"}, "other"},

		{"sign/under-the-client", RoleGateway, req("crypto/internal/fips140/ed25519.sign", "github.com/lestrrat-go/jwx/v2/jws.eddsaSigner.Sign",
			bgp+"internal/jose.Sign", bgp+"keyservice/client.(*Signer).Authorization", bgp+"keyservice/client.(*Client).call",
			bgp+"gateway/ingest.(*Service).mint", bgp+"gateway/web.(*Server).submit"), "sign"},
		{"sign/first-listed-wins-on-one-frame", RoleGateway, req("runtime.mallocgc", bgp+"keyservice/client.(*Signer).Authorization",
			bgp+"keyservice/client.(*Client).call"), "sign"},
		{"ks-call/client", RoleGateway, req("encoding/json.Unmarshal", bgp+"keyservice/client.(*Client).call", bgp+"gateway/ingest.(*Service).mint"), "ks-call"},
		{"ks-call/connection-goroutine", RoleGateway, []string{"syscall.write", "net/http.persistConnWriter.Write", "net/http.(*persistConn).writeLoop"}, "ks-call"},
		{"limits/session-attempt", RoleGateway, req(append(slices.Clone(redisIO), bgp+"internal/ratelimit.(*Redis).AllowBatchThen",
			bgp+"gateway/sessions.(*Redis).AttemptLimited", bgp+"gateway/ingest.(*Service).Submit")...), "limits"},
		{"tokens/write", RoleGateway, req(append(slices.Clone(redisIO), bgp+"gateway/tokens.(*Redis).putWith", bgp+"gateway/tokens.(*Redis).PutThen",
			bgp+"gateway/ingest.(*Service).store")...), "tokens"},
		{"webhooks/emit", RoleGateway, req(bgp+"gateway/webhooks.(*Redis).Endpoints", bgp+"gateway/webhooks.(*Service).TokenCreated"), "webhooks"},
		{"other/decrypt-frame-in-gateway", RoleGateway, []string{"github.com/lestrrat-go/jwx/v2/jwe.Decrypt"}, "other"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newClassifier(stageTables[tc.service])
			if err != nil {
				t.Fatal(err)
			}
			p := synthProfile(time.Second, tc.stack)
			got, n, err := c.classify(p)
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 || len(got) != 1 || got[tc.want] != 10*time.Millisecond {
				t.Errorf("%s: got %v (%d samples), want all in %q", tc.service, got, n, tc.want)
			}
		})
	}
}

// TestStageTables keeps the tables consistent: ids unique, all printed,
// patterns valid, the catch-all stages present, paths known.
func TestStageTables(t *testing.T) {
	known := []string{PathInspect, PathReveal, PathSubmit, PathForward, PathForwardReplay}
	for service, table := range stageTables {
		if _, err := newClassifier(table); err != nil {
			t.Errorf("%s: %v", service, err)
		}
		var ids []string
		for _, st := range table {
			if slices.Contains(ids, st.id) {
				t.Errorf("%s: stage %s twice", service, st.id)
			}
			ids = append(ids, st.id)
			if !slices.Contains(stageColumns, st.id) {
				t.Errorf("%s: stage %s has no column", service, st.id)
			}
			for _, p := range st.paths {
				if !slices.Contains(known, p) {
					t.Errorf("%s: stage %s names unknown path %q", service, st.id, p)
				}
			}
		}
		for _, id := range []string{"http", "audit", "gc", "sched", stageOther} {
			if !slices.Contains(ids, id) {
				t.Errorf("%s: no %s stage", service, id)
			}
		}
	}
	for _, p := range known {
		for _, s := range pathServices(p) {
			if _, ok := stageTables[s]; !ok {
				t.Errorf("path %s goes through %s, which has no table", p, s)
			}
		}
	}
}

// TestStagesPerRequest: stage CPU over the requests the profiled window
// served (its throughput times the profile's length), from a serialised
// profile as the child sends it.
func TestStagesPerRequest(t *testing.T) {
	decrypt := req("github.com/lestrrat-go/jwx/v2/jwe.Decrypt", bgp+"internal/jose.(*JWE).Decrypt")
	verify := req(bgp + "keyservice/sigauth.(*Verifier).Authenticate")
	p := synthProfile(2*time.Second, decrypt, decrypt, decrypt, verify, []string{"example.com/x.f"})
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	pt := Point{Workers: 4, Throughput: 50, CPUPerReqUs: map[string]float64{RoleKeyService: 540}}
	sc, err := stagesOf(buf.Bytes(), RoleKeyService, pt)
	if err != nil {
		t.Fatal(err)
	}
	// 100 requests in 2 s: 30 ms of decrypt is 300 µs per request.
	want := map[string]float64{"decrypt": 300, "verify": 100, "other": 100}
	if !maps.Equal(sc.UsPerReq, want) || sc.TotalUs != 500 || sc.Samples != 5 || sc.MeasuredUs != 540 || sc.ProfileSec != 2 || sc.Workers != 4 {
		t.Errorf("got %+v, want %v, total 500", sc, want)
	}

	noCPU := synthProfile(time.Second, decrypt)
	noCPU.SampleType = noCPU.SampleType[:1]
	for _, s := range noCPU.Sample {
		s.Value = s.Value[:1]
	}
	buf.Reset()
	if err := noCPU.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := stagesOf(buf.Bytes(), RoleKeyService, pt); err == nil {
		t.Error("a profile without CPU time was accepted")
	}
	if _, err := stagesOf([]byte("not a profile"), RoleKeyService, pt); err == nil {
		t.Error("garbage was accepted as a profile")
	}
}

// TestStageTablePrinted: the summary prints the stages beside the sweep's
// CPU per request, from a report read back from JSON (-from).
func TestStageTablePrinted(t *testing.T) {
	rep := Report{KEKs: []KEKResult{{Label: "P-256", Paths: []PathResult{
		{Path: PathInspect, BestWorkers: 4, Points: []Point{{Workers: 4, CPUPerReqUs: map[string]float64{RoleKeyService: 610}}},
			Stages: []StageCPU{{Service: RoleKeyService, Workers: 4, ProfileSec: 5, Throughput: 900,
				UsPerReq: map[string]float64{"decrypt": 300, "http": 100, "verify": 150}, TotalUs: 550, MeasuredUs: 600}}},
		{Path: PathSubmit, BestWorkers: 8, Points: []Point{{Workers: 8, CPUPerReqUs: map[string]float64{RoleGateway: 420, RoleKeyService: 650}}},
			Stages: []StageCPU{
				{Service: RoleGateway, Workers: 8, ProfileSec: 5, Throughput: 400, UsPerReq: map[string]float64{"tokens": 60, "http": 40}, TotalUs: 100, MeasuredUs: 410},
				{Service: RoleKeyService, Workers: 8, ProfileSec: 5, Throughput: 400, UsPerReq: map[string]float64{"decrypt": 310}, TotalUs: 310, MeasuredUs: 640},
			}},
	}}}}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	PrintSummary(&out, &back)
	s := out.String()
	for _, want := range []string{
		"| path | service | workers | req/s | http | verify | decrypt | tokens | total | same window | sweep |",
		"| inspect | keyservice | 4 | 900 | 100 | 150 | 300 |  | 550 | 600 | 610 |",
		// A stage the service has but did not show is 0; one it does not have is blank.
		"| submit | gateway | 8 | 400 | 40 |  |  | 60 | 100 | 410 | 420 |",
		"| submit | keyservice | 8 | 400 | 0 | 0 | 310 |  | 310 | 640 | 650 |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}
