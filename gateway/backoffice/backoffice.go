// Package backoffice is the back office's policy, with no HTTP in it: who
// may reveal a card and when, what an operator's search and audit view may
// cover, passkey enrolment, how the key service's answers are read (by
// their stable error code, never by HTTP status), and whether a session
// still stands for a signed-in operator. The pages in
// gateway/web/backofficehttp bind a request, call a Service method and
// render.
//
// A reveal is end-to-end encrypted: the operator's browser makes a key
// pair, the key service encrypts the card to it after checking the
// operator's passkey assertion over this very reveal, and the gateway
// relays only ciphertext (Revealed holds a JWE; nothing here can hold a
// card in clear). It takes two calls: RevealChallenge, then Reveal.
//
// Reveal checks, in this order (Service.Reveal; tested in reveal_test.go):
//
//  1. role: the operator's role may reveal (an admin may not: separation
//     of duties). Refused attempts are audited, nothing else is looked at.
//  2. scope: the token exists and belongs to a merchant the operator may
//     see; another merchant's token answers exactly like a missing one.
//  3. reason: wire.ValidateReason, the key service's own rule, so a reason
//     accepted here is never refused there.
//  4. the request's shape: the browser key (EC P-256, on the curve), the
//     nonce, the assertion's credential id (wire.RevealRequest.Validate).
//  5. fresh authentication: a password+TOTP check within ReauthWindow, one
//     supplied with this request, or (MFA mode permitting) this reveal's
//     passkey assertion checked with the gateway's copy of the credential.
//  6. lockout: a locked or disabled account reveals nothing, even with a
//     live session.
//  7. audit: the gateway records the reveal before asking for it; no
//     audit, no reveal.
//  8. the key service's signed reveal: its nonce, its own check of the
//     passkey assertion against the credential its administrator approved,
//     its per-actor limits and its own audit record. A refusal there is
//     recorded here too (reveal.denied with the key service's code).
//
// RevealChallenge runs checks 1-3, the browser key and the lockout before
// it asks the key service for a nonce. A refused check never reaches the
// key service.
package backoffice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/gateway/websession"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// ReauthWindow: a reveal needs a password+TOTP check this recent
// (issue 4: "re-login for reveal after 5" minutes).
const ReauthWindow = 5 * time.Minute

// Operators is the part of the operator service the back office uses.
type Operators interface {
	Authenticate(ctx context.Context, username, password, totpCode string, now time.Time) (operators.Operator, error)
	Reconfirm(ctx context.Context, username, password string, f operators.Factor, now time.Time) (operators.Operator, error)
	ConfirmPasskey(ctx context.Context, id string, challenge, assertion []byte, now time.Time) error
	LoginChallenge(ctx context.Context) ([]byte, error)
	LoginFactors(op operators.Operator) (totp, passkey bool)
	SecondFactorDone(op operators.Operator) bool
	AddPasskey(ctx context.Context, id string, cred passkey.Credential) (operators.Operator, error)
	Passkeys() *passkey.Verifier
	Get(ctx context.Context, id string) (operators.Operator, error)
	GetByUsername(ctx context.Context, username string) (operators.Operator, error)
	List(ctx context.Context, merchantID string) ([]operators.Operator, error)
}

var _ Operators = (*operators.Service)(nil)

// Sessions is the part of the web-session store the back office uses.
type Sessions interface {
	Get(ctx context.Context, id string, now time.Time) (websession.Session, error)
	Reauth(ctx context.Context, id string, now time.Time) (websession.Session, error)
	Delete(ctx context.Context, id string) error
}

// Tokens is the part of the token store the back office uses.
type Tokens interface {
	Get(ctx context.Context, merchantID, id string) (tokens.Token, error)
	Lookup(ctx context.Context, id string) (tokens.Token, error)
	Search(ctx context.Context, q tokens.Query) ([]tokens.Token, error)
}

// SearchIndex says whether the token store's search index covers a
// merchant's tokens ("" = every merchant's).
type SearchIndex interface {
	IndexStatus(ctx context.Context, merchantID string) (tokens.IndexStatus, error)
}

// KeyService is the part of the signed key-service client the back office
// uses. None of its answers holds a card in clear: a reveal comes back as a
// JWE to the operator's browser key.
type KeyService interface {
	RevealChallenge(ctx context.Context, req wire.RevealChallengeRequest) (wire.RevealChallengeResponse, error)
	Reveal(ctx context.Context, req wire.RevealRequest) (wire.RevealResponse, error)
	PasskeyChallenge(ctx context.Context, req wire.PasskeyChallengeRequest) (wire.PasskeyChallengeResponse, error)
	RegisterPasskey(ctx context.Context, req wire.PasskeyRegisterRequest) (wire.PasskeyRegisterResponse, error)
	ListPasskeys(ctx context.Context, req wire.PasskeyListRequest) (wire.PasskeyListResponse, error)
	AuditQuery(ctx context.Context, req wire.AuditQueryRequest) (wire.AuditQueryResponse, error)
}

