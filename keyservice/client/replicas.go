package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/blindgate/blindgate/keyservice/wire"
)

// PassOver is how long a replica that failed (no connection, a dropped
// one, or 503) is tried only after the others: long enough that a dead
// replica costs one failed attempt per few seconds rather than one per
// request, short enough that a restarted one takes traffic again soon.
const PassOver = 5 * time.Second

// replicas are the key service's base URLs as one client reaches them. Each
// call starts at the next one in turn (the load spreads), tries the ones
// that did not fail in the last PassOver first, and moves to the next on a
// failure that another replica may not share (see failover). Copies of a
// Client (WithClock, WithHTTPTimeout) share one replicas.
type replicas struct {
	bases []string
	next  atomic.Uint64
	// passedOver[i] is the Unix time in nanoseconds until which bases[i]
	// is tried last.
	passedOver []atomic.Int64
	now        func() time.Time
}

// ParseURLs splits -keyservice-url: one base URL or several (replicas of
// one key service sharing a keyring), comma-separated. Each must be an
// absolute http(s) URL without query or fragment; a trailing "/" is dropped.
func ParseURLs(list string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimRight(strings.TrimSpace(raw), "/")
		if raw == "" {
			continue
		}
		if _, err := requestURI(raw); err != nil || strings.ContainsAny(raw, "?#") {
			return nil, errors.New("keyservice client: each key service URL must be an absolute http(s) URL without query or fragment")
		}
		out = append(out, raw)
	}
	if len(out) == 0 {
		return nil, errors.New("keyservice client: no key service URL")
	}
	return out, nil
}

func newReplicas(list string) *replicas {
	bases, err := ParseURLs(list)
	if err != nil {
		// New has no error to return: keep the text as the one base, so
		// every call fails as a bad URL did before there were lists.
		bases = []string{strings.TrimRight(strings.TrimSpace(list), "/")}
	}
	return &replicas{bases: bases, passedOver: make([]atomic.Int64, len(bases)), now: time.Now}
}

// order is the sequence of replicas one call tries: every replica once,
// from the next start in turn, those passed over last.
func (r *replicas) order() []int {
	n := len(r.bases)
	if n == 1 {
		return []int{0}
	}
	start := int(r.next.Add(1) % uint64(n))
	now := r.now().UnixNano()
	out := make([]int, 0, n)
	var later []int
	for k := range n {
		i := (start + k) % n
		if r.passedOver[i].Load() > now {
			later = append(later, i)
			continue
		}
		out = append(out, i)
	}
	return append(out, later...)
}

func (r *replicas) passOver(i int) { r.passedOver[i].Store(r.now().Add(PassOver).UnixNano()) }
func (r *replicas) ok(i int)       { r.passedOver[i].Store(0) }

// failover says whether a failed attempt may go to the next replica, and
// whether the one that failed is passed over for a while.
//
//   - No connection was made (refused, no such host, dial timeout): the
//     request never left, any call may go elsewhere.
//   - The connection dropped or timed out after the request was sent: the
//     replica may have done the work. Only calls that are safe to repeat
//     (repeatable) go on: inspect, rewrap, the audit query and the unsigned
//     reads. A reveal or a forward is not sent twice on the gateway's own
//     initiative; the operator or merchant sees the failure and decides.
//   - 503 (sealed, Redis or the audit log down on that replica): the key
//     service refuses before it does the work, so any call may go on.
//   - 400 key_unknown: the replicas load a changed keyring within 2 s of
//     each other; another may know the version already. Not passed over.
//
// Anything else (a 4xx verdict, 429: limits are shared in Redis, an
// unreadable answer) is the key service's answer and is returned.
func failover(ctx context.Context, err error, repeatable bool) (next, passOver bool) {
	if ctx.Err() != nil {
		return false, false
	}
	var ke *Error
	if errors.As(err, &ke) {
		switch {
		case ke.Status == http.StatusServiceUnavailable:
			return true, true
		case ke.Status == http.StatusBadRequest && ke.Code == CodeKeyUnknown:
			return true, false
		}
		return false, false
	}
	if notSent(err) {
		return true, true
	}
	if dropped(err) {
		return repeatable, true
	}
	// Not a transport failure: a request that could not be signed or
	// built, or an answer that could not be read, fails the same way at
	// every replica.
	return false, false
}

// CodeKeyUnknown is the key service's answer to a ciphertext under a KEK
// version it does not hold (400; docs/contracts.md).
const CodeKeyUnknown = "key_unknown"

// notSent reports whether a transport error happened before any byte of
// the request left: a failed dial (refused, unreachable, no such host,
// timed out), or no connection free in fasthttp's pool (noConnection).
func notSent(err error) bool {
	var op *net.OpError
	var nc *noConnection
	return errors.As(err, &op) && op.Op == "dial" || errors.As(err, &nc)
}

// dropped reports whether a transport error may have come after the
// request was sent: the exchange failed (reset, closed, timed out) while
// writing it or waiting for or reading the answer.
func dropped(err error) bool {
	var ue *url.Error
	var op *net.OpError
	return errors.As(err, &ue) || errors.As(err, &op) || errors.Is(err, io.ErrUnexpectedEOF)
}

// repeatable lists the calls that may be sent to a second replica after
// the first may have received them (see failover).
func repeatable(path string) bool {
	switch path {
	case wire.PathInspect, wire.PathRewrap, wire.PathAuditQuery, wire.PathJWKS, wire.PathSealStatus:
		return true
	}
	return false
}

// Replicas returns the base URLs the client calls, in configuration order.
func (c *Client) Replicas() []string { return append([]string(nil), c.reps.bases...) }
