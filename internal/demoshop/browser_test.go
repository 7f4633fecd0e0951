package demoshop_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/blindgate/blindgate/internal/browsertest"
	"github.com/blindgate/blindgate/internal/demoshop"
	"github.com/blindgate/blindgate/internal/testenv"
)

// TestShopShowsTheErrorCode: a shop that cannot start a checkout says why,
// with the gateway's code, on its page (and in its log), so whoever set it
// up can tell a wrong merchant key from a gateway that is not there.
func TestShopShowsTheErrorCode(t *testing.T) {
	testenv.SkipShort(t, "browser test")
	browser := browsertest.Browser(t)
	for _, tc := range []struct {
		name    string
		gateway http.HandlerFunc // nil: no gateway listening
		want    []string
	}{
		{"401/invalid-api-key", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"code":"unauthenticated","message":"Invalid API key."}}`)
		}, []string{"could not start a checkout", "unauthenticated: Invalid API key."}},
		{"502/gateway-unreachable", nil, []string{"could not start a checkout", "gateway_unreachable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gwURL := "http://127.0.0.1:1" // nothing listens on port 1
			if tc.gateway != nil {
				gw := httptest.NewServer(tc.gateway)
				defer gw.Close()
				gwURL = gw.URL
			}
			var logs bytes.Buffer
			s, err := demoshop.New(demoshop.Config{
				Origin: "http://localhost:8081", GatewayURL: gwURL, SecretKey: "sk_wrong",
				Log: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			tab := browsertest.NewTab(t, browser)
			tab.Do(t, browsertest.Navigate(srv.URL), chromedp.WaitVisible(chromedp.ID("pay")), chromedp.Click(chromedp.ID("pay")))
			tab.WaitFor(t, `document.getElementById("error").textContent !== ""`, 15*time.Second)
			msg := browsertest.Eval[string](t, tab, `document.getElementById("error").textContent`)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the page says %q, want %q in it", msg, w)
				}
			}
			if !browsertest.Eval[bool](t, tab, `!document.getElementById("pay").disabled`) {
				t.Error("the pay button stays disabled after the refusal")
			}
			if tc.gateway != nil && !strings.Contains(logs.String(), "code=unauthenticated") {
				t.Errorf("the shop's log does not name the code:\n%s", logs.String())
			}
		})
	}
}
