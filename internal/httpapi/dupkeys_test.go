package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// tokenDuplicateKeys is the duplicate-key walk as it was before
// noDuplicateKeys: over encoding/json's Decoder.Token stream. It is the
// oracle noDuplicateKeys is held to (FuzzNoDuplicateKeys).
func tokenDuplicateKeys(body []byte) error {
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
				k = foldName(k)
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

// dupClass is what Bind makes of a walk's answer: pass (the strict decode
// decides), duplicate_key, or bad_request.
func dupClass(err error) string {
	switch {
	case err == nil:
		return "pass"
	case errors.Is(err, errDuplicateKey):
		return "duplicate_key"
	}
	return "bad_request"
}

// dupSeeds are bodies at the edges of the two walks' rules: folding and
// escapes in names, invalid UTF-8, every scalar's syntax, what follows
// the first value, nesting at and past the limit.
func dupSeeds() []string {
	seeds := []string{
		``, ` `, `{}`, `[]`, `{ }`, `[ ]`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":1,"A":2}`, `{"a":1,"b":2}`,
		`{"a":"x","inner":{"a":1,"b":{"a":2}},"list":[{"a":1},{"a":2}]}`,
		`{"list":[{"k":1},{"k":1}],"inner":{"k":{"k":1}}}`,
		`{"inner":{"b":1,"c":[1,{}],"b":2}}`, `{"list":[{"x":1},{"x":1,"x":2}]}`,
		`{"inner":{"p":{"q":{"r":1,"r":1}}}}`, `[{"a":1,"a":2}]`, `[[[{"a":{},"a":[]}]]]`,
		`{"a":"x","\u0061":"y"}`, `{"\u0041":1,"a":2}`, `{"a\u0000":1,"a":2}`, `{"a\u0000":1,"a\u0000":2}`,
		`{"ſ":1,"s":2}`, `{"\u017f":1,"S":2}`, `{"k":"x","\u212a":"y"}`, `{"K":1,"\u212A":2}`,
		`{"é":1,"e":2,"ß":3,"ss":4}`, `{"ß":1,"ẞ":2}`, `{"İ":1,"i":2}`, `{"ı":1,"I":2}`, `{"Σ":1,"ς":2,"σ":3}`,
		`{"\ud83d\ude00":1,"😀":2}`, `{"\ud83d":1,"\ude00":2}`, `{"\ud83d":1,"\ufffd":2}`, `{"\ud83dx":1,"\ufffdx":2}`,
		`{"\ud83d\u0041":1,"\ufffdA":2}`, `{"\ude00\ud83d":1,"\ufffd\ufffd":2}`, "{\"\xff\":1,\"\xfe\":2}",
		"{\"\xff\":1,\"\\ufffd\":2}", "{\"\xe2\x82\":1,\"\xef\xbf\xbd\xef\xbf\xbd\":2}", "{\"a\xff\":1}",
		`{"\"":1,"\"":2}`, `{"\/":1,"/":2}`, `{"\b\f\n\r\t":1,"\u0008\u000c\u000a\u000d\u0009":2}`,
		`{"\x":1}`, `{"\u12":1}`, `{"\u12g4":1}`, "{\"a\nb\":1}", "{\"\x00\":1}", `{"a":"\'"}`,
		`{"":1,"":2}`, `{"":1}`, `{"a" : 1 , "a" : 2}`, "{\"a\"\t:\n1\r,\"b\":2}",
		`{"a":1,"a"`, `{"a":1,"a"}`, `{"a":1,"a":`, `{"a":1,"a"x`, `{"a"`, `{"a":`, `{"a":1`, `{"a":1,`, `{"a":1,}`, `{,}`, `{"a" 1}`,
		`{"a":1 "a":2}`, `{"a":1]`, `[1}`, `[1,]`, `[,1]`, `[1 2]`, `[1,,2]`, `{]`, `[}`, `}`, `]`, `,`, `:`, `{"a"::1}`, `{1:2}`, `{null:1}`,
		`1`, `-`, `-1`, `-0`, `01`, `-01`, `1.`, `1.5`, `1.e5`, `1e`, `1e+`, `1e+5`, `1E-5`, `.5`, `+1`, `1x`, `[01]`, `[1.]`, `{"a":-}`, `{"a":01}`, `{"a":1.5e}`,
		`true`, `tru`, `truex`, `t`, `false`, `fals`, `null`, `nul`, `nullx`, `{"a":truex}`, `{"a":true"b"}`, `[true,false,null]`, `[nul]`, `NaN`, `Infinity`,
		`"abc"`, `"abc`, `"a\`, `"\u"`, `{"a":"\u00zz"}`,
		`{}{}`, `{} x`, `{}]`, `{"a":1}{"a":1,"a":2}`, `[{"a":1}] {"a":2`, "\ufeff{}", ` {"a":1,"a":2} `,
		`{"a":{"b":1},"a":{"b":2}}`, `{"a":[{"b":1,"c":{"d":[1,2,{"e":1,"E":2}]}}]}`,
	}
	many := func(n int, dupAt int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"k%d":%d`, i, i)
		}
		if dupAt >= 0 {
			fmt.Fprintf(&b, `,"K%d":0`, dupAt)
		}
		b.WriteString("}")
		return b.String()
	}
	seeds = append(seeds, many(smallObject, -1), many(smallObject+1, -1), many(100, -1), many(100, 3), many(100, 99), many(smallObject+1, smallObject))
	seeds = append(seeds, `{"o":`+many(40, 7)+`}`, `[`+many(40, -1)+`,`+many(40, -1)+`]`)
	for _, depth := range []int{maxDepth, maxDepth + 1} {
		seeds = append(seeds, strings.Repeat("[", depth)+strings.Repeat("]", depth),
			strings.Repeat(`{"a":`, depth-1)+`{}`+strings.Repeat("}", depth-1),
			strings.Repeat("[", depth-1)+`{"a":1,"a":2}`+strings.Repeat("]", depth-1))
	}
	return seeds
}

