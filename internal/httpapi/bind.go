package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/jsonscan"
)

// Validator is a request body that checks its own fields.
type Validator interface{ Validate() error }

// PublicReasoner is a validation error whose text is written for the caller
// where the rule is defined: the field and the rule it breaks, never the
// value and never an internal cause. A domain package's field error
// implements it; InvalidField shows PublicReason and nothing else of the
// error, so a wrapped cause cannot reach the answer.
type PublicReasoner interface {
	error
	PublicReason() string
}

// FieldError is the PublicReasoner of a handler's own request checks.
type FieldError struct {
	Field  string
	Reason string // the rule, e.g. "is required"
}

func (e *FieldError) Error() string        { return "invalid field: " + e.PublicReason() }
func (e *FieldError) PublicReason() string { return e.Field + " " + e.Reason }

// InvalidField is the invalid_field answer for err: its public reason if
// it has one, else the code's generic message. err.Error() is never shown.
func InvalidField(err error) *apierr.Error {
	var pr PublicReasoner
	if errors.As(err, &pr) {
		if r := pr.PublicReason(); r != "" {
			return &apierr.Error{Status: apierr.InvalidField.Status, Code: apierr.InvalidField.Code, Message: "Invalid field: " + r, Err: err}
		}
	}
	return apierr.InvalidField.Wrap(err)
}

// Bind decodes a JSON request body strictly (no unknown fields, one value)
// and validates it. json.Unmarshal copies strings, so nothing keeps a
// server's reused body buffer alive past the handler. Of a validation error
// only its PublicReason is shown (see InvalidField).
func Bind(body []byte, v Validator) error {
	// A body our own clients send is read in one pass; jsonscan.Decode
	// takes only what the reading below would bind the same way.
	if jsonscan.Decode(body, v) {
		if err := v.Validate(); err != nil {
			return InvalidField(err)
		}
		return nil
	}
	// encoding/json keeps the last of two equal keys, other parsers the
	// first: a signed or checked body must have one reading only.
	if err := noDuplicateKeys(body); err != nil {
		if errors.Is(err, errDuplicateKey) {
			return apierr.DuplicateKey.Wrap(err)
		}
		return apierr.BadRequest.Wrap(err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apierr.BadRequest.Wrap(err)
	}
	if dec.More() {
		return apierr.BadRequest
	}
	if err := v.Validate(); err != nil {
		return InvalidField(err)
	}
	return nil
}

var errDuplicateKey = errors.New("httpapi: duplicate JSON key")

// foldName maps each rune of name to the smallest rune of its Unicode
// simple-folding orbit, so two names fold alike exactly when
// strings.EqualFold says they are equal: the rule by which encoding/json
// binds a member to a field ("ſ" binds as "s", "K" as "k",
// which lower-casing does not see).
func foldName(name string) string {
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		// An ASCII letter's least fold is its upper case.
		return strings.ToUpper(name)
	}
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}