// Auditor appends to the gateway's own audit log.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Deps are the Service's collaborators. Audit may be nil (no gateway audit
// log configured); KeyService may be nil (reveal and audit view then
// answer ErrKeyServiceDown); Merchants may be nil (merchants are shown by
// id).
type Deps struct {
	Operators Operators
	Sessions  Sessions
	Tokens    Tokens
	Merchants Merchants
	// Index may be nil: the search page then never says the index is
	// being built.
	Index      SearchIndex
	KeyService KeyService
	Audit      Auditor
	Log        *slog.Logger
	Now        func() time.Time
}

// Service is the back office's policy.
type Service struct{ d Deps }

// New returns a Service; a nil Log discards and a nil Now is time.Now.
func New(d Deps) *Service {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{d: d}
}

// Actor is the signed-in operator of a request, as the HTTP layer's session
// check resolved it.
type Actor struct {
	Op   operators.Operator
	Sess websession.Session
	// Origin is the client's address, for the audit trail.
	Origin string
}

// Errors the HTTP layer maps to pages.
var (
	// ErrForbidden: the operator's role may not do this.
	ErrForbidden = errors.New("backoffice: not allowed for this role")
	// ErrNotFound: no such token, or not one the operator may see.
	ErrNotFound = errors.New("backoffice: not found")
	// ErrInvalid: a form field is wrong; the *InvalidError says which.
	ErrInvalid = errors.New("backoffice: invalid input")
	// ErrReauthRequired: the session is not fresh and no password came with
	// the request.
	ErrReauthRequired = errors.New("backoffice: re-authentication required")
	// ErrReauthFailed: the password or code of a re-authentication was wrong.
	ErrReauthFailed = errors.New("backoffice: re-authentication failed")
	// ErrLocked: the account is locked (or disabled); its session was ended.
	ErrLocked = errors.New("backoffice: account locked")
	// ErrAuditFailed: the gateway's audit log refused the record, so the
	// access it would have recorded did not happen.
	ErrAuditFailed = errors.New("backoffice: audit log unavailable")
	// ErrUnavailable: a store did not answer.
	ErrUnavailable = errors.New("backoffice: dependency unavailable")
)

// InvalidError is a form field problem with the sentence the operator
// reads; it matches ErrInvalid.
type InvalidError struct {
	Field string
	Msg   string
	Err   error // the rule's own error, when there is one
}

func (e *InvalidError) Error() string { return "backoffice: invalid " + e.Field + ": " + e.Msg }

// Is makes an InvalidError match ErrInvalid, and its rule's error.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func (e *InvalidError) Unwrap() error { return e.Err }

func invalid(field, msg string) error { return &InvalidError{Field: field, Msg: msg} }

func unavailable(err error) error { return fmt.Errorf("%w: %w", ErrUnavailable, err) }

// record appends a gateway audit event. It fails closed: the caller withholds
// whatever the event records access to.
func (s *Service) record(ctx context.Context, a Actor, e audit.Event) error {
	if s.d.Audit == nil {
		return nil
	}
	if e.Origin == "" {
		e.Origin = a.Origin
	}
	if _, err := s.d.Audit.Append(ctx, e); err != nil {
		s.d.Log.Error("backoffice: gateway audit append failed", "event", e.Event, "err", err)
		return fmt.Errorf("%w: %w", ErrAuditFailed, err)
	}
	return nil
}

// recordBestEffort records an event whose request fails anyway (a refused
// reveal, a failed re-login): a broken log must not change the answer.
func (s *Service) recordBestEffort(ctx context.Context, a Actor, e audit.Event) {
	_ = s.record(ctx, a, e)
}

// Token returns token id if the operator may see it. A token of another
// merchant answers exactly like a missing one, so ids cannot be probed
// across merchants.
func (s *Service) Token(ctx context.Context, a Actor, id string) (tokens.Token, error) {
	if !tokens.ValidID(id) {
		return tokens.Token{}, ErrNotFound
	}
	var t tokens.Token
	var err error
	if a.Op.Platform() {
		t, err = s.d.Tokens.Lookup(ctx, id)
	} else {
		t, err = s.d.Tokens.Get(ctx, a.Op.MerchantID, id)
	}
	switch {
	case errors.Is(err, tokens.ErrNotFound), errors.Is(err, tokens.ErrInvalid):
		return tokens.Token{}, fmt.Errorf("%w: %w", ErrNotFound, err)
	case err != nil:
		return tokens.Token{}, unavailable(err)
	case !a.Op.MaySee(t.MerchantID):
		return tokens.Token{}, ErrNotFound
	}
	return t, nil
}
