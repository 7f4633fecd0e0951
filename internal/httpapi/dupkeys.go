package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// maxDepth bounds nesting, as encoding/json does (10000); a body this deep
// is no request of ours.
const maxDepth = 10000

// smallObject is how many member names of one object are compared one by
// one; past it they go in a map, so a body of many members costs linear
// time, not quadratic.
const smallObject = 16

// noDuplicateKeys walks the first JSON value of body and refuses an
// object, at any depth (inside arrays too), that names a member twice:
// names are compared decoded (escapes, and invalid UTF-8 as U+FFFD, as
// encoding/json decodes them) and folded (foldName), the rule by which
// encoding/json binds a member to a field. The key is not in the error:
// it is request data.
//
// It decides as a walk of encoding/json's Decoder.Token stream would
// (FuzzNoDuplicateKeys holds it to that walk): the first problem in the
// text decides, a repeated name (errDuplicateKey, found as soon as the
// name's closing quote is read) or invalid JSON (any other error); what
// follows the first value is not read. It only refuses: a body it passes
// is then decoded strictly by encoding/json, which decides everything
// else.
func noDuplicateKeys(body []byte) error {
	// Room for a request's usual shape without an allocation.
	var (
		stack  [8]dupFrame
		names  [32]dupSpan
		folded [256]byte
	)
	w := dupWalker{b: body, stack: stack[:0], names: names[:0], folded: folded[:0]}
	return w.walk()
}

// dupWalker is one walk: the open containers and, for the open objects,
// the folded names of their members so far, innermost object last.
type dupWalker struct {
	b      []byte
	i      int
	stack  []dupFrame
	names  []dupSpan // folded member names of the open objects
	folded []byte    // their bytes
}

type dupFrame struct {
	object bool
	first  int                 // the object's first name in names
	start  int                 // its first byte in folded
	set    map[string]struct{} // its names, once past smallObject
}

type dupSpan struct{ off, end int }

var errJSONDepth = errors.New("httpapi: JSON nested too deep")

func (w *dupWalker) syntax() error {
	if w.i >= len(w.b) {
		return errors.New("httpapi: read JSON: unexpected end of JSON input")
	}
	return fmt.Errorf("httpapi: read JSON: invalid character at offset %d", w.i)
}

