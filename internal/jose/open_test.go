package jose

import (
	"crypto/elliptic"
	"errors"
	"testing"
)

// TestOpenThenDecrypt: parsing once and decrypting later gives what Decrypt
// gives, and a key of the wrong curve is still refused after Open.
func TestOpenThenDecrypt(t *testing.T) {
	key := mustEC(elliptic.P256())
	compact := mustEncrypt(t, &key.PublicKey, "kek-1")
	j, err := Open(compact)
	if err != nil {
		t.Fatal(err)
	}
	if h := j.Header(); h.Kid != "kek-1" || h.Alg != AlgECDHES || h.SessionID == "" {
		t.Fatalf("header %+v", h)
	}
	pt, err := j.Decrypt(key)
	if err != nil {
		t.Fatal(err)
	}
	_, want, err := Decrypt(compact, key)
	if err != nil || string(pt) != string(want) {
		t.Fatalf("Open+Decrypt %q, Decrypt %q (%v)", pt, want, err)
	}
	if _, err := j.Decrypt(mustEC(elliptic.P384())); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong curve: %v", err)
	}
	if _, err := Open([]byte("a.b.c.d.e")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
}
