// Package wire is the key service's wire contract (Contracts 2 and 3 in
// docs/contracts.md), imported by the key service and by its clients alike:
// the operations a client may be granted and the endpoint paths, the claims
// and body hash of a signed request, the request and response types with
// their validation, the error body, the audit event as the audit query
// returns it, and the card brands the two sides name.
//
// One home per rule: a limit or a shape check that both sides apply (the
// reveal reason, a ciphertext's shape) is defined here, or in
// internal/jose/compact for the JOSE shape itself, and imported, so the
// gateway can never accept what the key service refuses.
//
// It must stay free of card code and of internal/audit: the gateway imports
// it, and the gateway's package graph may never reach keyservice/card or
// keyservice/keyring (gateway/imports_test.go checks both). Types that carry
// a ciphertext, a card number or a key share print themselves redacted
// (String, GoString, LogValue) so that a stray log line or %v cannot leak
// them; their JSON form is the wire form.
package wire
