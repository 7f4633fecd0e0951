package jsonscan

import (
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
)

// Decode sets the fields of v, a pointer to a struct, from data in one
// pass, when data is a simple object (Object) whose every member is named
// exactly as one of v's json tags spells it, once, with a value of that
// field's kind: a string, true or false, an integer. encoding/json reads
// such input into the same fields, whether strictly (unknown fields and
// duplicate keys refused) or not; Decode reports false for anything else,
// having set nothing, and the caller reads data with encoding/json. Only
// struct types made of tagged string, bool, int and int64 fields (at most
// omitempty as an option, no two tags a letter case apart) are decoded.
func Decode(body []byte, v any) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return false
	}
	fields := simpleFields(rv.Elem().Type())
	if fields == nil || !utf8.Valid(body) {
		// encoding/json replaces invalid UTF-8 in strings: let it.
		return false
	}
	var buf [16]Member
	members, ok := Object(body, buf[:0])
	if !ok || len(members) > len(buf) {
		return false
	}
	type set struct {
		f   simpleField
		str string
		b   bool
		n   int64
	}
	var sets [16]set
	var seen uint64
	for i, m := range members {
		f, ok := fields[string(m.Name)]
		if !ok || seen&(1<<f.bit) != 0 {
			return false // unknown, differently spelt, or twice: the generic path decides
		}
		seen |= 1 << f.bit
		s := set{f: f}
		switch f.kind {
		case reflect.String:
			s.str, ok = String(m.Value)
		case reflect.Bool:
			s.b, ok = Bool(m.Value)
		case reflect.Int, reflect.Int64:
			s.n, ok = Int(m.Value)
			ok = ok && (f.kind == reflect.Int64 || int64(int(s.n)) == s.n)
		}
		if !ok {
			return false
		}
		sets[i] = s
	}
	st := rv.Elem()
	for _, s := range sets[:len(members)] {
		fv := st.Field(s.f.index)
		switch s.f.kind {
		case reflect.String:
			fv.SetString(s.str)
		case reflect.Bool:
			fv.SetBool(s.b)
		default:
			fv.SetInt(s.n)
		}
	}
	return true
}

type simpleField struct {
	index int
	kind  reflect.Kind
	bit   uint
}

var simpleTypes sync.Map // reflect.Type -> map[string]simpleField (nil: not simple)

// simpleFields maps the tags of a struct type whose every field is an
// exported string, bool, int or int64 with a plain json tag (a name and
// at most omitempty), and returns nil for any other struct type.
func simpleFields(t reflect.Type) map[string]simpleField {
	if v, ok := simpleTypes.Load(t); ok {
		return v.(map[string]simpleField)
	}
	fields := map[string]simpleField{}
	folded := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case !f.IsExported() || f.Anonymous || name == "" || name == "-" || (opts != "" && opts != "omitempty") || i >= 64:
			fields = nil
		case f.Type.Kind() != reflect.String && f.Type.Kind() != reflect.Bool && f.Type.Kind() != reflect.Int && f.Type.Kind() != reflect.Int64:
			fields = nil
		}
		if fields == nil {
			break
		}
		fields[name] = simpleField{index: i, kind: f.Type.Kind(), bit: uint(i)}
		folded[strings.ToLower(name)]++
	}
	for _, n := range folded {
		if n > 1 {
			// Two tags one letter case apart: the generic path refuses a
			// body with both as duplicates; keep such types off this path.
			fields = nil
		}
	}
	simpleTypes.Store(t, fields)
	return fields
}
