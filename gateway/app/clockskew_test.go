package app

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for the gateway's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestClockSkewAtCheckout: a gateway whose clock runs a minute ahead of the
// key service's has its checkouts refused (the shopper sees "retry later",
// keyservice_unavailable, while the key service said clock_skew), /readyz
// names keyservice_clock, the skew is logged once with both times however
// many checkouts fail; once the clocks agree, checkouts pass again, with no
// restart.
func TestClockSkewAtCheckout(t *testing.T) {
	var offset atomic.Int64
	offset.Store(int64(time.Minute))
	logs := &syncBuffer{}
	g := newCheckoutGateway(t, slog.New(slog.NewTextHandler(logs, nil)), nil, func(c *Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	for range 5 {
		sid, err := g.session(t)
		if err != nil {
			t.Fatal(err)
		}
		st, m := g.submit(t, sid)
		if st != http.StatusServiceUnavailable || errCode(m) != "keyservice_unavailable" {
			t.Fatalf("checkout with the clock a minute ahead: %d %v, want 503 keyservice_unavailable", st, m)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "clock skew between this host and the key service"); n != 1 {
		t.Fatalf("skew logged %d times over 5 refused checkouts, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "keyservice_time=") || !strings.Contains(out, "local_time=") {
		t.Errorf("the skew log lacks both times:\n%s", out)
	}
	if !strings.Contains(out, "clock_skew") {
		t.Errorf("the refused checkouts' log does not name clock_skew:\n%s", out)
	}
	st, m := g.do(t, http.MethodGet, "/readyz", "", nil)
	if checks, _ := m["checks"].(map[string]any); st != 503 || checks["keyservice_clock"] != "skewed" {
		t.Fatalf("readyz with skewed clocks: %d %v", st, m)
	}

	offset.Store(0)
	sid, err := g.session(t)
	if err != nil {
		t.Fatal(err)
	}
	if st, m := g.submit(t, sid); st != 200 {
		t.Fatalf("checkout once the clocks agree: %d %v", st, m)
	}
	g.waitReadyz(t, 200, "")
	if n := strings.Count(logs.String(), "agree again"); n != 1 {
		t.Errorf("recovery logged %d times, want 1", n)
	}
	if strings.Contains(logs.String(), "4242424242424242") {
		t.Fatal("a card number reached the log")
	}
}
