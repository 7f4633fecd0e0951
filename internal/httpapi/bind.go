package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/blindgate/blindgate/internal/apierr"
)

// Validator is a request body that checks its own fields.
type Validator interface{ Validate() error }

// Bind decodes a JSON request body strictly (no unknown fields, one value)
// and validates it. json.Unmarshal copies strings, so nothing keeps a
// server's reused body buffer alive past the handler. The validation error
// names a field and is shown to the caller; it never holds request data.
func Bind(body []byte, v Validator) error {
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
		return &apierr.Error{Status: http.StatusBadRequest, Code: apierr.InvalidField.Code, Message: "Invalid field: " + err.Error(), Err: err}
	}
	return nil
}

var errDuplicateKey = errors.New("httpapi: duplicate JSON key")

// maxDepth bounds nesting, as encoding/json does (10000); a body this deep
// is no request of ours.
const maxDepth = 10000

// noDuplicateKeys walks the first JSON value of body and refuses an object,
// at any depth, that names a key twice (ignoring case). The key is not in the error: it is
// request data.
func noDuplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		keys    map[string]struct{} // nil for an array
		keyNext bool                // in an object, the next token is a key
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("httpapi: read JSON: %w", err)
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil && stack[n-1].keyNext {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
			} else {
				// Folded: encoding/json binds "JWE" and "jwe" to one field.
				k, _ := tok.(string)
				k = strings.ToLower(k)
				if _, dup := stack[n-1].keys[k]; dup {
					return errDuplicateKey
				}
				stack[n-1].keys[k] = struct{}{}
				stack[n-1].keyNext = false
				continue
			}
		} else {
			switch tok {
			case json.Delim('{'):
				stack = append(stack, frame{keys: map[string]struct{}{}, keyNext: true})
				if len(stack) > maxDepth {
					return errors.New("httpapi: JSON nested too deep")
				}
				continue
			case json.Delim('['):
				stack = append(stack, frame{})
				if len(stack) > maxDepth {
					return errors.New("httpapi: JSON nested too deep")
				}
				continue
			case json.Delim(']'):
				stack = stack[:len(stack)-1]
			}
		}
		// A value (or a closed container) completed: the enclosing object
		// expects a key next.
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].keyNext = true
		}
		if len(stack) == 0 {
			return nil
		}
	}
}
