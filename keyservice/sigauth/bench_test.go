package sigauth

import (
	"context"
	"crypto"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/replay"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// BenchmarkVerify measures one signed-request check as the key service runs
// it on every call: parse, signature, claims, body hash, and the jti claimed
// in the replay cache (in process, or a real Redis round trip). Headers are
// signed before the timer starts; each carries its own jti, as in production.
func BenchmarkVerify(b *testing.B) {
	al, k := newTestList(b)
	for _, key := range []struct {
		name, kid string
		key       crypto.Signer
	}{{"EdDSA", "gw-old", k.gwOld}, {"ES256", "gw-new", k.gwNew}} {
		for _, store := range []struct {
			name string
			new  func(testing.TB) ReplayCache
		}{
			{"memory", func(testing.TB) ReplayCache { return replay.NewMemory() }},
			{"redis", func(tb testing.TB) ReplayCache { return replay.NewRedis(testenv.Redis(tb), "bench:jti:") }},
		} {
			b.Run(key.name+"/"+store.name, func(b *testing.B) {
				v := &Verifier{Audience: "keyservice", Origins: testOrigins(b), Clients: al, Replay: store.new(b)}
				s := &client.Signer{ClientID: "gateway", Kid: key.kid, Audience: "keyservice", Key: key.key, TTL: wire.MaxTTL}
				auths := presign(b, s, b.N)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := v.Verify(context.Background(), auths[i], http.MethodPost, "/v1/inspect", body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkVerifyParallel is BenchmarkVerify/EdDSA/redis from many request
// goroutines at once, as under load.
func BenchmarkVerifyParallel(b *testing.B) {
	al, k := newTestList(b)
	v := &Verifier{Audience: "keyservice", Origins: testOrigins(b), Clients: al, Replay: replay.NewRedis(testenv.Redis(b), "bench:jti:")}
	s := &client.Signer{ClientID: "gateway", Kid: "gw-old", Audience: "keyservice", Key: k.gwOld, TTL: wire.MaxTTL}
	auths := presign(b, s, b.N)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(context.Background(), auths[next.Add(1)-1], http.MethodPost, "/v1/inspect", body); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func presign(b *testing.B, s *client.Signer, n int) []string {
	b.Helper()
	out := make([]string, n)
	for i := range out {
		a, err := s.Authorization(http.MethodPost, testURL, body)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = a
	}
	return out
}
