package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/blindgate/blindgate/deploy/images"
)

// Names on the egress side.
const (
	egressAlias    = "egress"
	processorAlias = "processor"
	// unlistedAlias is the same stand-in under a name the egress proxy's
	// allow-list does not hold: the key service has a destination for it,
	// the proxy refuses it.
	unlistedAlias = "unlisted-processor"
	processorPort = "8443/tcp"
)

// forwardPath is the way out of the key zone: the egress proxy (on the key
// zone and an outside network) and the processor stand-in (outside only,
// its port published on 127.0.0.1 for /stats), with the key service's
// destinations for it: "standin" (allowed by the proxy) and "unlisted"
// (a name the proxy refuses).
type forwardPath struct {
	Egress, Processor testcontainers.Container
	statsURL          string
	hc                *http.Client
}

func newForwardPath(t *testing.T, s *stack) *forwardPath {
	t.Helper()
	start := time.Now()
	refs := needImages(t, images.Egress, images.Processor)
	outside := newNetwork(t, "egress-zone", false)

	preq := testcontainers.ContainerRequest{
		Image:      refs[images.Processor],
		Cmd:        []string{"-hosts", processorAlias + "," + unlistedAlias + ",127.0.0.1"},
		WaitingFor: wait.ForLog("processor listening").WithStartupTimeout(30 * time.Second),
	}
	onNetworks(&preq, processorAlias, outside)
	preq.NetworkAliases[outside.Name] = []string{processorAlias, unlistedAlias}
	publishLoopback(&preq, processorPort)
	fp := &forwardPath{Processor: startContainer(t, "processor", preq, true)}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := fp.Processor.CopyFileFromContainer(ctx, "/var/lib/processor/processor-ca.pem")
	if err != nil {
		t.Fatalf("processor CA: %v", err)
	}
	caPEM, _ := io.ReadAll(rc)
	rc.Close()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("processor CA: no certificate in %q", caPEM)
	}
	fp.hc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	fp.statsURL = strings.Replace(loopbackURL(t, fp.Processor, processorPort), "http://", "https://", 1) + "/stats"

	// The stand-in has a private address: the allow-list names it exactly,
	// as `keyservice destinations list -hosts` prints a destination's
	// allow_private.
	ip := containerIPs(t, fp.Processor)[0]
	ereq := testcontainers.ContainerRequest{
		Image:      refs[images.Egress],
		Cmd:        []string{"-addr", "0.0.0.0:3128", "-allow", processorAlias + ":8443 " + ip + "/32"},
		WaitingFor: wait.ForLog("egress proxy listening").WithStartupTimeout(30 * time.Second),
	}
	onNetworks(&ereq, egressAlias, outside, s.Net)
	fp.Egress = startContainer(t, "egress", ereq, true)

	dest := func(id, host string) []byte {
		b, _ := json.Marshal(map[string]any{
			"id": id, "url": "https://" + host + ":8443/v1", "method": "POST",
			"answer_headers": []string{"Psp-Reference"}, "ca_file": "processor-ca.pem",
			"timeout_ms": 10000, "merchants": []string{s.MerchantID},
			// The stand-in's card fields (forwardTemplate's body, R12).
			"card_fields": map[string][]string{"card.number": {"number"}, "card.exp_month": {"exp_month"},
				"card.exp_year": {"exp_year"}, "card.cvc": {"cvc"}},
		})
		return b
	}
	// A destination is read by `destinations add` in a one-shot container.
	const destFile = "/var/lib/blindgate/new-destination.json"
	// The CA goes into the key service's state volume, where its
	// destinations resolve relative paths; each one-shot admin container
	// gets the files it reads.
	s.keyZone.admin(t, []testcontainers.ContainerFile{
		{Reader: bytes.NewReader(caPEM), ContainerFilePath: "/var/lib/blindgate/processor-ca.pem", FileMode: 0o444},
		{Reader: bytes.NewReader(dest("standin", processorAlias)), ContainerFilePath: destFile, FileMode: 0o444},
	}, "destinations", "add", "-from", destFile)
	s.keyZone.admin(t, []testcontainers.ContainerFile{
		{Reader: bytes.NewReader(dest("unlisted", unlistedAlias)), ContainerFilePath: destFile, FileMode: 0o444},
	}, "destinations", "add", "-from", destFile)
	t.Logf("forward path up in %s (egress proxy, processor stand-in at %s)", time.Since(start).Round(100*time.Millisecond), ip)
	return fp
}

// processorStats is the stand-in's GET /stats.
type processorStats struct {
	Requests   int `json:"requests"`
	Authorized int `json:"authorized"`
	Declined   int `json:"declined"`
	WithCVC    int `json:"with_cvc"`
}

func (fp *forwardPath) stats(t *testing.T) processorStats {
	t.Helper()
	resp, err := fp.hc.Get(fp.statsURL)
	if err != nil {
		t.Fatalf("processor stats: %v", err)
	}
	defer resp.Body.Close()
	var st processorStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("processor stats: %v", err)
	}
	return st
}

// forwardAnswer is the merchant API's answer to a forward (or its error).
type forwardAnswer struct {
	HTTP     int
	Code     string            // error code, on a non-2xx
	Raw      string            // the whole body, to look for card numbers in
	Status   int               `json:"status"`
	Headers  map[string]string `json:"headers"`
	Body     string            `json:"body"`
	Replayed bool              `json:"replayed"`
}

