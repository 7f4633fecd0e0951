package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"testing"
	"unicode/utf8"
)

// generic reads an object's members in order with encoding/json: the
// reading the fast path must agree with.
func generic(data []byte) ([]Member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	var out []Member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("name")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, Member{Name: []byte(name), Value: v})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errors.New("end")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data")
	}
	return out, nil
}

func same(a, b []Member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Name, b[i].Name) || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

var seeds = []string{
	`{"alg":"EdDSA","kid":"gw-20260101-abcd","typ":"bg-req+jwt"}`,
	`{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"kty":"EC","crv":"P-256","x":"abc","y":"def"},"kid":"k1","bg_sid":"cs_1"}`,
	`{"iss":"gateway","aud":"keyservice","iat":1764000000,"exp":1764000030,"jti":"abcdefghijklmnop","htm":"POST","htu":"https://ks/v1/inspect","bh":"x"}`,
	` { "a" : [ 1 , -2 , true , null , "x" , [ ] , { } ] , "b" : false } `,
	`{"jwe":"a.b.c.d.e","refresh":true}`,
	`{}`, `{"a":0}`, `{"a":-0}`, `{"a":01}`, `{"a":1.5}`, `{"a":1e3}`, `{"a":"\u0041"}`, `{"a":"x\"y"}`,
	`{"a":1}x`, `{"a":1}{}`, `{"a":truex}`, `{"a":tru}`, `{"a",1}`, `{"a":1,}`, `{,}`, `[1]`, `"a"`, `{"a":[1,]}`,
	`{"a":{"b":{"c":{"d":{"e":1}}}}}`, `{"a":{"b":{"c":{"d":1}}}}`, "{\"a\":\"\t\"}", `{"a":"é"}`,
	`{"a":9223372036854775807,"b":-9223372036854775808}`, `{"a":9223372036854775808}`, `{"a":1,"a":2}`,
}

// FuzzObject: whatever the input, an object the fast path reads is read
// by encoding/json too, with the same members in the same order.
func FuzzObject(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return
		}
		got, ok := Object(data, nil)
		if !ok {
			return
		}
		want, err := generic(data)
		if err != nil {
			t.Fatalf("%q: simple for the fast path, refused by encoding/json: %v", data, err)
		}
		if !same(got, want) {
			t.Fatalf("%q: fast path %q, encoding/json %q", data, got, want)
		}
		for _, m := range got {
			if s, ok := String(m.Value); ok {
				var v string
				if err := json.Unmarshal(m.Value, &v); err != nil || v != s {
					t.Fatalf("String(%q) = %q, encoding/json %q %v", m.Value, s, v, err)
				}
			}
			if n, ok := Int(m.Value); ok {
				var v int64
				if err := json.Unmarshal(m.Value, &v); err != nil || v != n {
					t.Fatalf("Int(%q) = %d, encoding/json %d %v", m.Value, n, v, err)
				}
			}
		}
	})
}

func TestSubset(t *testing.T) {
	for _, tt := range []struct {
		in     string
		simple bool
	}{
		{seeds[0], true}, {seeds[1], true}, {seeds[2], true}, {seeds[3], true}, {seeds[4], true},
		{`{}`, true}, {`{"a":-0}`, true}, {`{"a":01}`, false}, {`{"a":1.5}`, false}, {`{"a":1e3}`, false},
		{`{"a":"\u0041"}`, false}, {`{"a":"x\"y"}`, false}, {`{"a":1}x`, false}, {`{"a":1}{}`, false},
		{`{"a":truex}`, false}, {`{"a":1,}`, false}, {`[1]`, false}, {`{"a":[1,]}`, false},
		{`{"a":{"b":{"c":{"d":1}}}}`, true}, {`{"a":{"b":{"c":{"d":{"e":1}}}}}`, false},
		{"{\"a\":\"\t\"}", false}, {`{"a":"é"}`, true}, {`{"a":1,"a":2}`, true},
	} {
		if _, ok := Object([]byte(tt.in), nil); ok != tt.simple {
			t.Errorf("Object(%s) simple = %v, want %v", tt.in, ok, tt.simple)
		}
	}
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"-0", 0, true}, {"17", 17, true}, {"9223372036854775807", math.MaxInt64, true},
		{"-9223372036854775808", math.MinInt64, true}, {"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false}, {"1.0", 0, false}, {"-", 0, false}, {"01", 0, false},
	} {
		if n, ok := Int([]byte(tt.in)); n != tt.want || ok != tt.ok {
			t.Errorf("Int(%s) = %d %v, want %d %v", tt.in, n, ok, tt.want, tt.ok)
		}
	}
	if s, ok := String([]byte(`"a.b"`)); !ok || s != "a.b" {
		t.Errorf("String = %q %v", s, ok)
	}
	for _, raw := range []string{`"a\"`, `"a\nb"`, `a`, `"`} {
		if _, ok := String([]byte(raw)); ok {
			t.Errorf("String(%s) simple", raw)
		}
	}
}

func BenchmarkObject(b *testing.B) {
	data := []byte(seeds[1])
	buf := make([]Member, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Object(data, buf); !ok {
			b.Fatal("not simple")
		}
	}
}

type flat struct {
	Kid      string `json:"kid"`
	Brand    string `json:"brand"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int64  `json:"exp_year"`
	Ok       bool   `json:"ok,omitempty"`
}

// FuzzDecode: what Decode takes, json.Unmarshal reads into the same
// fields without an error (strictly too: no unknown field).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"kid":"k1","brand":"visa","exp_month":12,"exp_year":2030,"ok":true}`, `{"KID":"k"}`, `{"kid":"a","kid":"b"}`,
		`{"exp_month":"12"}`, `{"exp_month":1e2}`, `{"other":1}`, `{"kid":null}`, `{}`, `{"kid":"\u00e9"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast flat
		if !Decode(data, &fast) {
			if fast != (flat{}) {
				t.Fatalf("%q: refused, yet fields were set: %+v", data, fast)
			}
			return
		}
		var slow flat
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&slow); err != nil || dec.More() || fast != slow {
			t.Fatalf("%q: Decode %+v, encoding/json %+v %v", data, fast, slow, err)
		}
	})
}
