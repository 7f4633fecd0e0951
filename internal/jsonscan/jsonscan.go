// Package jsonscan reads, in one pass, the simple JSON objects that
// Blindgate's own code writes: request and response bodies, JOSE headers,
// signed-request claims. Object reads members without reflection; Decode
// sets the fields of a flat struct (its type read once). An object is simple when its member
// names and string values have no escape and no control character, its
// numbers are integers, and its other values are true, false, null, or
// arrays and objects (up to MaxDepth deep) of the same.
//
// Anything else is "not simple" (ok false), and so is anything malformed:
// the caller then hands the input to encoding/json, which decides. Within
// the simple subset the members are what encoding/json reads, so the fast
// path changes how much an answer costs, never the answer. The input must
// be valid UTF-8 (callers check); names are compared byte for byte.
package jsonscan

// MaxDepth bounds nesting: deeper input is not simple.
const MaxDepth = 4

// Member is one member of an object: its name (without quotes) and its
// value as it appears in the input, without surrounding whitespace (what
// a json.RawMessage would hold). Both alias the input.
type Member struct {
	Name  []byte
	Value []byte
}

// Object scans data, which must be one simple object and nothing else but
// whitespace, into its members in order, appended to buf[:0].
func Object(data []byte, buf []Member) (members []Member, ok bool) {
	s := scanner{b: data}
	s.space()
	members, ok = s.object(buf[:0], 1, true)
	if !ok {
		return nil, false
	}
	s.space()
	return members, s.i == len(s.b)
}

// String is the text of a simple string value (quotes included in raw).
func String(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	for _, c := range raw[1 : len(raw)-1] {
		if c == '"' || c == '\\' || c < 0x20 {
			return "", false
		}
	}
	return string(raw[1 : len(raw)-1]), true
}

// Int is the value of a simple integer that fits an int64.
func Int(raw []byte) (int64, bool) {
	s := scanner{b: raw}
	if !s.number() || s.i != len(raw) {
		return 0, false
	}
	neg := raw[0] == '-'
	digits := raw
	limit := uint64(1<<63 - 1)
	if neg {
		digits, limit = raw[1:], 1<<63
	}
	var n uint64
	for _, c := range digits {
		d := uint64(c - '0')
		if n > (limit-d)/10 {
			return 0, false // beyond int64: encoding/json decides (an error)
		}
		n = n*10 + d
	}
	if neg {
		return int64(-n), true // two's complement: 1<<63 becomes MinInt64
	}
	return int64(n), true
}

// Bool is the value of true or false.
func Bool(raw []byte) (v, ok bool) {
	switch string(raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object reads an object at s.i; keep says whether to collect members
// (only the top level's are returned).
func (s *scanner) object(members []Member, depth int, keep bool) ([]Member, bool) {
	if depth > MaxDepth || s.i >= len(s.b) || s.b[s.i] != '{' {
		return nil, false
	}
	s.i++
	s.space()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return members, true
	}
	for {
		name, ok := s.str()
		if !ok {
			return nil, false
		}
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return nil, false
		}
		s.i++
		s.space()
		start := s.i
		if !s.value(depth) {
			return nil, false
		}
		if keep {
			members = append(members, Member{Name: name[1 : len(name)-1], Value: s.b[start:s.i]})
		}
		s.space()
		if s.i >= len(s.b) {
			return nil, false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.space()
		case '}':
			s.i++
			return members, true
		default:
			return nil, false
		}
	}
}

func (s *scanner) array(depth int) bool {
	if depth > MaxDepth {
		return false
	}
	s.i++ // '['
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return true
	}
	for {
		if !s.value(depth) {
			return false
		}
		s.space()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.space()
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

// value reads one value inside a container at depth.
func (s *scanner) value(depth int) bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '{':
		_, ok := s.object(nil, depth+1, false)
		return ok
	case c == '[':
		return s.array(depth + 1)
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
			s.i += len(lit)
			return s.delimited()
		}
	}
	return false
}

// str reads a string without escapes or control characters, quotes
// included.
func (s *scanner) str() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i
	for s.i++; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start:s.i], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// number reads an integer in JSON's syntax: -?(0|[1-9][0-9]*), ended by
// a delimiter. A fraction or exponent is not simple.
func (s *scanner) number() bool {
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return false
	}
	if s.b[s.i] == '0' {
		s.i++
	} else {
		if s.b[s.i] < '1' || s.b[s.i] > '9' {
			return false
		}
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
	}
	return s.delimited()
}

// delimited reports whether a literal or number ends here (and not, say,
// "truex" or "12.5").
func (s *scanner) delimited() bool {
	if s.i == len(s.b) {
		return true
	}
	switch s.b[s.i] {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}
