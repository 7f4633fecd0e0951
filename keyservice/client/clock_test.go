package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/kstest"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// fakeClock is this host's clock in a test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// skewedKeyService answers every call with a Date its test chooses, and
// with the status and body it is told.
type skewedKeyService struct {
	mu     sync.Mutex
	date   time.Time
	status int
	body   string
}

func (k *skewedKeyService) set(date time.Time, status int, body string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.date, k.status, k.body = date, status, body
}

func (k *skewedKeyService) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	w.Header().Set("Date", k.date.UTC().Format(http.TimeFormat))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(k.status)
	_, _ = w.Write([]byte(k.body))
}

const (
	okInspect = `{"kid":"k1","brand":"visa","bin":"424242","last4":"4242","exp_month":1,"exp_year":2031,"fingerprint":"fpm_x","binding":"bnd_AAAAAAAAAAAAAAAAAAAAAA"}`
	skewBody  = `{"error":{"code":"clock_skew","message":"outside the clock window"}}`
)

func clockFixture(t *testing.T, newClient clientMaker) (*client.Client, *client.Clock, *skewedKeyService, *fakeClock, *bytes.Buffer) {
	t.Helper()
	ks := &skewedKeyService{status: 200, body: okInspect}
	srv := httptest.NewServer(ks)
	t.Cleanup(srv.Close)
	local := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	var logs bytes.Buffer
	clk := client.NewClock(5*time.Second, local.Now, slog.New(slog.NewTextHandler(&logs, nil)))
	key, err := client.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	s := &client.Signer{ClientID: "gateway", Kid: "gateway-1", Audience: "ks", Key: key, Now: local.Now}
	return newClient(srv.URL, s, nil).WithClock(clk), clk, ks, local, &logs
}

func inspect(c *client.Client) error {
	_, err := c.Inspect(context.Background(), wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs_1", Merchant: "m_1"})
	return err
}

// TestClockDetectsSkew: the Date of the key service's answers against this
// host's clock, beyond the tolerated skew in either direction.
func TestClockDetectsSkew(t *testing.T) { bothSenders(t, testClockDetectsSkew) }

func testClockDetectsSkew(t *testing.T, newClient clientMaker) {
	tests := []struct {
		name   string
		offset time.Duration // the key service's clock minus ours
		skewed bool
	}{
		{"ok/same-time", 0, false},
		{"ok/ahead-within-skew", 3 * time.Second, false},
		{"ok/behind-within-skew", -4 * time.Second, false},
		{"skewed/ahead", 10 * time.Second, true},
		{"skewed/behind", -10 * time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, clk, ks, local, _ := clockFixture(t, newClient)
			if _, known := clk.Offset(); known || clk.Skewed() != nil {
				t.Fatal("a clock with no answer yet knows something")
			}
			ks.set(local.Now().Add(tc.offset), 200, okInspect)
			if err := inspect(c); err != nil {
				t.Fatal(err)
			}
			off, known := clk.Offset()
			if !known || (off-tc.offset).Abs() > time.Second {
				t.Fatalf("offset %s (known %v), want about %s", off, known, tc.offset)
			}
			if got := clk.Skewed() != nil; got != tc.skewed {
				t.Fatalf("Skewed() = %v, want skewed %v", clk.Skewed(), tc.skewed)
			}
		})
	}
}

// TestClockLogsOncePerTransition: a skew is logged when it starts, with
// both times, and once when it ends, however many answers come between.
func TestClockLogsOncePerTransition(t *testing.T) { bothSenders(t, testClockLogsOncePerTransition) }

