package client

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/blindgate/blindgate/keyservice/wire"
)

// CodeClockSkew is the key service's answer to a signature outside its
// clock window (401; docs/contracts.md, Contract 2).
const CodeClockSkew = "clock_skew"

// RefusalHold is how long a 401 clock_skew keeps a Clock skewed without a
// measurement that says so.
const RefusalHold = 30 * time.Second

// Clock compares this host's clock with the key service's, from the Date
// header of every answer (signed calls, the JWKS and seal-status alike). The
// key service refuses a signed request whose iat is more than its -skew
// ahead of its clock, or whose exp + skew has passed, so two clocks drifting
// apart turn every checkout into a refusal; Clock says so once, with both
// times, rather than leaving a stream of bare failures to explain.
//
// A Date header has one-second resolution and was stamped somewhere between
// sending and receiving, so the key service's clock minus ours lies within
// [Date - received, Date + 1s - sent]. The clocks are skewed only when that
// whole interval is beyond Max: network latency never raises a false alarm.
// An answer of 401 clock_skew counts as skewed too (the key service's -skew
// may be tighter than Max) until a signed call succeeds again or, since a
// gateway out of rotation makes no signed calls, for RefusalHold at most.
//
// It is safe for concurrent use; share one between the clients of one key
// service.
type Clock struct {
	max time.Duration
	now func() time.Time
	log *slog.Logger

	mu       sync.Mutex
	known    bool
	offset   time.Duration // estimate of the key service's clock minus ours
	local    time.Time     // our time at the last answer (mid-flight)
	remote   time.Time     // the key service's Date of that answer
	measured bool          // the last answer's interval lies beyond max
	refused  time.Time     // the last 401 clock_skew; zero after a signed success
	skewed   bool          // as last logged
}

// NewClock returns a Clock tolerating max (the key service's -skew; zero
// means wire.DefaultSkew), reading our time from now (nil: time.Now) and
// logging transitions to log (nil: slog.Default()).
func NewClock(max time.Duration, now func() time.Time, log *slog.Logger) *Clock {
	if max <= 0 {
		max = wire.DefaultSkew
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Clock{max: max, now: now, log: log}
}

// Max is the tolerated skew.
func (c *Clock) Max() time.Duration { return c.max }

// Offset returns the last estimate of the key service's clock minus ours
// (positive: the key service is ahead), and false until an answer carried a
// Date header.
func (c *Clock) Offset() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset, c.known
}

// Skewed returns nil while the clocks agree within Max (or nothing is known
// yet), else an error with both times.
func (c *Clock) Skewed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.skewedLocked(c.now()) {
		return nil
	}
	return fmt.Errorf("keyservice client: clock skew: key service %s, this host %s (key service %+.1fs; tolerated ±%s)",
		c.remote.UTC().Format(time.RFC3339), c.local.UTC().Format(time.RFC3339), c.offset.Seconds(), c.max)
}

// observe records one answer: its Date header, our times around the
// exchange, whether it answered a signed request, and its status and code.
func (c *Clock) observe(date string, sent, received time.Time, signed bool, status int, code string) {
	if c == nil {
		return
	}
	remote, err := http.ParseTime(date)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		lo := remote.Sub(received)              // the key service at least this far ahead
		hi := remote.Add(time.Second).Sub(sent) // and at most this far
		mid := sent.Add(received.Sub(sent) / 2) // our time at the exchange
		c.offset = remote.Add(500 * time.Millisecond).Sub(mid)
		c.local, c.remote, c.known = mid, remote, true
		c.measured = lo > c.max || hi < -c.max
	}
	switch {
	case status == http.StatusUnauthorized && code == CodeClockSkew:
		c.refused = received
	case signed && status >= 200 && status <= 299:
		c.refused = time.Time{}
	}
	skewed := c.skewedLocked(received)
	if skewed == c.skewed {
		return
	}
	c.skewed = skewed
	if skewed {
		c.log.Error("clock skew between this host and the key service: signed requests are refused until the clocks agree (check NTP on both hosts)",
			"keyservice_time", c.remote.UTC().Format(time.RFC3339), "local_time", c.local.UTC().Format(time.RFC3339),
			"skew_seconds", c.offset.Seconds(), "tolerated", c.max.String(), "refused_by_keyservice", !c.refused.IsZero())
		return
	}
	c.log.Info("clocks of this host and the key service agree again",
		"keyservice_time", c.remote.UTC().Format(time.RFC3339), "local_time", c.local.UTC().Format(time.RFC3339),
		"skew_seconds", c.offset.Seconds())
}

func (c *Clock) skewedLocked(now time.Time) bool {
	return c.measured || (!c.refused.IsZero() && now.Sub(c.refused) < RefusalHold)
}
