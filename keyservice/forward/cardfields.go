package forward

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/blindgate/blindgate/keyservice/destinations"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Probe values stand in for the card while a template's placement is
// checked: each is distinct, none holds another, and they escape to
// themselves in JSON and form data, so wherever one lands in the decoded
// body is exactly where its placeholder would put the card.
func probeString(f Field) string { return "QzBgProbe" + strconv.Itoa(int(f)) + "Qz" }

func probeNumber(f Field) string { return "739184620" + strconv.Itoa(int(f)) }

// CheckCardFields refuses (ErrTemplate) a card placeholder that is not,
// as the whole value, at a place the destination's card_fields lists for
// it. The processor stores what it is sent: a card number in a description
// or metadata field could be read back from the processor with the
// merchant's own processor credentials, outside Blindgate, so the operator
// says which fields are the card's. A destination without card_fields takes
// no card placeholder; card_fields "any" is the operator's opt-out.
//
// The check fills the template with probe values and decodes the result
// the way the processor will, so what is checked is where the values land,
// not how the template spells it; any probe found anywhere else, in a
// longer string, or a count that does not match the placeholders, refuses.
func (t *Template) CheckCardFields(d *destinations.Compiled) error {
	want := map[string]Field{}
	count := map[string]int{}
	var buf []byte
	for _, p := range t.parts {
		if !p.ph {
			buf = append(buf, p.lit...)
			continue
		}
		probe := probeString(p.field)
		if p.bare {
			probe = probeNumber(p.field)
		}
		want[probe] = p.field
		count[probe]++
		buf = append(buf, probe...)
	}
	if len(want) == 0 || d.AnyCardField() {
		return nil
	}
	if d.CardFields == nil {
		return fmt.Errorf("%w: this destination takes no card placeholder (its card_fields lists none)", ErrTemplate)
	}
	found := map[string]int{}
	check := func(value, place string, placeOK, isKey bool) error {
		for probe, f := range want {
			n := strings.Count(value, probe)
			if n == 0 {
				continue
			}
			found[probe] += n
			switch {
			case isKey:
				return fmt.Errorf("%w: %s in a field name", ErrTemplate, f)
			case value != probe:
				return fmt.Errorf("%w: %s must be the whole value of its field, not part of %q", ErrTemplate, f, place)
			case !placeOK || !d.AllowsCardField(placeholders[f], place):
				return fmt.Errorf("%w: %s may not go into %q for this destination", ErrTemplate, f, place)
			}
		}
		return nil
	}
	var err error
	if t.contentType == wire.ContentTypeForm {
		err = walkForm(string(buf), check)
	} else {
		err = walkJSON(buf, check)
	}
	if err != nil {
		return err
	}
	for probe, n := range count {
		if found[probe] != n {
			return fmt.Errorf("%w: %s does not fill a whole field", ErrTemplate, want[probe])
		}
	}
	return nil
}

// walkForm calls check on every decoded key and value; a value's place is
// its key.
func walkForm(body string, check func(value, place string, placeOK, isKey bool) error) error {
	for _, pair := range strings.Split(body, "&") {
		k, v, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(k)
		val, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%w: the body is not form data", ErrTemplate)
		}
		if err := check(key, key, false, true); err != nil {
			return err
		}
		if err := check(val, key, true, false); err != nil {
			return err
		}
	}
	return nil
}

// maxJSONDepth bounds the nesting the check walks; a deeper template is
// refused rather than recursed into.
const maxJSONDepth = 64

// walkJSON calls check on every member name and every string or number
// value; a value's place is its members' names joined by ".". A value
// inside an array, or below a member name holding ".", has no place a
// destination can list (the dotted path would name another field).
func walkJSON(body []byte, check func(value, place string, placeOK, isKey bool) error) error {
	bad := fmt.Errorf("%w: the body is not one valid JSON document once filled", ErrTemplate)
	if !json.Valid(body) {
		return bad
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var walk func(path string, placeOK bool, depth int) error
	walk = func(path string, placeOK bool, depth int) error {
		if depth > maxJSONDepth {
			return fmt.Errorf("%w: the body nests deeper than %d", ErrTemplate, maxJSONDepth)
		}
		tok, err := dec.Token()
		if err != nil {
			return bad
		}
		switch v := tok.(type) {
		case json.Delim:
			for dec.More() {
				child, childOK := path, false
				if v == '{' {
					kt, err := dec.Token()
					key, ok := kt.(string)
					if err != nil || !ok {
						return bad
					}
					if err := check(key, key, false, true); err != nil {
						return err
					}
					child, childOK = key, placeOK && !strings.Contains(key, ".")
					if path != "" {
						child = path + "." + key
					}
				}
				if err := walk(child, childOK, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return bad
			}
		case string:
			return check(v, path, placeOK && path != "", false)
		case json.Number:
			return check(v.String(), path, placeOK && path != "", false)
		}
		return nil
	}
	if err := walk("", true, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad
	}
	return nil
}