// FuzzNoDuplicateKeys: noDuplicateKeys decides every body as the walk of
// encoding/json's tokens (tokenDuplicateKeys) does: pass, duplicate_key or
// bad_request. Plain `go test` runs the seeds.
func FuzzNoDuplicateKeys(f *testing.F) {
	for _, s := range dupSeeds() {
		f.Add([]byte(s))
	}
	for _, b := range benchBodies() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, got := dupClass(tokenDuplicateKeys(body)), dupClass(noDuplicateKeys(body))
		if got != want {
			t.Fatalf("%q: %s, the token walk says %s", abbrev(body), got, want)
		}
	})
}

// TestDuplicateKeysSeeds names the seed bodies' expected classes where a
// wrong answer would matter most, so a change of the oracle shows too.
func TestDuplicateKeysSeeds(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"\u017f":1,"S":2}`, "duplicate_key"},
		{"{\"\xff\":1,\"\xfe\":2}", "duplicate_key"},
		{`{"\ud83d\ude00":1,"😀":2}`, "duplicate_key"},
		{`{"\ud83d":1,"\ufffd":2}`, "duplicate_key"},
		{`{"a":1,"a"x`, "duplicate_key"},
		{`{"a":1,x,"a":2}`, "bad_request"},
		{`{"ß":1,"ss":2}`, "pass"},
		{`{}]`, "pass"},
		{strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), "pass"},
		{strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), "bad_request"},
	} {
		t.Run(tc.want+"/"+abbrev([]byte(tc.body)), func(t *testing.T) {
			for name, walk := range map[string]func([]byte) error{"new": noDuplicateKeys, "token": tokenDuplicateKeys} {
				if got := dupClass(walk([]byte(tc.body))); got != tc.want {
					t.Errorf("%s walk: %s, want %s", name, got, tc.want)
				}
			}
		})
	}
}

func abbrev(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}
