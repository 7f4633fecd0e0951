package wire

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/blindgate/blindgate/internal/jose/compact"
	"github.com/blindgate/blindgate/internal/panshape"
)

// ErrInvalidRequest: a request fails its Validate. Every such error is a
// *FieldError, which names the field, never its value.
var ErrInvalidRequest = errors.New("keyservice: invalid request")

// FieldError is a request field that breaks its rule: the field and the
// rule in words written here, beside the rule, for the caller
// (PublicReason). It never holds the value; a cause it wraps (a
// ciphertext's shape error) is for errors.Is and the logs, never for the
// answer. It matches ErrInvalidRequest.
type FieldError struct {
	Field  string
	Reason string // the rule; may be empty
	Err    error  // an internal cause; may be nil
}

func (e *FieldError) Error() string {
	s := "keyservice: invalid request: " + e.PublicReason()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FieldError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidRequest, e.Err}
	}
	return []error{ErrInvalidRequest}
}

// PublicReason is the field and the rule it breaks.
func (e *FieldError) PublicReason() string {
	if e.Reason == "" {
		return e.Field
	}
	return e.Field + " " + e.Reason
}

// ErrPANInText: a reason holds what looks like a card number, which the
// audit trail would keep forever. It matches ErrInvalidRequest too.
var ErrPANInText error = &FieldError{Field: "reason", Reason: "looks like a card number"}

// The ways a reveal reason fails ValidateReason besides ErrPANInText, so a
// form can say which; both match ErrInvalidRequest.
var (
	ErrReasonLength     error = &FieldError{Field: "reason", Reason: fmt.Sprintf("must be %d to %d characters", MinReasonLen, MaxReasonLen)}
	ErrReasonCharacters error = &FieldError{Field: "reason", Reason: "has invalid UTF-8 or control characters"}
)

// Field limits shared by the client (fail before sending) and the key
// service (bind then Validate).
const (
	MaxIDLen = 128 // session, actor, token
	// MinReasonLen and MaxReasonLen bound a reveal reason in characters
	// (Unicode code points, not bytes): an operator's 300 accented letters
	// are 300, on every side.
	MinReasonLen = 4
	MaxReasonLen = 500
	MaxAuditPage = 1000
	// MaxAuditActors bounds an audit query's actor set (a merchant's
	// operators); it keeps the signed body well under the key service's
	// body limit.
	MaxAuditActors = 500
)

func invalid(field string) error { return &FieldError{Field: field} }

// checkJWE applies the one ciphertext shape rule (compact.CheckJWE). A
// missing or oversized value is a field error; a malformed one also wraps
// compact.ErrMalformed, so the key service answers invalid_jwe for it as its
// strict parse would.
func checkJWE(field, s string) error {
	err := compact.CheckJWE(s)
	switch {
	case err == nil:
		return nil
	case s == "" || errors.Is(err, compact.ErrTooLarge):
		return invalid(field)
	default:
		return &FieldError{Field: field, Reason: "is not a compact JWE", Err: err}
	}
}

// ValidateReason is the rule for a reveal reason, applied by the gateway's
// back office (to tell the operator), the client (before signing) and the
// key service (bind, then the domain): valid UTF-8, MinReasonLen to
// MaxReasonLen characters, no control characters, and nothing shaped like
// a card number (ErrPANInText), which the audit trail would keep forever.
// The error names the rule, never the reason.
func ValidateReason(reason string) error {
	if !utf8.ValidString(reason) {
		return ErrReasonCharacters
	}
	if n := utf8.RuneCountInString(reason); n < MinReasonLen || n > MaxReasonLen {
		return ErrReasonLength
	}
	for _, c := range reason {
		if c < 0x20 || c == 0x7f {
			return ErrReasonCharacters
		}
	}
	if panshape.Contains(reason) {
		return ErrPANInText
	}
	return nil
}

// ValidateID is the rule for an actor, session or token id: 1 to MaxIDLen
// printable ASCII characters, no spaces or quotes.
func ValidateID(field, s string) error { return checkID(field, s, true) }

