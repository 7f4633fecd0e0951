package sigauth

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/blindgate/blindgate/keyservice/wire"
)

// genericClaims is decodeClaims without its fast path.
func genericClaims(payload []byte) (wire.Claims, bool) {
	var c wire.Claims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return wire.Claims{}, false
	}
	return c, true
}

// FuzzScanClaims: claims the one-pass reader accepts are the claims
// encoding/json reads from the same bytes.
func FuzzScanClaims(f *testing.F) {
	good, _ := json.Marshal(wire.Claims{Iss: "gateway", Aud: "keyservice", Iat: 1764000000, Exp: 1764000030, Jti: "abcdefghijklmnop", Htm: "POST", Htu: "https://ks/v1/inspect", Bh: "x"})
	for _, s := range []string{string(good), `{"iss":"a","iss":"b"}`, `{"ISS":"a"}`, `{"iat":"1"}`, `{"iat":1.0}`, `{"iss":null}`, `{"x":1}`, `{"iat":-1,"exp":9223372036854775807}`, "{\"iss\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, ok := scanClaims(payload)
		if !ok {
			return
		}
		want, wok := genericClaims(payload)
		if !wok || got != want {
			t.Fatalf("%q: fast path %+v, encoding/json %+v (ok %v)", payload, got, want, wok)
		}
	})
}

// slowHtu is htuMatches without its fast path.
func slowHtu(htu, path string, origins []string) bool {
	u, err := url.Parse(htu)
	if err != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil {
		return false
	}
	origin, err := originOf(u)
	if err != nil {
		return false
	}
	for _, o := range origins {
		if o == origin {
			return u.Path == path && path != ""
		}
	}
	return false
}

// FuzzHtuMatches: the comparison without url.Parse agrees with it, for
// origins as ParseOrigins makes them.
func FuzzHtuMatches(f *testing.F) {
	for _, s := range [][2]string{
		{"https://keyservice.internal/v1/inspect", "/v1/inspect"},
		{"https://KEYSERVICE.internal/v1/inspect", "/v1/inspect"},
		{"https://keyservice.internal:443/v1/inspect", "/v1/inspect"},
		{"https://keyservice.internal/v1/insp%65ct", "/v1/insp%65ct"},
		{"https://keyservice.internal/v1/inspect?x", "/v1/inspect"},
		{"http://[::1]:8443/v1/inspect", "/v1/inspect"},
		{"https://keyservice.internal/v1/inspect", "/V1/inspect"},
	} {
		f.Add(s[0], s[1])
	}
	origins, err := ParseOrigins("https://keyservice.internal, http://[::1]:8443, http://127.0.0.1:9000")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, htu, path string) {
		if got, want := htuMatches(htu, path, origins), slowHtu(htu, path, origins); got != want {
			t.Fatalf("htuMatches(%q, %q) = %v, url.Parse says %v", htu, path, got, want)
		}
	})
}