// forward is the merchant's POST /v1/tokens/{token}/forward to destination
// with the stand-in's request shape; withCVC adds {{card.cvc}}.
func (s *stack) forward(t *testing.T, token, destination, idemKey string, withCVC bool) forwardAnswer {
	t.Helper()
	body := `{"reference":"` + token + `","number":"{{card.number}}","exp_month":"{{card.exp_month}}","exp_year":"{{card.exp_year}}"`
	if withCVC {
		body += `,"cvc":"{{card.cvc}}"`
	}
	body += "}"
	in, _ := json.Marshal(map[string]any{"destination": destination, "request": map[string]any{
		"path": "/payments", "content_type": "application/json", "body": body,
	}})
	req, err := http.NewRequest(http.MethodPost, s.GatewayURL+"/v1/tokens/"+token+"/forward", bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.SecretKey)
	req.Header.Set("Idempotency-Key", idemKey)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	a := forwardAnswer{HTTP: resp.StatusCode, Raw: string(raw)}
	if resp.StatusCode/100 != 2 {
		var eb struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal(raw, &eb)
		a.Code = eb.Error.Code
		return a
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("forward answer %q: %v", raw, err)
	}
	return a
}

// testForward is the merchant's forward of a token paid in Chromium, through
// the gateway, the key service and the egress proxy to the stand-in.
func testForward(t *testing.T, s *stack, fp *forwardPath, token string, c testCard) {
	t.Run("forward/reaches-the-processor-redacted", func(t *testing.T) {
		before := fp.stats(t)
		a := s.forward(t, token, "standin", "order-"+token, true)
		if a.HTTP != 200 || a.Status != 201 || a.Replayed {
			t.Fatalf("forward: HTTP %d %s, destination status %d: %s", a.HTTP, a.Code, a.Status, a.Raw)
		}
		after := fp.stats(t)
		// The stand-in checked Luhn, expiry and the CVC and authorized.
		if after.Requests != before.Requests+1 || after.Authorized != before.Authorized+1 || after.WithCVC != before.WithCVC+1 {
			t.Fatalf("stand-in stats %+v -> %+v, want one authorized request with a CVC", before, after)
		}
		var out map[string]string
		if err := json.Unmarshal([]byte(a.Body), &out); err != nil || out["status"] != "authorized" || out["last4"] != c.Last4 ||
			!strings.HasPrefix(out["id"], "pay_") || a.Headers["Psp-Reference"] != "psp-stand-in" {
			t.Errorf("destination answer %q (%v), headers %v", a.Body, err, a.Headers)
		}
		// The stand-in echoed the full number; the merchant gets it masked.
		if strings.Contains(a.Raw, c.PAN) || out["card_echo"] == "" {
			t.Errorf("the card number reached the merchant (or the echo vanished): %s", a.Raw)
		}
	})
	t.Run("forward/retry-same-key-not-sent-again", func(t *testing.T) {
		before := fp.stats(t)
		a := s.forward(t, token, "standin", "order-"+token, true)
		if a.HTTP != 200 || !a.Replayed || a.Status != 201 {
			t.Fatalf("retry: HTTP %d %s replayed %v: %s", a.HTTP, a.Code, a.Replayed, a.Raw)
		}
		if after := fp.stats(t); after != before {
			t.Errorf("a retry with the same Idempotency-Key reached the processor: %+v -> %+v", before, after)
		}
	})
	t.Run("forward/cvc-used-once", func(t *testing.T) {
		before := fp.stats(t)
		if a := s.forward(t, token, "standin", "order-"+token+"-again", true); a.HTTP != 422 || a.Code != "cvc_unavailable" {
			t.Fatalf("second forward needing the CVC: HTTP %d %s, want 422 cvc_unavailable", a.HTTP, a.Code)
		}
		if after := fp.stats(t); after != before {
			t.Errorf("stand-in stats %+v -> %+v", before, after)
		}
	})
	t.Run("forward/host-not-in-egress-allow-list-refused", func(t *testing.T) {
		before := fp.stats(t)
		a := s.forward(t, token, "unlisted", "order-"+token+"-unlisted", false)
		if a.HTTP != http.StatusBadGateway || a.Code != "destination_refused" {
			t.Fatalf("forward to a host the proxy does not allow: HTTP %d %s, want 502 destination_refused", a.HTTP, a.Code)
		}
		if after := fp.stats(t); after != before {
			t.Errorf("the refused destination was reached: %+v -> %+v", before, after)
		}
		eventually(t, 10*time.Second, "egress proxy logs", func() (bool, string) {
			logs := string(containerLogs(fp.Egress))
			return strings.Contains(logs, `"egress refused"`) && strings.Contains(logs, unlistedAlias) &&
				strings.Contains(logs, `"egress tunnel"`), tail([]byte(logs), 1500)
		})
	})
	t.Run("forward/no-card-number-in-logs", func(t *testing.T) {
		for name, c2 := range map[string]testcontainers.Container{"gateway": s.Gateway, "keyservice": s.KeyService, "egress": fp.Egress} {
			if logs := containerLogs(c2); bytes.Contains(logs, []byte(c.PAN)) {
				t.Errorf("the %s's log holds the card number", name)
			}
		}
	})
}

// testForwardKeyServiceDown: with the key service stopped, the merchant gets
// a clear error and the stand-in nothing; called while it is down.
func testForwardKeyServiceDown(t *testing.T, s *stack, fp *forwardPath, token string) {
	t.Helper()
	before := fp.stats(t)
	a := s.forward(t, token, "standin", "order-"+token+"-down", false)
	if a.HTTP != http.StatusServiceUnavailable || a.Code == "" {
		t.Errorf("forward with the key service down: HTTP %d %q, want 503 with a code: %s", a.HTTP, a.Code, a.Raw)
	}
	if after := fp.stats(t); after != before {
		t.Errorf("the stand-in was reached with the key service down: %+v -> %+v", before, after)
	}
}
