package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/blindgate/blindgate/internal/jsonscan"
)

type simpleReq struct {
	JWE     string `json:"jwe"`
	Session string `json:"session"`
	CVC     string `json:"cvc_jwe,omitempty"`
	Refresh bool   `json:"refresh,omitempty"`
	N       int    `json:"n"`
}

func (simpleReq) Validate() error { return nil }

type notSimple struct {
	A string            `json:"a"`
	M map[string]string `json:"m"`
}

type foldedTags struct {
	A string `json:"a"`
	B string `json:"A"`
}

// FuzzBindSimple: a body jsonscan.Decode takes is bound to the same
// fields by the generic path, which does not refuse it.
func FuzzBindSimple(f *testing.F) {
	for _, s := range []string{
		`{"jwe":"a.b.c.d.e","session":"cs_1"}`, `{"jwe":"x","refresh":true,"n":-3}`, `{"JWE":"x"}`,
		`{"jwe":"x","jwe":"y"}`, `{"jwe":"\u0041"}`, `{"jwe":null}`, `{"n":1.0}`, `{"n":99999999999999999999}`,
		`{"other":"x"}`, `{"refresh":"true"}`, `{}`, ` {"jwe" : "x" } `, `{"jwe":"x"}{}`, "{\"jwe\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast simpleReq
		if !jsonscan.Decode(body, &fast) {
			if fast != (simpleReq{}) {
				t.Fatalf("%q: not taken, yet fields were set: %+v", body, fast)
			}
			return
		}
		var slow simpleReq
		if err := Bind(append([]byte(nil), body...), &slowOnly{&slow}); err != nil {
			t.Fatalf("%q: taken by the fast path, refused by the generic one: %v", body, err)
		}
		if fast != slow {
			t.Fatalf("%q: fast %+v, generic %+v", body, fast, slow)
		}
	})
}

// slowOnly hides simpleReq's type from jsonscan.Decode (it is no struct
// pointer), so Bind reads with encoding/json.
type slowOnly struct{ r *simpleReq }

func (s *slowOnly) Validate() error              { return nil }
func (s *slowOnly) UnmarshalJSON(b []byte) error { return strictUnmarshal(b, s.r) }

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func TestBindSimpleTypes(t *testing.T) {
	if !jsonscan.Decode([]byte(`{"a":"x"}`), &struct {
		A string `json:"a"`
	}{}) {
		t.Error("a simple type not taken")
	}
	if jsonscan.Decode([]byte(`{"a":"x"}`), &notSimple{}) || jsonscan.Decode([]byte(`{"a":"x"}`), &foldedTags{}) {
		t.Error("a type that is not simple taken by the fast path")
	}
	var r simpleReq
	if !jsonscan.Decode([]byte(`{"jwe":"a.b","session":"cs_1","refresh":true,"n":7}`), &r) || r != (simpleReq{JWE: "a.b", Session: "cs_1", Refresh: true, N: 7}) {
		t.Errorf("bound %+v", r)
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// BenchmarkBind is an inspect-sized body bound in one pass (simple) and
// by encoding/json (generic: what every body cost before).
func BenchmarkBind(b *testing.B) {
	body, _ := json.Marshal(simpleReq{JWE: string(bytes.Repeat([]byte("a"), 900)) + ".b.c.d.e", Session: "cs_0123456789abcdef", CVC: string(bytes.Repeat([]byte("c"), 500))})
	b.Run("simple", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r simpleReq
			if err := Bind(body, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("generic", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r simpleReq
			if err := noDuplicateKeys(body); err != nil {
				b.Fatal(err)
			}
			if err := strictUnmarshal(body, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
