// Package sessions holds hosted-checkout sessions: which merchant opened one,
// which origins may embed the page and receive the token, where the shopper
// returns, how the page looks, and how many submissions it allows before it
// locks (a brake on card testing through one session). A session is
// completed once, by the token it produced.
//
// Redis (production) and bbolt (demo) implement Store; one contract test runs
// against both. The package knows nothing of HTTP or of card data.
package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/blindgate/blindgate/checkout"
	"github.com/blindgate/blindgate/gateway/orderref"
	"github.com/blindgate/blindgate/internal/panshape"
	"github.com/blindgate/blindgate/internal/randid"
	"github.com/blindgate/blindgate/internal/ratelimit"
)

// Sentinel errors; the HTTP layer maps them with errors.Is.
var (
	ErrNotFound = errors.New("sessions: not found")
	// ErrExpired: past ExpiresAt. Get and Attempt return the session along
	// with it, so the page can still send the shopper back to the merchant.
	ErrExpired         = errors.New("sessions: expired")
	ErrTooManyAttempts = errors.New("sessions: too many attempts")
	ErrCompleted       = errors.New("sessions: already completed")
	ErrInvalid         = errors.New("sessions: invalid")
	ErrConflict        = errors.New("sessions: id already exists")
	// ErrBusy: another submission holds the session's claim (its inspect is
	// in flight). Nothing was counted; the caller may retry shortly.
	ErrBusy = errors.New("sessions: a submission is in progress")
	// ErrPANInText: a free-text field (the reference, metadata) looks like
	// a card number. It comes as a *FieldError, which also matches ErrInvalid.
	ErrPANInText = errors.New("sessions: looks like a card number")
)

// FieldError is a refused value: which field, and the rule it breaks in
// words fit for the caller. The rule text is written here, beside the rule;
// it never holds the value or an internal cause, so the HTTP layer may show
// PublicReason as it is. It matches ErrInvalid.
type FieldError struct {
	Field      string // the request field, as the merchant API names it
	Reason     string // the rule, e.g. "must be https"; may be empty
	CardShaped bool   // the value looks like a card number (ErrPANInText)
}

func (e *FieldError) Error() string { return "sessions: invalid " + e.PublicReason() }
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Is makes a FieldError about a card-number-shaped value match ErrPANInText.
func (e *FieldError) Is(target error) bool { return target == ErrPANInText && e.CardShaped }

// PublicReason is the field and the rule it breaks.
func (e *FieldError) PublicReason() string {
	if e.Reason == "" {
		return e.Field
	}
	return e.Field + " " + e.Reason
}

