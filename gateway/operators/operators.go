// Package operators holds the back-office operator accounts of the gateway:
// roles and what they may do, merchant scoping, argon2id password hashes,
// lockout after repeated failures and TOTP second factor (PCI DSS v4.0.1
// requirement 8). It knows nothing of HTTP; the back-office handlers call a
// *Service, which keeps its state in a Store (Redis in production, bbolt for
// the embedded demo).
package operators

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/blindgate/blindgate/internal/panshape"
)

// Sentinel errors. The HTTP layer maps them with errors.Is; none of their
// messages carries a password, a TOTP code or a secret.
var (
	ErrNotFound       = errors.New("operators: not found")
	ErrExists         = errors.New("operators: username already exists")
	ErrBadCredentials = errors.New("operators: bad credentials")
	// ErrLocked is matched by *LockedError, which says until when.
	ErrLocked       = errors.New("operators: account locked")
	ErrMFARequired  = errors.New("operators: second factor required")
	ErrWeakPassword = errors.New("operators: weak password")
	ErrDisabled     = errors.New("operators: account disabled")
	// ErrInvalid is returned for a malformed username, role, merchant id or TOTP state.
	ErrInvalid = errors.New("operators: invalid request")
)

// LockedError reports a lockout and its end. errors.Is(err, ErrLocked) holds.
type LockedError struct{ Until time.Time }

func (e *LockedError) Error() string {
	return "operators: account locked until " + e.Until.UTC().Format(time.RFC3339)
}

// Unwrap lets errors.Is(err, ErrLocked) match.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Role is what an operator may do. One operator has exactly one role.
type Role string

// Roles.
const (
	RoleViewer   Role = "viewer"   // searches tokens (masked data only)
	RoleRevealer Role = "revealer" // searches and reveals full card numbers, with a reason
	RoleAdmin    Role = "admin"    // searches, reads the audit trail, manages operators
)

// Action is a back-office capability checked with Role.Can.
type Action string

// Actions.
const (
	ActionSearch Action = "search" // token search, masked card data
	ActionReveal Action = "reveal" // full card number through the key service
	ActionAudit  Action = "audit"  // audit trail view
	ActionManage Action = "manage" // create/disable operators, change roles and passwords
)

// Roles lists the valid roles, least privileged first (for CLI help and forms).
func Roles() []Role { return []Role{RoleViewer, RoleRevealer, RoleAdmin} }

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool {
	switch r {
	case RoleViewer, RoleRevealer, RoleAdmin:
		return true
	}
	return false
}

// Can reports whether role r may perform action a.
//
// An admin may NOT reveal. Separation of duties (PCI DSS 7.2.1/7.2.2, least
// privilege): whoever manages accounts could otherwise grant or use reveal and
// also read (and vouch for) the audit trail that records it. A person who
// needs both duties gets two accounts, so the audit trail shows which hat
// was worn. An unknown role can do nothing.
func (r Role) Can(a Action) bool {
	switch r {
	case RoleViewer:
		return a == ActionSearch
	case RoleRevealer:
		return a == ActionSearch || a == ActionReveal
	case RoleAdmin:
		return a == ActionSearch || a == ActionAudit || a == ActionManage
	}
	return false
}

// ParseRole turns user input into a Role.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", fmt.Errorf("%w: role must be one of viewer, revealer, admin", ErrInvalid)
	}
	return r, nil
}

// Operator is a back-office account.
//
// FailedLogins and LockedUntil are read from the store's lockout record,
// which is kept per username (see Store); they are informational here.
// PasswordHash and TOTPSecret are secrets: never render or log an Operator
// as a whole.
type Operator struct {
	ID       string // "op_" + 128-bit random
	Username string // normalised: lower case
	Role     Role
	// MerchantID scopes the operator to one merchant; "" is a platform
	// operator who sees all merchants.
	MerchantID   string
	PasswordHash string // PHC string, $argon2id$v=19$m=...,t=...,p=...$salt$hash
	TOTPSecret   string // base32, confirmed secret
	TOTPEnabled  bool
	// TOTPPending is a secret being enrolled; it replaces TOTPSecret only when
	// a code from it is confirmed, so a half-done enrolment never locks anyone out.
	TOTPPending string
	// TOTPLastStep is the last TOTP time step accepted; codes of this step or
	// earlier are refused (RFC 6238 section 5.2, no reuse).
	TOTPLastStep int64
	// Passkeys are the operator's enrolled passkeys, a login second factor
	// (MFA mode permitting) and the reveal page's re-authentication.
	Passkeys     []Passkey
	FailedLogins int
	LockedUntil  time.Time
	CreatedAt    time.Time
	Disabled     bool
}

// String names the operator without any secret, so an accidental %v is safe.
func (o Operator) String() string {
	return fmt.Sprintf("operator(%s %s role=%s merchant=%q)", o.ID, o.Username, o.Role, o.MerchantID)
}

// GoString keeps %#v from printing the hash and TOTP secret.
func (o Operator) GoString() string { return o.String() }

// Platform reports whether the operator works across all merchants.
func (o Operator) Platform() bool { return o.MerchantID == "" }

// MaySee reports whether o may see data of merchantID. A platform operator
// sees every merchant; a merchant operator only its own. Data with no
// merchant ("") is platform data, visible to platform operators only. A
// disabled operator sees nothing.
func (o Operator) MaySee(merchantID string) bool {
	if o.Disabled {
		return false
	}
	if o.MerchantID == "" {
		return true
	}
	return merchantID != "" && merchantID == o.MerchantID
}

// MayManage reports whether o may change target's account: o must be an
// admin whose scope covers target's merchant, so a merchant admin can never
// touch (or create) a platform operator or another merchant's operator.
func (o Operator) MayManage(target Operator) bool {
	return o.Role.Can(ActionManage) && o.MaySee(target.MerchantID)
}

// Locked reports whether the operator is locked out at now.
func (o Operator) Locked(now time.Time) bool { return now.Before(o.LockedUntil) }

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns prefix + 128 random bits, lower-case base32.
func newID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return prefix + strings.ToLower(idEncoding.EncodeToString(b))
}

// NormalizeUsername lower-cases and trims a username and checks it: 1-64
// characters of a-z 0-9 . _ @ -. Lower-casing makes "Alice" and "alice" one
// account (and one lockout counter).
func NormalizeUsername(s string) (string, error) {
	u := strings.ToLower(strings.TrimSpace(s))
	if u == "" || len(u) > 64 {
		return "", fmt.Errorf("%w: username must be 1-64 characters", ErrInvalid)
	}
	for _, c := range u {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '_', c == '@', c == '-':
		default:
			return "", fmt.Errorf("%w: username may only hold a-z 0-9 . _ @ -", ErrInvalid)
		}
	}
	if panshape.Contains(u) {
		// It would be stored and audited as a name.
		return "", fmt.Errorf("%w: username must not look like a card number", ErrInvalid)
	}
	return u, nil
}

// validMerchantID accepts "" (platform) or an "m_" id of letters, digits and _.
func validMerchantID(s string) bool {
	if s == "" {
		return true
	}
	if !strings.HasPrefix(s, "m_") || len(s) < 3 || len(s) > 64 {
		return false
	}
	for _, c := range s[2:] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
