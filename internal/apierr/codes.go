package apierr

import "net/http"

// The error codes of both services. A code is a contract with clients: it is
// never renamed or reused for another meaning. Add new ones at the end of a group,
// and give each a row in docs/contracts.md (docs/contracts_test.go checks).
var (
	// 400: the request itself is wrong.
	BadRequest       = New(http.StatusBadRequest, "bad_request", "The request could not be read.")
	InvalidJWE       = New(http.StatusBadRequest, "invalid_jwe", "The ciphertext is not an acceptable compact JWE.")
	UnsupportedAlg   = New(http.StatusBadRequest, "unsupported_algorithm", "The ciphertext uses an algorithm that is not accepted.")
	UnknownKey       = New(http.StatusBadRequest, "key_unknown", "The ciphertext names a key that is unknown or retired; reload the page.")
	SessionMismatch  = New(http.StatusBadRequest, "session_mismatch", "The ciphertext was made for another checkout session.")
	InvalidField     = New(http.StatusBadRequest, "invalid_field", "A field is missing or invalid.")
	TooLarge         = New(http.StatusRequestEntityTooLarge, "too_large", "The request body is too large.")
	UnsealFailed     = New(http.StatusBadRequest, "unseal_failed", "The key share does not unseal the keyring.")
	NotFound         = New(http.StatusNotFound, "not_found", "Not found.")
	MethodNotAllowed = New(http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed.")
	// PANInText: a card number typed into a free-text field would end up in
	// a log or a store outside any ciphertext; such text is refused.
	PANInText = New(http.StatusBadRequest, "pan_in_text", "A text field looks like a card number; never type a card number outside the card form.")
	// DuplicateKey: two decoders could read the same object differently.
	DuplicateKey = New(http.StatusBadRequest, "duplicate_key", "A JSON object repeats a key.")
	// TemplateInvalid: a forward template the key service cannot fill safely
	// (unknown placeholder, a placeholder where it cannot be escaped, a
	// header the destination does not allow, a path that leaves its prefix).
	TemplateInvalid = New(http.StatusBadRequest, "template_invalid", "The forward template is not valid for this destination.")
	// BrowserKeyInvalid: the reveal's browser key is not a public EC P-256
	// key on the curve; nothing was decrypted.
	BrowserKeyInvalid = New(http.StatusBadRequest, "browser_key_invalid", "The browser's key for this reveal is not valid; reload the page.")

	// 401/403: who is asking, and may they.
	Unauthenticated = New(http.StatusUnauthorized, "unauthenticated", "The request is not signed or the signature is not valid.")
	Forbidden       = New(http.StatusForbidden, "forbidden", "The caller may not perform this operation.")
	// ClockSkew: a valid signature whose iat/exp fall outside the key
	// service's clock window. Only a holder of a client key can get it (the
	// signature is checked first); it tells the caller to fix its clock
	// rather than its key.
	ClockSkew = New(http.StatusUnauthorized, "clock_skew", "The request's signing time is outside the key service's clock window; check both hosts' clocks (NTP).")
	// DestinationNotAllowed: one answer for an unknown destination and one
	// the merchant may not use, so destinations cannot be enumerated.
	DestinationNotAllowed = New(http.StatusForbidden, "destination_not_allowed", "The destination is unknown or not allowed for this merchant.")
	// CardNotBound: the stored card was not bound to the merchant named (no
	// merchant binding, or one issued for another merchant or ciphertext).
	// Nothing was decrypted.
	CardNotBound = New(http.StatusForbidden, "card_not_bound", "The card is not bound to this merchant; nothing was decrypted.")
	// The reveal's passkey approval, checked by the key service before it
	// decrypts (nothing was decrypted in each case). PasskeyRequired: no
	// assertion where one is required, or the operator has no approved
	// passkey. PasskeyInvalid: the assertion does not verify for this
	// reveal (another token, reason, browser key or nonce; signature,
	// origin, RP id, user verification, counter, another operator's
	// credential). PasskeyUnknown: the credential is not registered, or is
	// pending or revoked. RevealNonceInvalid: the nonce is unknown,
	// expired, already used, or issued for another operator, token or client.
	PasskeyRequired    = New(http.StatusForbidden, "passkey_required", "This reveal needs approval with an approved passkey; nothing was decrypted.")
	PasskeyInvalid     = New(http.StatusForbidden, "passkey_invalid", "The passkey approval does not match this reveal; nothing was decrypted.")
	PasskeyUnknown     = New(http.StatusForbidden, "passkey_unknown", "This passkey is not approved for reveals (unknown, awaiting approval or revoked); nothing was decrypted.")
	RevealNonceInvalid = New(http.StatusForbidden, "reveal_nonce_invalid", "The reveal challenge is unknown, expired or already used; start the reveal again.")

	// 409: replay, and requests that conflict with the current state.
	Replay              = New(http.StatusConflict, "replay", "This signed request was already used.")
	AlreadyUnsealed     = New(http.StatusConflict, "already_unsealed", "The key service is already unsealed; the share was not used.")
	UnsealNonceMismatch = New(http.StatusConflict, "unseal_nonce_mismatch", "The nonce does not match the unseal round in progress; read /v1/sys/seal-status.")
	// IdempotencyInProgress: a forward with this Idempotency-Key is still
	// running; retry later with the same key to get its answer.
	IdempotencyInProgress = New(http.StatusConflict, "idempotency_in_progress", "A request with this Idempotency-Key is in progress; retry with the same key later.")

	// 410/422: the card or the session.
	CardUndecryptable = New(http.StatusUnprocessableEntity, "card_undecryptable", "The ciphertext could not be decrypted.")
	CardInvalid       = New(http.StatusUnprocessableEntity, "card_invalid", "The card number is not valid.")
	CardExpired       = New(http.StatusUnprocessableEntity, "card_expired", "The card has expired.")
	CardUnsupported   = New(http.StatusUnprocessableEntity, "card_brand_unsupported", "The card brand is not accepted.")
	CardStale         = New(http.StatusUnprocessableEntity, "stale_ciphertext", "The ciphertext is too old; re-enter the card.")
	CVCInvalid        = New(http.StatusUnprocessableEntity, "cvc_invalid", "The security code was not accepted; re-enter it.")
	// CVCUnavailable: the template needs {{card.cvc}} and the CVC is gone
	// (never collected, used once already, or past its lifetime).
	CVCUnavailable = New(http.StatusUnprocessableEntity, "cvc_unavailable", "The template needs the security code, which is no longer available; remove {{card.cvc}} or collect the card again.")
	// IdempotencyMismatch: the key was used for a different request.
	IdempotencyMismatch = New(http.StatusUnprocessableEntity, "idempotency_mismatch", "This Idempotency-Key was used for a different request.")

	// 429: limits.
	RateLimited = New(http.StatusTooManyRequests, "rate_limited", "Too many requests; retry later.")
	// CardEnumeration: too many different cards sharing one merchant, first 6
	// and last 4 within the guard's window (docs/enumeration-guard.md).
	CardEnumeration = New(http.StatusTooManyRequests, "card_enumeration", "Too many different cards like this one were submitted; retry later.")

	// Gateway: checkout sessions and merchant API.
	SessionNotFound  = New(http.StatusNotFound, "session_not_found", "This checkout session does not exist.")
	SessionExpired   = New(http.StatusGone, "session_expired", "This checkout session has expired; start again from the shop.")
	SessionCompleted = New(http.StatusConflict, "session_completed", "This checkout session is already complete.")
	TooManyAttempts  = New(http.StatusTooManyRequests, "too_many_attempts", "Too many attempts for this checkout session.")
	KeyServiceDown   = New(http.StatusServiceUnavailable, "keyservice_unavailable", "Card processing is unavailable; retry later.")
	OriginNotAllowed = New(http.StatusBadRequest, "origin_not_allowed", "An origin or return URL is not among the merchant's allowed origins.")
	LoginRequired    = New(http.StatusUnauthorized, "login_required", "Log in to continue.")
	CSRFFailed       = New(http.StatusForbidden, "csrf_failed", "The form is stale or was not sent by this site; reload and retry.")
	ReauthRequired   = New(http.StatusUnauthorized, "reauth_required", "Confirm your password and code to reveal a card.")
	SessionBusy      = New(http.StatusConflict, "session_busy", "A payment for this checkout session is in progress; retry in a moment.")

	// 5xx: our side.
	Internal    = New(http.StatusInternalServerError, "internal", "Internal error.")
	Sealed      = New(http.StatusServiceUnavailable, "sealed", "The key service is sealed.")
	Unavailable = New(http.StatusServiceUnavailable, "unavailable", "A dependency is unavailable; retry later.")
	AuditFailed = New(http.StatusServiceUnavailable, "audit_unavailable", "The audit log cannot be written; nothing was decrypted.")
	// The forward's destination. Refused and unreachable: nothing was sent,
	// a retry may succeed. Outcome unknown: the request may have reached the
	// processor; it is never sent again under the same Idempotency-Key.
	DestinationRefused        = New(http.StatusBadGateway, "destination_refused", "The destination resolves to an address it may not use; nothing was sent.")
	DestinationUnreachable    = New(http.StatusBadGateway, "destination_unreachable", "The destination could not be reached; nothing was sent. Retry later.")
	DestinationOutcomeUnknown = New(http.StatusGatewayTimeout, "destination_outcome_unknown", "The request may have reached the destination but no full answer came back; it is not sent again under this Idempotency-Key. Check with the processor.")
)
