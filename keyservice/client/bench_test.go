package client_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/blindgate/blindgate/internal/testenv"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// BenchmarkInspectCall is the gateway's side of one signed inspect: sign,
// send over a keep-alive connection, read and decode the answer, from 16
// callers. The stand-in answers at once without checking anything, so the
// CPU per call (getrusage, the stand-in's included) is mostly the
// client's. "fasthttp" calls with the checkout's context (one nothing
// cancels); "fasthttp-cancelable" with one the sender must watch.
func BenchmarkInspectCall(b *testing.B) {
	answer := []byte(`{"kid":"kek-1","brand":"visa","bin":"42424242","last4":"4242","exp_month":12,"exp_year":2030,"fingerprint":"fpm_0123456789abcdef0123456789abcdef","binding":"bnd_0123456789abcdef0123456789abcdef0123"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	b.Cleanup(srv.Close)
	key, err := client.GenerateKey("")
	if err != nil {
		b.Fatal(err)
	}
	hc := client.HTTPClient(false)
	tr := hc.Transport.(*http.Transport)
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 256 // as the gateway sizes it
	base := client.New(srv.URL, &client.Signer{ClientID: "gateway", Kid: "gateway-1", Audience: "keyservice", Key: key}, hc)
	req := wire.InspectRequest{JWE: "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.ZW5jcnlwdGVkLWtleQ.aXYtaXYtaXY.Y2lwaGVydGV4dA.dGFn", Session: "cs_0123456789abcdef", Merchant: "m_0123456789abcdefghij"}
	cancelable, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	for _, tc := range []struct {
		name string
		c    *client.Client
		ctx  context.Context
	}{
		{"net-http", base, context.Background()},
		{"fasthttp", base.WithFastHTTP(), context.Background()},
		{"fasthttp-cancelable", base.WithFastHTTP(), cancelable},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			cpu := testenv.CPUTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := tc.c.Inspect(tc.ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((testenv.CPUTime()-cpu).Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}
