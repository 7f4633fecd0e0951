package apierr

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// Validator is a request body that checks its own fields.
type Validator interface{ Validate() error }

// Bind decodes a JSON request body strictly (no unknown fields, one value)
// and validates it. json.Unmarshal copies strings, so nothing keeps a
// server's reused body buffer alive past the handler. The validation error
// names a field and is shown to the caller; it never holds request data.
func Bind(body []byte, v Validator) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return BadRequest.Wrap(err)
	}
	if dec.More() {
		return BadRequest
	}
	if err := v.Validate(); err != nil {
		return &Error{Status: http.StatusBadRequest, Code: InvalidField.Code, Message: "Invalid field: " + err.Error(), Err: err}
	}
	return nil
}
