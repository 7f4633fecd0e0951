package backoffice

import (
	"errors"
	"time"

	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// What a key-service answer means for the operator. A KeyServiceError
// matches exactly one of these.
var (
	// ErrKeyServiceDown: no answer, or the key service is sealed, one of its
	// dependencies (its audit log included) is down, or it refused our
	// signature's time (clock_skew). Retry later.
	ErrKeyServiceDown = errors.New("backoffice: key service unavailable")
	// ErrKeyServiceLimited: a per-actor or per-client limit was reached.
	ErrKeyServiceLimited = errors.New("backoffice: key service limit reached")
	// ErrKeyServiceForbidden: the key service's allow-list refuses this
	// gateway the operation.
	ErrKeyServiceForbidden = errors.New("backoffice: key service refused the operation")
	// ErrUndecryptable: the stored ciphertext cannot be decrypted (its key
	// retired, or it is damaged).
	ErrUndecryptable = errors.New("backoffice: card cannot be decrypted")
	// ErrKeyServiceInvalid: the key service found a field invalid.
	ErrKeyServiceInvalid = errors.New("backoffice: key service found the request invalid")
	// ErrApprovalRefused: the key service refused the reveal's approval: no
	// or a wrong passkey assertion, a credential it has not approved, a
	// spent or foreign nonce, or an unusable browser key. Code says which;
	// the page shows it and may start the reveal again.
	ErrApprovalRefused = errors.New("backoffice: key service refused the reveal approval")
	// ErrKeyServiceRejected: anything else the key service refused
	// (signature, replay, an internal error): our side or theirs is
	// misconfigured, retrying will not help.
	ErrKeyServiceRejected = errors.New("backoffice: key service rejected the request")
)

// KeyServiceError is a key-service failure classified by its stable code.
type KeyServiceError struct {
	Kind       error  // one of the ErrKeyService* / ErrUndecryptable sentinels
	Code       string // the key service's code, "" when it did not answer
	RetryAfter time.Duration
	Err        error
}

func (e *KeyServiceError) Error() string { return e.Kind.Error() + ": " + e.Err.Error() }

// Is matches the Kind sentinel.
func (e *KeyServiceError) Is(target error) bool { return target == e.Kind }

func (e *KeyServiceError) Unwrap() error { return e.Err }

// keyServiceError classifies a key-service failure by its stable error code,
// never by HTTP status: a status is shared by many codes (400 covers both a
// bad field and a bad ciphertext), and a proxy may change it.
func keyServiceError(err error) error {
	var ke *client.Error
	if !errors.As(err, &ke) {
		if errors.Is(err, wire.ErrInvalidRequest) {
			// The client refused to sign a request the contract forbids.
			return &KeyServiceError{Kind: ErrKeyServiceInvalid, Code: apierr.InvalidField.Code, Err: err}
		}
		// Transport failure: the key service did not answer.
		return &KeyServiceError{Kind: ErrKeyServiceDown, Err: err}
	}
	return &KeyServiceError{Kind: kindOf(ke.Code), Code: ke.Code, RetryAfter: ke.RetryAfter, Err: err}
}

func kindOf(code string) error {
	switch code {
	case apierr.RateLimited.Code:
		return ErrKeyServiceLimited
	case apierr.Sealed.Code, apierr.Unavailable.Code, apierr.AuditFailed.Code,
		// Our clock and the key service's disagree: our outage, not the
		// operator's mistake (the gateway's /readyz says keyservice_clock).
		apierr.ClockSkew.Code:
		return ErrKeyServiceDown
	case apierr.Forbidden.Code:
		return ErrKeyServiceForbidden
	case apierr.CardUndecryptable.Code, apierr.UnknownKey.Code, apierr.InvalidJWE.Code,
		apierr.UnsupportedAlg.Code:
		return ErrUndecryptable
	case apierr.InvalidField.Code, apierr.PANInText.Code, apierr.BadRequest.Code, apierr.DuplicateKey.Code, apierr.TooLarge.Code:
		return ErrKeyServiceInvalid
	case apierr.PasskeyRequired.Code, apierr.PasskeyInvalid.Code, apierr.PasskeyUnknown.Code,
		apierr.RevealNonceInvalid.Code, apierr.BrowserKeyInvalid.Code:
		return ErrApprovalRefused
	}
	return ErrKeyServiceRejected
}
