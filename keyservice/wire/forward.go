package wire

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/blindgate/blindgate/internal/panshape"
)

// Body content types a forward template may have.
const (
	ContentTypeJSON = "application/json"
	ContentTypeForm = "application/x-www-form-urlencoded"
)

// Forward limits. The body of a template is the processor's request, a few
// KiB in practice; the cap keeps a signed request well below the key
// service's 64 KiB body limit with the ciphertexts beside it.
const (
	MaxTemplateBody    = 32 << 10
	MaxTemplateHeaders = 32
	MaxHeaderValueLen  = 4096
	MaxTemplatePathLen = 256
)

// ForwardTemplate is the merchant's request to its processor, with card
// placeholders ({{card.number}}, {{card.exp_month}}, {{card.exp_year}},
// {{card.name}}, {{card.cvc}}) in the body only. Its full grammar and the
// escaping rules are keyservice/forward's (Parse); Validate here checks only
// sizes and shapes, so the gateway can refuse early without card code.
type ForwardTemplate struct {
	// Path is appended to the destination's fixed path prefix; optional.
	Path        string            `json:"path,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Body        string            `json:"body"`
	ContentType string            `json:"content_type"`
}

// PlaceholderCVC is the CVC's placeholder. The grammar has no spelling of it
// but this one ("{{" always opens a placeholder, no spaces), so its presence
// in the body is exactly whether a template needs the CVC.
const PlaceholderCVC = "{{card.cvc}}"

// NeedsCVC reports whether the template uses the CVC: the gateway takes the
// single-use CVC ciphertext out of its store only for such a template.
func (t ForwardTemplate) NeedsCVC() bool { return strings.Contains(t.Body, PlaceholderCVC) }

// ForwardRequest asks the key service to fill Template with the card in
// JWE and send it to Destination (or re-encrypt it, for a destination that
// is a processor's public key). IdempotencyKey is the merchant's: a retry
// with the same key and the same request gets the stored answer and sends
// nothing; the same key with another request is refused.
type ForwardRequest struct {
	JWE            string          `json:"jwe"`
	Merchant       string          `json:"merchant"`
	Token          string          `json:"token"`
	Destination    string          `json:"destination"`
	IdempotencyKey string          `json:"idempotency_key"`
	Template       ForwardTemplate `json:"template"`
	CVCJWE         string          `json:"cvc_jwe,omitempty"`
	// Binding is the merchant binding the key service issued for (Merchant,
	// JWE) at inspect or rewrap: without it the key service cannot tell
	// whose card JWE is, and refuses (card_not_bound).
	Binding string `json:"binding"`
}

// ForwardResponse is the destination's answer with its allowed headers
// and a body in which every card number (anything PAN-shaped) is masked; or,
// for a processor-key destination, only JWE: the filled body encrypted to
// the processor's key.
type ForwardResponse struct {
	Status  int               `json:"status,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	JWE     string            `json:"jwe,omitempty"`
	// Replayed says the answer is the stored one of an earlier request
	// with the same idempotency key: nothing was sent this time.
	Replayed bool `json:"replayed,omitempty"`
}

// Validate checks the request's fields. It never quotes a field's value:
// a template or key could hold anything.
func (r ForwardRequest) Validate() error {
	if err := checkJWE("jwe", r.JWE); err != nil {
		return err
	}
	if r.CVCJWE != "" {
		if err := checkJWE("cvc_jwe", r.CVCJWE); err != nil {
			return err
		}
	}
	if err := checkMerchant(r.Merchant); err != nil {
		return err
	}
	if err := checkID("token", r.Token, true); err != nil {
		return err
	}
	if err := checkBinding(r.Binding, true); err != nil {
		return err
	}
	if err := checkID("destination", r.Destination, true); err != nil {
		return err
	}
	if err := checkID("idempotency_key", r.IdempotencyKey, true); err != nil {
		return err
	}
	// The key lands in the audit trail and the idempotency store.
	if panshape.Contains(r.IdempotencyKey) {
		return fmt.Errorf("%w: idempotency_key looks like a card number", ErrInvalidRequest)
	}
	return r.Template.Validate()
}

// Validate checks the template's sizes and the characters of its path and
// headers (no CR, LF or other control character anywhere in a header).
func (t ForwardTemplate) Validate() error {
	switch t.ContentType {
	case ContentTypeJSON, ContentTypeForm:
	default:
		return invalid("template.content_type")
	}
	if t.Body == "" || len(t.Body) > MaxTemplateBody {
		return invalid("template.body")
	}
	if len(t.Path) > MaxTemplatePathLen {
		return invalid("template.path")
	}
	for i := 0; i < len(t.Path); i++ {
		if c := t.Path[i]; c <= 0x20 || c >= 0x7f {
			return invalid("template.path")
		}
	}
	if len(t.Headers) > MaxTemplateHeaders {
		return invalid("template.headers")
	}
	for name, v := range t.Headers {
		if name == "" || len(name) > 64 || len(v) > MaxHeaderValueLen {
			return invalid("template.headers")
		}
		for i := 0; i < len(name); i++ {
			if !headerNameChar(name[i]) {
				return invalid("template.headers")
			}
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return invalid("template.headers")
			}
		}
	}
	return nil
}

// headerNameChar is RFC 9110's tchar.
func headerNameChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func (r ForwardRequest) String() string {
	return fmt.Sprintf("ForwardRequest{jwe:%s merchant:%s token:%s destination:%s idempotency_key:%s template:%s cvc_jwe:%s binding:%s}",
		redactedLen(r.JWE), r.Merchant, r.Token, r.Destination, r.IdempotencyKey, r.Template, redactedLen(r.CVCJWE), redactedLen(r.Binding))
}
func (r ForwardRequest) GoString() string { return r.String() }
func (r ForwardRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("jwe", redactedLen(r.JWE)), slog.String("merchant", r.Merchant),
		slog.String("token", r.Token), slog.String("destination", r.Destination),
		slog.String("idempotency_key", r.IdempotencyKey), slog.String("template", r.Template.String()),
		slog.String("cvc_jwe", redactedLen(r.CVCJWE)), slog.String("binding", redactedLen(r.Binding)))
}

// String shows the template's shape only: header values may be the
// merchant's processor credentials, and a body may hold anything.
func (t ForwardTemplate) String() string {
	return "ForwardTemplate{content_type:" + t.ContentType + " path:" + redactedLen(t.Path) +
		" headers:" + strconv.Itoa(len(t.Headers)) + " body:" + redactedLen(t.Body) + "}"
}
func (t ForwardTemplate) GoString() string     { return t.String() }
func (t ForwardTemplate) LogValue() slog.Value { return slog.StringValue(t.String()) }

// String shows the status and sizes only: the body is redacted of card
// numbers but is still the processor's answer, not log material.
func (r ForwardResponse) String() string {
	return "ForwardResponse{status:" + strconv.Itoa(r.Status) + " headers:" + strconv.Itoa(len(r.Headers)) +
		" body:" + redactedLen(r.Body) + " jwe:" + redactedLen(r.JWE) + " replayed:" + strconv.FormatBool(r.Replayed) + "}"
}
func (r ForwardResponse) GoString() string     { return r.String() }
func (r ForwardResponse) LogValue() slog.Value { return slog.StringValue(r.String()) }