// checkID accepts printable ASCII without spaces or quotes: these values
// end up in audit lines and logs.
func checkID(field, s string, required bool) error {
	if s == "" {
		if required {
			return invalid(field)
		}
		return nil
	}
	if len(s) > MaxIDLen {
		return invalid(field)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return invalid(field)
		}
	}
	return nil
}

// MaxMerchantLen bounds a merchant id; it matches the gateway's key-safe ids.
const MaxMerchantLen = 64

// checkMerchant accepts the gateway's merchant ids: 1-64 of [A-Za-z0-9_-].
// The id keys fingerprints and the enumeration guard, so a value that could
// be written two ways (spaces, case folding by a proxy) is refused.
func checkMerchant(s string) error {
	if s == "" || len(s) > MaxMerchantLen {
		return invalid("merchant")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return invalid("merchant")
		}
	}
	return nil
}

// Validate checks the shape of an inspect request.
func (r InspectRequest) Validate() error {
	if err := checkJWE("jwe", r.JWE); err != nil {
		return err
	}
	if r.CVCJWE != "" {
		if err := checkJWE("cvc_jwe", r.CVCJWE); err != nil {
			return err
		}
	}
	if err := checkMerchant(r.Merchant); err != nil {
		return err
	}
	return checkID("session", r.Session, true)
}

// Validate checks the shape of a rewrap request.
func (r RewrapRequest) Validate() error {
	if err := checkJWE("jwe", r.JWE); err != nil {
		return err
	}
	if err := checkMerchant(r.Merchant); err != nil {
		return err
	}
	if err := checkBinding(r.Binding, false); err != nil {
		return err
	}
	return checkID("token", r.Token, false)
}

// Validate checks an audit query: known outcome, limit within a page,
// printable ids, a bounded actor set.
func (r AuditQueryRequest) Validate() error {
	switch r.Outcome {
	case "", OutcomeSuccess, OutcomeFailure, OutcomeDenied:
	default:
		return invalid("outcome")
	}
	if r.Limit < 0 || r.Limit > MaxAuditPage {
		return invalid("limit")
	}
	if err := checkID("actor", r.Actor, false); err != nil {
		return err
	}
	if len(r.Actors) > MaxAuditActors {
		return invalid("actors")
	}
	for _, a := range r.Actors {
		if err := checkID("actors", a, true); err != nil {
			return err
		}
	}
	return checkID("event", r.Event, false)
}

// MaxNonceLen bounds an unseal nonce (the key service makes 32 hex digits).
const MaxNonceLen = 64

// Validate checks an unseal request's shape: a share, or a reset with the
// round's nonce. The share itself is checked by the key service.
func (r *UnsealRequest) Validate() error {
	if len(r.Nonce) > MaxNonceLen {
		return invalid("nonce")
	}
	if r.Nonce != "" {
		if err := checkID("nonce", r.Nonce, true); err != nil {
			return err
		}
	}
	if r.Reset {
		if r.Key != "" {
			return &FieldError{Field: "key", Reason: "must be empty in a reset"}
		}
		if r.Nonce == "" {
			return &FieldError{Field: "nonce", Reason: "is required in a reset (the round's nonce)"}
		}
		return nil
	}
	if r.Key == "" || len(r.Key) > 256 {
		return invalid("key")
	}
	return nil
}

// ValidateMerchant applies the merchant id rule of every request, for other
// lists that name merchants (forward destinations).
func ValidateMerchant(s string) error { return checkMerchant(s) }

// BindingPrefix starts every merchant binding, and BindingLen is a binding's
// length: the prefix and 16 bytes in unpadded base64url. The key service
// computes them (keyservice/keyring); everyone else only carries them.
const (
	BindingPrefix = "bnd_"
	BindingLen    = len(BindingPrefix) + 22
)

// checkBinding accepts the shape of a merchant binding; whether it is the
// right one only the key service can tell.
func checkBinding(s string, required bool) error {
	if s == "" && !required {
		return nil
	}
	if len(s) != BindingLen || s[:len(BindingPrefix)] != BindingPrefix {
		return invalid("binding")
	}
	for i := len(BindingPrefix); i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return invalid("binding")
		}
	}
	return nil
}
