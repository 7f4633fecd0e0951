package wire

import "time"

// Audit outcomes as the audit query filters and returns them. They are the
// key service's audit vocabulary on the wire; a test in keyservice/api
// proves they equal internal/audit's, which this package may not import.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// AuditEvent is one audit record as POST /v1/audit/query returns it. It is
// its own type, not the log's record: the key service converts at its edge,
// so a field added to the log does not reach the wire by accident, and the
// gateway does not depend on the log's package.
type AuditEvent struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Event    string    `json:"event"`
	Client   string    `json:"client,omitempty"`
	Actor    string    `json:"actor,omitempty"`
	Origin   string    `json:"origin,omitempty"`
	Outcome  string    `json:"outcome"`
	Resource string    `json:"resource,omitempty"`
	Kid      string    `json:"kid,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Code     string    `json:"code,omitempty"`
	// Credential is the passkey (base64url id) a reveal or passkey event names.
	Credential string `json:"credential,omitempty"`
	Prev       string `json:"prev"` // chain hash of the previous record
	Hash       string `json:"hash"` // chain hash of this record
}