func invalid(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// attemptAfter is AttemptLimited one step after the other: the limits,
// then attempt if they allowed it.
func attemptAfter(ctx context.Context, l ratelimit.Limiter, takes []ratelimit.Take, attempt func() (Session, error)) ([]ratelimit.Result, Session, error) {
	res, err := ratelimit.AllowBatch(ctx, l, takes)
	if err != nil {
		return nil, Session{}, limiterFailed(err)
	}
	if n := len(res); n > 0 && !res[n-1].Allowed && takes[n-1].Stop {
		return res, Session{}, nil
	}
	s, err := attempt()
	return res, s, err
}

// limiterFailed makes a limiter's error match ratelimit.ErrUnavailable,
// as AttemptLimited promises (an invalid limit included: refuse alike).
func limiterFailed(err error) error {
	if errors.Is(err, ratelimit.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ratelimit.ErrUnavailable, err)
}

// Defaults and limits.
const (
	IDPrefix           = "cs_"
	DefaultTTL         = 30 * time.Minute
	MaxTTL             = 24 * time.Hour
	DefaultMaxAttempts = 5
	MaxMaxAttempts     = 20
	// DefaultGrace keeps an expired session readable for a while, so a late
	// shopper sees "expired" (with a way back) rather than "not found".
	DefaultGrace = 15 * time.Minute
	// DefaultClaimTTL bounds how long a crashed submission can hold its
	// session's claim; it must outlast the key service call (15 s at most).
	DefaultClaimTTL = time.Minute
	DefaultLocale   = "en"
	maxURLLen       = 2048
	maxOrigins      = 20
)

// Appearance is the merchant's styling of the hosted page. Each value ends up
// in CSS, so each is checked against a narrow shape (no free text): a value
// that could close a declaration would let a merchant (or whoever holds its
// key) inject style into the payment page (PCI DSS 6.4.3).
type Appearance struct {
	Primary    string `json:"primary,omitempty"`    // #rgb or #rrggbb
	Background string `json:"background,omitempty"` // #rgb or #rrggbb
	Text       string `json:"text,omitempty"`       // #rgb or #rrggbb
	Font       string `json:"font,omitempty"`       // one of AllowedFonts
	Radius     string `json:"radius,omitempty"`     // "0" or "<n>px", n <= 32
}

// AllowedFonts lists the CSS font families a merchant may choose: generic
// families and fonts every platform has, since the page loads no web fonts.
func AllowedFonts() []string {
	return []string{"system-ui", "sans-serif", "serif", "monospace", "arial", "helvetica", "georgia", "verdana"}
}

// DefaultAppearance is what the page uses for fields left empty.
func DefaultAppearance() Appearance {
	return Appearance{Primary: "#0a5cd5", Background: "#ffffff", Text: "#1a1a1a", Font: "system-ui", Radius: "6px"}
}

// WithDefaults fills empty fields from DefaultAppearance.
func (a Appearance) WithDefaults() Appearance {
	d := DefaultAppearance()
	for _, p := range []struct{ v, d *string }{{&a.Primary, &d.Primary}, {&a.Background, &d.Background}, {&a.Text, &d.Text}, {&a.Font, &d.Font}, {&a.Radius, &d.Radius}} {
		if *p.v == "" {
			*p.v = *p.d
		}
	}
	return a
}

// Normalize validates a and returns it in canonical form (lower case). Empty
// fields are allowed and mean "default".
func (a Appearance) Normalize() (Appearance, error) {
	for _, c := range []struct {
		name string
		v    *string
	}{{"primary", &a.Primary}, {"background", &a.Background}, {"text", &a.Text}} {
		*c.v = strings.ToLower(*c.v)
		if *c.v != "" && !validColour(*c.v) {
			return a, invalid("appearance."+c.name, "must be #rgb or #rrggbb")
		}
	}
	a.Font = strings.ToLower(a.Font)
	if a.Font != "" && !slices.Contains(AllowedFonts(), a.Font) {
		return a, invalid("appearance.font", "must be one of "+strings.Join(AllowedFonts(), ", "))
	}
	if a.Radius != "" && !validRadius(a.Radius) {
		return a, invalid("appearance.radius", "must be 0 or 0px to 32px")
	}
	return a, nil
}

func validColour(s string) bool {
	if len(s) != 4 && len(s) != 7 || s[0] != '#' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func validRadius(s string) bool {
	if s == "0" {
		return true
	}
	n, ok := strings.CutSuffix(s, "px")
	if !ok || len(n) == 0 || len(n) > 2 {
		return false
	}
	v, err := strconv.Atoi(n)
	return err == nil && v >= 0 && v <= 32 && strconv.Itoa(v) == n
}

// Session is one hosted checkout. Token is set when it completed.
type Session struct {
	ID             string     `json:"id"`
	MerchantID     string     `json:"merchant_id"`
	AllowedOrigins []string   `json:"allowed_origins"`
	ReturnURL      string     `json:"return_url,omitempty"`
	Appearance     Appearance `json:"appearance"`
	Locale         string     `json:"locale"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      time.Time  `json:"expires_at"`
	MaxAttempts    int        `json:"max_attempts"`
	Attempts       int        `json:"attempts"`
	Token          string     `json:"token,omitempty"`
	// Amount (minor units of Currency, ISO 4217) is what the page says the
	// shopper pays; 0 = no amount. SubmitType is the button's wording
	// (checkout.SubmitTypes); "" = the default for the amount.
	Amount     int64  `json:"amount,omitempty"`
	Currency   string `json:"currency,omitempty"`
	SubmitType string `json:"submit_type,omitempty"`
	// Reference and Metadata are the merchant's own (its order number, a
	// few keys of its choice; gateway/orderref's rule). The token the
	// session makes carries them.
	Reference string            `json:"reference,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// LogValue leaves the token out of logs.
func (s Session) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("merchant_id", s.MerchantID),
		slog.Int("attempts", s.Attempts),
		slog.Bool("completed", s.Token != ""),
	)
}

// Completed reports whether the session produced its token.
func (s Session) Completed() bool { return s.Token != "" }

// Expired reports whether the session is past its expiry at now.
func (s Session) Expired(now time.Time) bool { return !now.Before(s.ExpiresAt) }

// Store keeps checkout sessions.
type Store interface {
	// Create validates s, fills its defaults (ID, CreatedAt, ExpiresAt =
	// CreatedAt+DefaultTTL, MaxAttempts, Locale), normalises its origins and
	// return URL, stores it and returns it as stored.
	Create(ctx context.Context, s Session) (Session, error)
	// Get returns the session; past its expiry it returns it with ErrExpired.
	Get(ctx context.Context, id string) (Session, error)
	// Attempt counts one submission and claims the session for it (claim
	// names the submission), in one atomic step, and returns the session
	// after the increment. It refuses (without counting or claiming) with
	// ErrExpired, ErrCompleted, ErrBusy while another claim is held (any
	// claim, even an equal one: only one submission is in flight per
	// session, so at most one token is minted) or, once Attempts reached
	// MaxAttempts, ErrTooManyAttempts. The claim ends at Release, Complete
	// or after the claim TTL (DefaultClaimTTL).
	Attempt(ctx context.Context, id, claim string) (Session, error)
	// AttemptLimited is Attempt behind limits: it counts takes with l
	// (ratelimit.AllowBatch) and makes the attempt only if no Stop take was
	// refused, so a refused submission uses up no attempt. The results are
	// the limits'; a refusal returns them with no Session and no error. A
	// limiter failure wraps ratelimit.ErrUnavailable (nothing may be relied
	// on); other errors are Attempt's. On Redis, with l on the same client,
	// the limits and the attempt are one script (one round trip).
	AttemptLimited(ctx context.Context, l ratelimit.Limiter, takes []ratelimit.Take, id, claim string) ([]ratelimit.Result, Session, error)
	// Release ends the claim if claim still holds it (a failed submission),
	// so the shopper can try again at once. Releasing a claim that is not
	// held is a no-op.
	Release(ctx context.Context, id, claim string) error
	// Complete records the token and ends any claim. Completing again with
	// the same token is a no-op (a retried request); with another token it
	// is ErrCompleted.
	Complete(ctx context.Context, id, token string) error
}

// NewID returns "cs_" + 26 base32 characters of 128 random bits. The id is
// the capability to use the page, so it must be unguessable.
func NewID() (string, error) {
	id, err := randid.New(IDPrefix)
	if err != nil {
		return "", fmt.Errorf("sessions: random id: %w", err)
	}
	return id, nil
}

// ValidID reports whether id has the shape NewID produces.
func ValidID(id string) bool {
	return randid.Valid(IDPrefix, id)
}

// prepare fills defaults and validates a new session.
func prepare(s Session, now time.Time) (Session, error) {
	if s.ID == "" {
		id, err := NewID()
		if err != nil {
			return s, err
		}
		s.ID = id
	} else if !ValidID(s.ID) {
		return s, invalid("id", "")
	}
	if !randid.KeySafe(s.MerchantID) {
		return s, invalid("merchant_id", "")
	}
	if len(s.AllowedOrigins) == 0 || len(s.AllowedOrigins) > maxOrigins {
		return s, invalid("allowed_origins", fmt.Sprintf("needs 1 to %d origins", maxOrigins))
	}
	origins := make([]string, 0, len(s.AllowedOrigins))
	for _, o := range s.AllowedOrigins {
		n, err := ValidateOrigin(o)
		if err != nil {
			return s, err
		}
		if !slices.Contains(origins, n) {
			origins = append(origins, n)
		}
	}
	s.AllowedOrigins = origins
	if s.ReturnURL != "" {
		u, err := ValidateReturnURL(s.ReturnURL, s.AllowedOrigins)
		if err != nil {
			return s, err
		}
		s.ReturnURL = u
	}
	a, err := s.Appearance.Normalize()
	if err != nil {
		return s, err
	}
	s.Appearance = a
	if s.Locale == "" {
		s.Locale = DefaultLocale
	}
	// The checkout's string table is the one list of languages; a regional
	// locale ("de-DE") is shown in its language, and an unknown language is
	// refused rather than silently shown in English.
	if _, ok := checkout.LocaleLanguage(s.Locale); !ok {
		return s, invalid("locale", "must be a language tag in one of "+strings.Join(checkout.Languages(), ", "))
	}
	// The checkout's currency table is the one list of currencies, with
	// the decimals the page shows.
	s.Currency = strings.ToUpper(s.Currency)
	if err := (checkout.Payment{Amount: s.Amount, Currency: s.Currency, SubmitType: s.SubmitType}).Validate(); err != nil {
		var pe *checkout.PaymentError
		if errors.As(err, &pe) {
			return s, invalid(pe.Field, pe.Reason)
		}
		return s, invalid("amount", "")
	}
	s.Reference = orderref.Normalize(s.Reference)
	if len(s.Metadata) == 0 {
		s.Metadata = nil
	}
	if err := orderref.Check(s.Reference, s.Metadata); err != nil {
		var oe *orderref.Error
		if errors.As(err, &oe) {
			return s, &FieldError{Field: oe.Field, Reason: oe.Reason, CardShaped: oe.CardShaped}
		}
		return s, invalid("metadata", "")
	}
	// Millisecond precision: the Redis store compares expiry in ms, and both
	// stores must agree to the instant.
	now = now.UTC().Truncate(time.Millisecond)
	if s.CreatedAt.IsZero() {
		s.CreatedAt = now
	}
	s.CreatedAt = s.CreatedAt.UTC().Truncate(time.Millisecond)
	if s.ExpiresAt.IsZero() {
		s.ExpiresAt = s.CreatedAt.Add(DefaultTTL)
	}
	s.ExpiresAt = s.ExpiresAt.UTC().Truncate(time.Millisecond)
	if !s.ExpiresAt.After(now) || s.ExpiresAt.Sub(s.CreatedAt) > MaxTTL {
		return s, invalid("expires_at", fmt.Sprintf("must be in the future and within %s", MaxTTL))
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.MaxAttempts < 1 || s.MaxAttempts > MaxMaxAttempts {
		return s, invalid("max_attempts", fmt.Sprintf("must be 1 to %d", MaxMaxAttempts))
	}
	if s.Attempts != 0 || s.Token != "" {
		return s, invalid("session", "must be new: no attempts and no token")
	}
	return s, nil
}

// ValidateOrigin checks a web origin as a browser serialises it (scheme, host,
// optional port; nothing else) and returns it normalised: scheme and host in
// lower case, default port dropped, a lone trailing "/" removed. Comparing
// normalised origins with the browser's Origin header and using them as the
// postMessage target is then a plain string comparison.
func ValidateOrigin(s string) (string, error) {
	bad := func(why string) (string, error) {
		return "", invalid("origin", why)
	}
	if s == "" || len(s) > maxURLLen {
		return bad("is empty or too long")
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return bad("has spaces, control or non-ASCII characters (use punycode)")
		}
	}
	if strings.ContainsAny(s, "?#\\") {
		return bad("must not have a query or fragment")
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad("does not parse")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return bad("scheme must be https or http")
	}
	if u.Opaque != "" || u.User != nil || strings.Contains(u.Host, "@") {
		return bad("must not carry user info")
	}
	if u.Path != "" && u.Path != "/" {
		return bad("must not have a path")
	}
	name, host, why := normHostPort(u.Host, scheme)
	if why != "" {
		return bad(why)
	}
	if scheme == "http" && !loopback(name) {
		// Over plain HTTP anyone on the path could rewrite the merchant's
		// page and receive the token; only a developer's own machine may.
		return bad("must be https (http only for localhost, 127.0.0.0/8 and [::1])")
	}
	return scheme + "://" + host, nil
}

// normHostPort lower-cases the host, checks it and the port, and drops the
// scheme's default port. It returns the host alone (IPv6 in brackets) and
// the host with its port as an origin carries it, or the rule it breaks.
func normHostPort(hostport, scheme string) (host, full, why string) {
	if hostport == "" {
		return "", "", "needs a host"
	}
	port, bracketed := "", false
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port, bracketed = h, p, strings.HasPrefix(hostport, "[")
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host, bracketed = hostport[1:len(hostport)-1], true
	} else if strings.ContainsAny(hostport, ":[]") {
		return "", "", "has a malformed host or port"
	} else {
		host = hostport
	}
	host = strings.ToLower(host)
	switch ip := net.ParseIP(host); {
	case bracketed:
		if ip == nil || ip.To4() != nil && !strings.Contains(host, ":") {
			return "", "", "has an invalid IPv6 address"
		}
		host = "[" + ip.String() + "]"
	case ip != nil:
		if strings.Contains(host, ":") {
			return "", "", "needs brackets around an IPv6 address"
		}
		host = ip.String()
	case !validHostname(host):
		return "", "", "has an invalid host name"
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return "", "", "has an invalid port"
		}
		if scheme == "https" && n == 443 || scheme == "http" && n == 80 {
			port = ""
		}
	}
	if port != "" {
		return host, host + ":" + port, ""
	}
	return host, host, ""
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// loopback reports whether host names this machine: localhost,
// 127.0.0.0/8 or [::1] (an IPv6 host comes in brackets; an IPv4-mapped one
// is not accepted, it is no address a browser would show as loopback).
func loopback(host string) bool {
	if host == "localhost" || host == "[::1]" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Is4() && a.IsLoopback()
}