func (w *dupWalker) walk() error {
	for {
		// A value starts here.
		w.space()
		if w.i >= len(w.b) {
			return w.syntax()
		}
		ended := true
		switch w.b[w.i] {
		case '{', '[':
			object := w.b[w.i] == '{'
			if len(w.stack) >= maxDepth {
				return errJSONDepth
			}
			w.i++
			w.stack = append(w.stack, dupFrame{object: object, first: len(w.names), start: len(w.folded)})
			w.space()
			switch {
			case w.i < len(w.b) && w.b[w.i] == "]}"[b2i(object)]:
				w.i++
				w.pop()
			case object:
				if err := w.member(); err != nil {
					return err
				}
				ended = false
			default:
				ended = false
			}
		default:
			if err := w.scalar(); err != nil {
				return err
			}
		}
		// A value ended: close what it ends, or move to the next member or
		// element.
		for ended {
			if len(w.stack) == 0 {
				return nil
			}
			w.space()
			if w.i >= len(w.b) {
				return w.syntax()
			}
			top := &w.stack[len(w.stack)-1]
			switch c := w.b[w.i]; {
			case c == ',':
				w.i++
				if top.object {
					w.space()
					if err := w.member(); err != nil {
						return err
					}
				}
				ended = false
			case c == "]}"[b2i(top.object)]:
				w.i++
				w.pop()
			default:
				return w.syntax()
			}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (w *dupWalker) pop() {
	top := w.stack[len(w.stack)-1]
	w.stack = w.stack[:len(w.stack)-1]
	if top.object {
		w.names, w.folded = w.names[:top.first], w.folded[:top.start]
	}
}

func (w *dupWalker) space() {
	for w.i < len(w.b) {
		switch w.b[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

// member reads an object member's name, refuses it if the object named it
// already, and reads the colon after it.
func (w *dupWalker) member() error {
	if w.i >= len(w.b) || w.b[w.i] != '"' {
		return w.syntax()
	}
	start := w.i + 1
	plain, err := w.str()
	if err != nil {
		return err
	}
	if err := w.name(w.b[start-1:w.i], plain); err != nil {
		return err
	}
	w.space()
	if w.i >= len(w.b) || w.b[w.i] != ':' {
		return w.syntax()
	}
	w.i++
	return nil
}

// name adds quoted (a member name as written, quotes included) to the
// innermost object's names, or refuses it as a duplicate.
func (w *dupWalker) name(quoted []byte, plain bool) error {
	top := &w.stack[len(w.stack)-1]
	off := len(w.folded)
	if plain {
		// ASCII without escapes: foldName is the upper case.
		for _, c := range quoted[1 : len(quoted)-1] {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			w.folded = append(w.folded, c)
		}
	} else {
		// Escapes or bytes past ASCII (rare): encoding/json decodes the
		// name, so it is read as it binds (surrogates, invalid UTF-8).
		var name string
		if err := json.Unmarshal(quoted, &name); err != nil {
			return fmt.Errorf("httpapi: read JSON: %w", err)
		}
		w.folded = append(w.folded, foldName(name)...)
	}
	folded := w.folded[off:]
	if top.set != nil {
		if _, dup := top.set[string(folded)]; dup {
			return errDuplicateKey
		}
		top.set[string(folded)] = struct{}{}
		w.folded = w.folded[:off]
		return nil
	}
	for _, n := range w.names[top.first:] {
		if bytes.Equal(w.folded[n.off:n.end], folded) {
			return errDuplicateKey
		}
	}
	w.names = append(w.names, dupSpan{off, len(w.folded)})
	if len(w.names)-top.first > smallObject {
		top.set = make(map[string]struct{}, 2*smallObject)
		for _, n := range w.names[top.first:] {
			top.set[string(w.folded[n.off:n.end])] = struct{}{}
		}
		w.names, w.folded = w.names[:top.first], w.folded[:top.start]
	}
	return nil
}

// scalar reads a string, number, true, false or null.
func (w *dupWalker) scalar() error {
	switch c := w.b[w.i]; {
	case c == '"':
		_, err := w.str()
		return err
	case c == '-' || '0' <= c && c <= '9':
		return w.number()
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if w.b[w.i] == lit[0] {
			for j := range len(lit) {
				if w.i >= len(w.b) || w.b[w.i] != lit[j] {
					return w.syntax()
				}
				w.i++
			}
			return nil
		}
	}
	return w.syntax()
}

// str reads a string at w.i (its opening quote) to after its closing
// quote, as encoding/json's scanner accepts it: no control character, only
// JSON's escapes; bytes that are not UTF-8 pass (encoding/json decodes
// them as U+FFFD). plain: ASCII only and no escape.
func (w *dupWalker) str() (plain bool, err error) {
	plain = true
	for w.i++; w.i < len(w.b); {
		c := w.b[w.i]
		switch {
		case c == '"':
			w.i++
			return plain, nil
		case c == '\\':
			plain = false
			w.i++
			if w.i >= len(w.b) {
				return false, w.syntax()
			}
			switch w.b[w.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				w.i++
			case 'u':
				w.i++
				for range 4 {
					if w.i >= len(w.b) || unhex(w.b[w.i]) < 0 {
						return false, w.syntax()
					}
					w.i++
				}
			default:
				return false, w.syntax()
			}
		case c < 0x20:
			return false, w.syntax()
		default:
			if c >= utf8.RuneSelf {
				plain = false
			}
			w.i++
		}
	}
	return false, w.syntax()
}

// number reads a number in JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
// What follows it is the caller's (encoding/json ends a number at the
// first byte that cannot continue it).
func (w *dupWalker) number() error {
	if w.b[w.i] == '-' {
		w.i++
	}
	if w.i < len(w.b) && w.b[w.i] == '0' {
		w.i++
	} else if !w.digits() {
		return w.syntax()
	}
	if w.i < len(w.b) && w.b[w.i] == '.' {
		w.i++
		if !w.digits() {
			return w.syntax()
		}
	}
	if w.i < len(w.b) && (w.b[w.i] == 'e' || w.b[w.i] == 'E') {
		w.i++
		if w.i < len(w.b) && (w.b[w.i] == '+' || w.b[w.i] == '-') {
			w.i++
		}
		if !w.digits() {
			return w.syntax()
		}
	}
	return nil
}

// digits reads one or more digits.
func (w *dupWalker) digits() bool {
	start := w.i
	for w.i < len(w.b) && '0' <= w.b[w.i] && w.b[w.i] <= '9' {
		w.i++
	}
	return w.i > start
}

func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}