func testClockLogsOncePerTransition(t *testing.T, newClient clientMaker) {
	c, clk, ks, local, logs := clockFixture(t, newClient)
	ks.set(local.Now().Add(-time.Minute), 200, okInspect)
	for range 10 {
		_ = inspect(c)
	}
	out := logs.String()
	if n := strings.Count(out, "clock skew between this host and the key service"); n != 1 {
		t.Fatalf("skew logged %d times over 10 answers, want 1:\n%s", n, out)
	}
	for _, want := range []string{"keyservice_time=2030-01-02T03:03:05Z", "local_time=2030-01-02T03:04:05Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	err := clk.Skewed()
	if err == nil || !strings.Contains(err.Error(), "2030-01-02T03:03:05Z") || !strings.Contains(err.Error(), "2030-01-02T03:04:05Z") {
		t.Fatalf("Skewed() = %v, want both times", err)
	}
	ks.set(local.Now(), 200, okInspect)
	for range 10 {
		_ = inspect(c)
	}
	if clk.Skewed() != nil {
		t.Fatalf("still skewed after the clocks agree: %v", clk.Skewed())
	}
	if n := strings.Count(logs.String(), "agree again"); n != 1 {
		t.Fatalf("recovery logged %d times, want 1:\n%s", n, logs.String())
	}
}

// TestClockRefusalCounts: a 401 clock_skew makes the clock skewed even when
// the Date says the clocks are close (the key service's -skew may be
// tighter), until a signed call succeeds or RefusalHold passes.
func TestClockRefusalCounts(t *testing.T) { bothSenders(t, testClockRefusalCounts) }

func testClockRefusalCounts(t *testing.T, newClient clientMaker) {
	c, clk, ks, local, _ := clockFixture(t, newClient)
	ks.set(local.Now().Add(3*time.Second), 401, skewBody)
	err := inspect(c)
	var ke *client.Error
	if !errors.As(err, &ke) || ke.Code != client.CodeClockSkew || ke.Status != 401 {
		t.Fatalf("inspect: %v, want *Error 401 clock_skew", err)
	}
	if clk.Skewed() == nil {
		t.Fatal("a clock_skew refusal did not count")
	}
	// An unsigned answer (seal status) does not prove signatures pass.
	ks.set(local.Now().Add(3*time.Second), 200, `{"sealed":false}`)
	if _, err := c.SealStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
	if clk.Skewed() == nil {
		t.Fatal("an unsigned answer cleared the refusal")
	}
	local.Add(client.RefusalHold)
	if clk.Skewed() != nil {
		t.Fatal("the refusal held past RefusalHold")
	}

	ks.set(local.Now(), 401, skewBody)
	_ = inspect(c)
	if clk.Skewed() == nil {
		t.Fatal("second refusal did not count")
	}
	ks.set(local.Now(), 200, okInspect)
	if err := inspect(c); err != nil {
		t.Fatal(err)
	}
	if clk.Skewed() != nil {
		t.Fatal("a signed success did not clear the refusal")
	}
}

// TestClockAgainstRealKeyService: a gateway whose clock runs a minute ahead
// of the real key service gets 401 clock_skew on inspect (not a bare 401),
// and its Clock, fed by that answer's Date, reports the skew.
func TestClockAgainstRealKeyService(t *testing.T) { bothSenders(t, testClockAgainstRealKeyService) }

func testClockAgainstRealKeyService(t *testing.T, newClient clientMaker) {
	z := kstest.NewZone(t, kstest.Options{Listen: true, Clients: []kstest.Client{{ID: "gateway", Ops: []string{wire.OpInspect}}}})
	ahead := func() time.Time { return time.Now().Add(time.Minute) }
	var logs bytes.Buffer
	clk := client.NewClock(0, ahead, slog.New(slog.NewTextHandler(&logs, nil)))
	s := *z.Signer(t, "gateway")
	s.Now = ahead
	c := newClient(z.URL, &s, nil).WithClock(clk)
	jwe := z.Encrypt(t, fmt.Sprintf(`{"pan":"4242424242424242","exp_month":1,"exp_year":2031,"iat":%d}`, time.Now().Unix()), "cs_1")
	_, err := c.Inspect(context.Background(), wire.InspectRequest{JWE: jwe, Session: "cs_1", Merchant: "m_1"})
	var ke *client.Error
	if !errors.As(err, &ke) || ke.Code != client.CodeClockSkew {
		t.Fatalf("inspect from a clock a minute ahead: %v, want 401 clock_skew", err)
	}
	off, known := clk.Offset()
	if !known || off > -50*time.Second || off < -70*time.Second {
		t.Fatalf("offset %s known %v, want about -1m", off, known)
	}
	if clk.Skewed() == nil || !strings.Contains(logs.String(), "clock skew") {
		t.Fatalf("skew not reported: %v\n%s", clk.Skewed(), logs.String())
	}
	if strings.Contains(logs.String(), "4242424242424242") {
		t.Fatal("a card number reached the log")
	}
}
