package apierr

import "testing"

func TestCodesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range []*Error{BadRequest, InvalidJWE, UnsupportedAlg, UnknownKey, SessionMismatch, InvalidField, TooLarge, UnsealFailed, NotFound, MethodNotAllowed, Unauthenticated, Forbidden, Replay, CardUndecryptable, CardInvalid, CardExpired, CardUnsupported, CardStale, RateLimited, SessionNotFound, SessionExpired, SessionCompleted, TooManyAttempts, KeyServiceDown, OriginNotAllowed, LoginRequired, CSRFFailed, ReauthRequired, Internal, Sealed, Unavailable, AuditFailed} {
		if seen[e.Code] {
			t.Errorf("code %q used twice", e.Code)
		}
		seen[e.Code] = true
	}
}
