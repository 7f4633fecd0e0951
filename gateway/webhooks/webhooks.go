// Package webhooks tells merchants about events on their tokens: signed
// HTTP POSTs to the endpoints a merchant registers, queued durably (Redis or
// bbolt, like the gateway's other stores) and delivered by a worker with
// bounded, jittered exponential backoff, each attempt written to a delivery
// log the merchant can read.
//
// Payloads never hold a card number or a ciphertext: a token event carries
// the token id and masked fields, a forward event its destination and
// outcome. Bodies are signed with the endpoint's secret (signature.go).
//
// The gateway sends these from the public zone to URLs a merchant chose, so
// against SSRF: only https (http for loopback with the dev flag), the host
// resolved once per attempt and every address checked before any dial
// (internal/safedial: private, loopback, link-local and special ranges
// refused), the checked address dialed, no redirects, no proxy, timeouts.
package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/blindgate/blindgate/gateway/sessions"
	"github.com/blindgate/blindgate/internal/panshape"
	"github.com/blindgate/blindgate/internal/randid"
	"github.com/blindgate/blindgate/internal/safedial"
)

// Event types.
const (
	EventTokenCreated     = "token.created"
	EventForwardSucceeded = "forward.succeeded"
	EventForwardFailed    = "forward.failed"
)

// Delivery states.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Limits.
const (
	MaxEndpoints = 5    // per merchant
	maxURLLen    = 2048 // as the checkout's URLs
	SecretPrefix = "whsec_"
	MaxLogLimit  = 100
)

// Errors.
var (
	ErrNotFound     = errors.New("webhooks: not found")
	ErrInvalidURL   = errors.New("webhooks: invalid endpoint url")
	ErrTooMany      = errors.New("webhooks: too many endpoints")
	ErrUnauthorized = errors.New("webhooks: signature not valid")
)

// Endpoint is where a merchant's events go.
//
// Secret, unlike the merchant's API key (gateway/merchants stores only its
// SHA-256, since it is only ever compared), is kept as is: signing needs the
// secret itself, and a hash could not sign. It lives in the gateway's store
// beside the tokens, so whoever reads that store can forge this merchant's
// webhooks (not read cards); the gateway has no at-rest key to seal it
// with today. A merchant rotates by adding a new endpoint and deleting the
// old one. Secret is never rendered by the API after creation.
type Endpoint struct {
	ID         string    `json:"id"`
	MerchantID string    `json:"merchant_id"`
	URL        string    `json:"url"`
	Secret     string    `json:"secret"`
	CreatedAt  time.Time `json:"created_at"`
}

// Delivery is one event for one endpoint, with its attempts so far. Body is
// the signed event JSON; the log's view leaves it out.
type Delivery struct {
	ID             string    `json:"id"`
	MerchantID     string    `json:"merchant_id"`
	EndpointID     string    `json:"endpoint_id"`
	EventID        string    `json:"event_id"`
	EventType      string    `json:"event_type"`
	Body           []byte    `json:"body"`
	Status         string    `json:"status"`
	Attempts       int       `json:"attempts"`
	NextAt         time.Time `json:"next_at"`
	LastStatusCode int       `json:"last_status_code,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
	LatencyMS      int64     `json:"latency_ms,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Store keeps endpoints, the delivery queue and the log.
type Store interface {
	// AddEndpoint stores e unless its merchant has max endpoints (ErrTooMany).
	AddEndpoint(ctx context.Context, e Endpoint, max int) error
	Endpoints(ctx context.Context, merchant string) ([]Endpoint, error)
	Endpoint(ctx context.Context, merchant, id string) (Endpoint, error)
	DeleteEndpoint(ctx context.Context, merchant, id string) error
	// Enqueue stores a new pending delivery, due at d.NextAt.
	Enqueue(ctx context.Context, d Delivery) error
	// ClaimDue returns up to n pending deliveries due at now and pushes
	// their due time to now+lease, so no other worker takes them meanwhile.
	ClaimDue(ctx context.Context, now time.Time, lease time.Duration, n int) ([]Delivery, error)
	// Save records an attempt: a pending delivery is due again at NextAt,
	// a finished one leaves the queue.
	Save(ctx context.Context, d Delivery) error
	// Deliveries lists a merchant's latest deliveries, newest first.
	Deliveries(ctx context.Context, merchant string, limit int) ([]Delivery, error)
}

// NewSecret returns a signing secret: "whsec_" and 256 random bits in hex.
func NewSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return SecretPrefix + hex.EncodeToString(b[:]), nil
}

func newID(prefix string) (string, error) { return randid.New(prefix) }

// ValidID reports whether id has the shape of an endpoint id.
func ValidID(id string) bool { return randid.Valid("we_", id) }

// ValidateURL checks an endpoint URL and returns it normalised. Its origin
// follows the checkout's rule for allowed origins (sessions.ValidateOrigin:
// https, plain http only for localhost, 127.0.0.0/8 and [::1]); loopback
// hosts are refused unless allowLoopback (development, tests), an IP
// literal must be an address the sender may dial, and it holds no user
// info, fragment or anything shaped like a card number.
func ValidateURL(raw string, allowLoopback bool) (string, error) {
	bad := func(why string) (string, error) { return "", fmt.Errorf("%w: %s", ErrInvalidURL, why) }
	if raw == "" || len(raw) > maxURLLen {
		return bad("is empty or too long")
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return bad("has spaces, control or non-ASCII characters")
		}
	}
	if panshape.Contains(raw) {
		return bad("looks like it holds a card number")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return bad("does not parse")
	}
	if u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") {
		return bad("must not have user info or a fragment")
	}
	origin, err := sessions.ValidateOrigin(u.Scheme + "://" + u.Host)
	if err != nil {
		return bad("must be https (http only for localhost, 127.0.0.0/8 and [::1]) with a valid host")
	}
	host := strings.Trim(strings.ToLower(u.Hostname()), "[]")
	if ip, err := netip.ParseAddr(host); err == nil {
		if !addressAllowed(ip, allowLoopback) {
			return bad("names an address the gateway may not call (private, loopback or reserved)")
		}
	} else if host == "localhost" && !allowLoopback {
		return bad("names an address the gateway may not call (loopback)")
	}
	out := origin + u.EscapedPath()
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out, nil
}

// addressAllowed is the sender's rule for a resolved address.
func addressAllowed(ip netip.Addr, allowLoopback bool) bool {
	if allowLoopback && ip.Unmap().IsLoopback() {
		return true
	}
	return safedial.AddressAllowed(ip, nil)
}