// ValidateReturnURL checks where the shopper is sent after checkout and
// returns it normalised. It must be https (http only for loopback hosts),
// hold no card number, carry no user info, and its origin must be one of the session's
// allowed origins: otherwise the hosted page would be an open redirect that
// lends our domain to phishing.
func ValidateReturnURL(raw string, allowedOrigins []string) (string, error) {
	bad := func(why string) (string, error) {
		return "", invalid("return_url", why)
	}
	if raw == "" || len(raw) > maxURLLen {
		return bad("is empty or too long")
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f || raw[i] == '\\' {
			return bad("has spaces, backslashes, control or non-ASCII characters")
		}
	}
	if panshape.Contains(raw) {
		// It is stored with the session and put in the page.
		return bad("must not hold a card number")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("does not parse")
	}
	scheme := strings.ToLower(u.Scheme)
	if u.Opaque != "" || u.User != nil || strings.Contains(u.Host, "@") {
		return bad("must be an absolute URL without user info")
	}
	hostOnly, host, why := normHostPort(u.Host, scheme)
	if why != "" {
		return bad(why)
	}
	switch {
	case scheme == "https":
	case scheme == "http" && loopback(hostOnly):
	default:
		return bad("must be https (http only for localhost)")
	}
	origin := scheme + "://" + host
	allowed := false
	for _, o := range allowedOrigins {
		if n, err := ValidateOrigin(o); err == nil && n == origin {
			allowed = true
			break
		}
	}
	if !allowed {
		return bad("origin is not one of the allowed origins")
	}
	u.Scheme, u.Host = scheme, host
	return u.String(), nil
}

// Option configures a store.
type Option func(*options)

type options struct {
	now      func() time.Time
	grace    time.Duration
	claimTTL time.Duration
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithGrace sets how long an expired session stays readable (DefaultGrace).
func WithGrace(d time.Duration) Option { return func(o *options) { o.grace = d } }

// WithClaimTTL sets how long an unreleased claim holds (DefaultClaimTTL).
func WithClaimTTL(d time.Duration) Option { return func(o *options) { o.claimTTL = d } }

func buildOptions(opts []Option) options {
	o := options{now: time.Now, grace: DefaultGrace, claimTTL: DefaultClaimTTL}
	for _, f := range opts {
		f(&o)
	}
	if o.grace < 0 {
		o.grace = 0
	}
	if o.claimTTL <= 0 {
		o.claimTTL = DefaultClaimTTL
	}
	return o
}

// validClaim: a claim is stored and compared, never parsed.
func validClaim(c string) bool { return validToken(c) }

// validToken: a completing token id is stored, never parsed; it only has to
// be a sane opaque label.
func validToken(t string) bool {
	if t == "" || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return false
		}
	}
	return true
}
