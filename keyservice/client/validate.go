package client

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/panshape"
)

// ErrInvalidRequest: a request fails its Validate. The message names the
// field, never its value.
var ErrInvalidRequest = errors.New("keyservice client: invalid request")

// ErrPANInText: a reason holds what looks like a card number, which the
// audit trail would keep forever. It matches ErrInvalidRequest too.
var ErrPANInText = fmt.Errorf("%w: reason looks like a card number", ErrInvalidRequest)

// Field limits shared by the client (fail before sending) and the key
// service (bind then Validate).
const (
	MaxIDLen     = 128 // session, actor, token
	MinReasonLen = 4   // characters
	MaxReasonLen = 500 // characters
	MaxAuditPage = 1000
)

func invalid(field string) error { return fmt.Errorf("%w: %s", ErrInvalidRequest, field) }

func checkJWE(s string) error {
	if s == "" || len(s) > jose.MaxCompactSize {
		return invalid("jwe")
	}
	return nil
}

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
	if err := checkJWE(r.JWE); err != nil {
		return err
	}
	if r.CVCJWE != "" {
		if err := checkJWE(r.CVCJWE); err != nil {
			return invalid("cvc_jwe")
		}
	}
	if err := checkMerchant(r.Merchant); err != nil {
		return err
	}
	return checkID("session", r.Session, true)
}

// Validate checks the shape of a reveal request: a named actor and a
// reason of MinReasonLen to MaxReasonLen characters are required.
func (r RevealRequest) Validate() error {
	if err := checkJWE(r.JWE); err != nil {
		return err
	}
	if err := checkID("actor", r.Actor, true); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(r.Reason); !utf8.ValidString(r.Reason) || n < MinReasonLen || n > MaxReasonLen {
		return invalid("reason")
	}
	for _, c := range r.Reason {
		if c < 0x20 || c == 0x7f {
			return invalid("reason")
		}
	}
	if panshape.Contains(r.Reason) {
		return ErrPANInText
	}
	return checkID("token", r.Token, false)
}

// Validate checks the shape of a rewrap request.
func (r RewrapRequest) Validate() error {
	if err := checkJWE(r.JWE); err != nil {
		return err
	}
	if err := checkMerchant(r.Merchant); err != nil {
		return err
	}
	return checkID("token", r.Token, false)
}

// Validate checks an audit query: known outcome, limit within a page.
func (r AuditQueryRequest) Validate() error {
	switch r.Outcome {
	case "", audit.OutcomeSuccess, audit.OutcomeFailure, audit.OutcomeDenied:
	default:
		return invalid("outcome")
	}
	if r.Limit < 0 || r.Limit > MaxAuditPage {
		return invalid("limit")
	}
	if err := checkID("actor", r.Actor, false); err != nil {
		return err
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
			return invalid("key (a reset carries no share)")
		}
		if r.Nonce == "" {
			return invalid("nonce (a reset needs the round's nonce)")
		}
		return nil
	}
	if r.Key == "" || len(r.Key) > 256 {
		return invalid("key")
	}
	return nil
}
