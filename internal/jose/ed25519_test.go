package jose

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// EdDSA request signatures are checked by curve25519-voi (ed25519.go), not
// by crypto/ed25519. These tests hold it to accepting exactly what
// crypto/ed25519.Verify accepts: valid signatures, and the edge cases where
// Ed25519 verifiers are known to disagree (non-canonical S, small-order and
// non-canonically encoded keys and R, keys with a small-order component,
// where a cofactored verifier accepts more). A tiny affine Edwards-curve
// implementation over math/big, independent of both libraries, says what
// the answer must be for the constructed cases, so the tests also fail if
// the standard library's behaviour moves.

// stdlibVerify is crypto/ed25519.Verify, false where it would panic (a key
// that is not 32 bytes).
func stdlibVerify(pub, msg, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, msg, sig)
}

// voiVerify checks with verifyEd25519 twice, with the plain key and with the
// key prepared by NewVerifyKey, and fails the test if the two differ. A key
// NewVerifyKey refuses must be one of the wrong length.
func voiVerify(t testing.TB, pub, msg, sig []byte) bool {
	t.Helper()
	plain := verifyEd25519(ed25519.PublicKey(pub), msg, sig)
	vk, err := NewVerifyKey(ed25519.PublicKey(pub))
	if err != nil {
		if len(pub) == ed25519.PublicKeySize {
			t.Fatalf("NewVerifyKey refused a %d-byte key: %v", len(pub), err)
		}
		if plain {
			t.Fatal("a key NewVerifyKey refuses verified")
		}
		return false
	}
	if prepared := verifyEd25519(vk, msg, sig); prepared != plain {
		t.Fatalf("prepared key %v, plain key %v", prepared, plain)
	}
	return plain
}

// edCase is one (key, signature) over a message, with the answer
// crypto/ed25519.Verify must give, worked out without it.
type edCase struct {
	name     string
	pub, sig []byte
	want     bool
}

func (c edCase) subtest() string {
	if c.want {
		return "accepted/" + c.name
	}
	return "refused/" + c.name
}

// edSeed is the fixed key of the edge-case table (deterministic: the table
// is the same on every run).
var edSeed = bytes.Repeat([]byte{0x5a}, ed25519.SeedSize)

// edgeCases builds the table for msg.
func edgeCases(t testing.TB, msg []byte) []edCase {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(edSeed)
	pub := []byte(priv.Public().(ed25519.PublicKey))
	good := ed25519.Sign(priv, msg)
	with := func(b []byte, f func([]byte)) []byte {
		b = slices.Clone(b)
		f(b)
		return b
	}
	sPlus := func(k int64) []byte { // S + k*L: the same S mod L, not canonical
		s := new(big.Int).Add(leInt(good[32:]), new(big.Int).Mul(big.NewInt(k), curveL))
		return append(slices.Clone(good[:32]), le32(t, s)...)
	}
	cases := []edCase{
		{"valid", pub, good, true},
		{"wrong-message", pub, ed25519.Sign(priv, append(slices.Clone(msg), 'x')), false},
		{"S-plus-L", pub, sPlus(1), false},
		{"S-plus-2L", pub, sPlus(2), false},
		{"S-plus-8L-high-bit", pub, sPlus(8), false},
		{"S-top-bit-set", pub, with(good, func(b []byte) { b[63] |= 0x80 }), false},
		{"S-bit-254-set", pub, with(good, func(b []byte) { b[63] |= 0x40 }), false},
		{"S-bit-253-set", pub, with(good, func(b []byte) { b[63] |= 0x20 }), false},
		{"S-all-ones", pub, with(good, func(b []byte) { copy(b[32:], bytes.Repeat([]byte{0xff}, 32)) }), false},
		{"S-zero", pub, with(good, func(b []byte) { clear(b[32:]) }), false},
		{"R-bit-flipped", pub, with(good, func(b []byte) { b[5] ^= 0x10 }), false},
		{"R-sign-bit-flipped", pub, with(good, func(b []byte) { b[31] ^= 0x80 }), false},
		{"S-bit-flipped", pub, with(good, func(b []byte) { b[40] ^= 0x01 }), false},
		{"key-bit-flipped", with(pub, func(b []byte) { b[0] ^= 0x01 }), good, false},
		{"key-sign-bit-flipped", with(pub, func(b []byte) { b[31] ^= 0x80 }), good, false},
		{"all-zero-signature", pub, make([]byte, 64), false},
		{"signature-truncated-63", pub, good[:63], false},
		{"signature-extended-65", pub, append(slices.Clone(good), 0), false},
		{"signature-empty", pub, nil, false},
		{"key-truncated-31", pub[:31], good, false},
		{"key-extended-33", append(slices.Clone(pub), 0), good, false},
		{"key-empty", nil, good, false},
	}

	A, ok := decodePoint(pub)
	if !ok {
		t.Fatal("the table's key does not decode")
	}
	// Keys with a small-order component, A+T: the holder of A's secret can
	// sign for them, and the cofactorless check accepts exactly when k*T is
	// the identity (a cofactored verifier would accept them all).
	small := smallOrderEncodings(t)
	for _, e := range small {
		if !e.canonical || e.p.isIdentity() {
			continue
		}
		mixed := A.add(e.p).bytes()
		sig, k := signMixed(t, priv, mixed, msg)
		want := e.p.mul(new(big.Int).Mod(k, big.NewInt(8))).isIdentity()
		cases = append(cases, edCase{"mixed-order-key-plus-" + e.name, mixed, sig, want})
	}
	// A non-point: the first y whose encoding is not on the curve.
	for y := int64(2); ; y++ {
		enc := le32(t, big.NewInt(y))
		if _, ok := decodePoint(enc); !ok {
			cases = append(cases, edCase{fmt.Sprintf("key-not-a-point-y-%d", y), enc, good, false})
			break
		}
	}
	// Non-canonical encodings (y = p+k) of points of large order: nobody
	// can sign for them, and the identity R with S = 0 does not fit either.
	zeroS := make([]byte, 32)
	for k := int64(2); k <= 18; k++ {
		for _, sign := range []byte{0, 0x80} {
			enc := le32(t, new(big.Int).Add(curveP, big.NewInt(k)))
			enc[31] |= sign
			if _, ok := decodePoint(enc); !ok {
				continue
			}
			name := fmt.Sprintf("non-canonical-key-y-p+%d-sign-%d", k, sign>>7)
			cases = append(cases,
				edCase{name + "/real-signature", enc, good, false},
				edCase{name + "/identity-R-zero-S", enc, append(identityEnc(), zeroS...), false})
		}
	}
	// Small-order keys and R values, canonical and not, with S = 0:
	// [0]B - [k]A = -[k]A, so the check passes exactly when R is the
	// canonical encoding of -[k mod 8]A (k is hashed over the bytes sent).
	// S = L is the same scalar mod L and must still be refused.
	for _, a := range small {
		for _, r := range small {
			sig := append(slices.Clone(r.enc), zeroS...)
			k := hramInt(r.enc, a.enc, msg)
			want := r.canonical && bytes.Equal(a.p.mul(new(big.Int).Mod(k, big.NewInt(8))).neg().bytes(), r.enc)
			name := "small-order-key-" + a.name + "/R-" + r.name
			cases = append(cases, edCase{name, a.enc, sig, want})
			if want {
				sigL := append(slices.Clone(r.enc), le32(t, curveL)...)
				cases = append(cases, edCase{name + "/S-is-L", a.enc, sigL, false})
			}
		}
		// A real key's signature does not verify under a small-order key.
		cases = append(cases, edCase{"small-order-key-" + a.name + "/real-signature", a.enc, good, false})
	}
	// Small-order R under the real key: -[k]A + [S]B is never small-order
	// for S = 0 and a key of large order.
	for _, r := range small {
		cases = append(cases, edCase{"real-key/small-order-R-" + r.name, pub, append(slices.Clone(r.enc), zeroS...), false})
	}
	return cases
}

// TestVerifyEd25519MatchesStdlib: on every edge case of the table, the
// check VerifyCompact makes for EdDSA (verifyEd25519, with a plain and with
// a prepared key) gives crypto/ed25519.Verify's answer, and that answer is
// the one the curve arithmetic above predicts.
func TestVerifyEd25519MatchesStdlib(t *testing.T) {
	msg := []byte("blindgate differential test message")
	cases := edgeCases(t, msg)
	accepted := 0
	for _, c := range cases {
		t.Run(c.subtest(), func(t *testing.T) {
			std := stdlibVerify(c.pub, msg, c.sig)
			if std != c.want {
				t.Fatalf("crypto/ed25519.Verify = %v, the curve arithmetic says %v", std, c.want)
			}
			if got := voiVerify(t, c.pub, msg, c.sig); got != std {
				t.Fatalf("verifyEd25519 = %v, crypto/ed25519.Verify = %v", got, std)
			}
		})
		if c.want {
			accepted++
		}
	}
	// Each of the 14 small-order key encodings that decode has exactly one
	// accepted R among the canonical ones, plus the valid signature: a table
	// with fewer accepts would prove little about the accepting side.
	if accepted < 15 {
		t.Fatalf("only %d of %d cases are accepted: the table lost its positive cases", accepted, len(cases))
	}
}

// TestVerifyCompactEd25519MatchesStdlib: the same table through
// VerifyCompact, signing the JWS signing input, with the key returned by the
// lookup as it is and prepared by NewVerifyKey.
func TestVerifyCompactEd25519MatchesStdlib(t *testing.T) {
	hdr := enc([]byte(`{"alg":"EdDSA","kid":"k","typ":"` + TypeRequest + `"}`))
	input := []byte(hdr + "." + enc(claims))
	for _, c := range edgeCases(t, input) {
		if len(c.sig) != ed25519.SignatureSize {
			continue // refused by the parse (ErrMalformed), before any key
		}
		std := stdlibVerify(c.pub, input, c.sig)
		if std != c.want {
			t.Fatalf("%s: crypto/ed25519.Verify = %v, the curve arithmetic says %v", c.name, std, c.want)
		}
		jws := string(input) + "." + enc(c.sig)
		keys := map[string]crypto.PublicKey{"plain": ed25519.PublicKey(c.pub)}
		if vk, err := NewVerifyKey(ed25519.PublicKey(c.pub)); err == nil {
			keys["prepared"] = vk
		} else if len(c.pub) == ed25519.PublicKeySize {
			t.Fatalf("%s: NewVerifyKey: %v", c.name, err)
		}
		for form, key := range keys {
			t.Run(c.subtest()+"/"+form, func(t *testing.T) {
				_, payload, err := VerifyCompact(jws, lookupOf(map[string]crypto.PublicKey{"k": key}))
				if (err == nil) != std {
					t.Fatalf("VerifyCompact: %v, crypto/ed25519.Verify = %v", err, std)
				}
				if err != nil && (!errors.Is(err, ErrSignature) || payload != nil) {
					t.Fatalf("refusal %v (payload %d bytes), want ErrSignature", err, len(payload))
				}
			})
		}
	}
}

// TestVerifyEd25519MatchesStdlibRandom: random keys and messages, signed
// and then damaged in random ways; the answers must agree every time.
func TestVerifyEd25519MatchesStdlibRandom(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{'b', 'g'}))
	bytesOf := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	flip := func(b []byte) []byte {
		b = slices.Clone(b)
		if len(b) > 0 {
			b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
		}
		return b
	}
	accepted, refused := 0, 0
	for i := range 200 {
		priv := ed25519.NewKeyFromSeed(bytesOf(ed25519.SeedSize))
		pub := []byte(priv.Public().(ed25519.PublicKey))
		msg := bytesOf(rng.IntN(300))
		sig := ed25519.Sign(priv, msg)
		for name, v := range map[string][3][]byte{
			"valid":         {pub, msg, sig},
			"sig-bit":       {pub, msg, flip(sig)},
			"msg-bit":       {pub, flip(msg), sig},
			"key-bit":       {flip(pub), msg, sig},
			"random-key":    {bytesOf(32), msg, sig},
			"random-sig":    {pub, msg, bytesOf(64)},
			"random-R":      {pub, msg, append(bytesOf(32), sig[32:]...)},
			"other-message": {pub, bytesOf(len(msg)), sig},
		} {
			std := stdlibVerify(v[0], v[1], v[2])
			if got := voiVerify(t, v[0], v[1], v[2]); got != std {
				t.Fatalf("round %d %s: verifyEd25519 = %v, crypto/ed25519.Verify = %v (pub %x sig %x)", i, name, got, std, v[0], v[2])
			}
			if std {
				accepted++
			} else {
				refused++
			}
		}
	}
	if accepted < 200 || refused < 1000 {
		t.Fatalf("%d accepted, %d refused: want every valid signature accepted and most damaged ones refused", accepted, refused)
	}
}

// TestVerifyEd25519MixedOrderKeys: over many messages, a key with an
// order-8 component is accepted for about one in eight (cofactorless, as
// crypto/ed25519) and refused otherwise; both answers occur, and ours is
// the standard library's each time.
func TestVerifyEd25519MixedOrderKeys(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(edSeed)
	A, _ := decodePoint(priv.Public().(ed25519.PublicKey))
	i8 := slices.IndexFunc(smallOrderEncodings(t), func(e smallEnc) bool { return e.name == "order-8-a" })
	order8 := smallOrderEncodings(t)[i8].p
	if order8.mul(big.NewInt(4)).isIdentity() {
		t.Fatal("order-8-a has order below 8")
	}
	mixed := A.add(order8).bytes()
	accepted, refused := 0, 0
	for i := 0; i < 500 && (accepted < 2 || refused < 2); i++ {
		msg := fmt.Appendf(nil, "mixed-order message %d", i)
		sig, _ := signMixed(t, priv, mixed, msg)
		std := stdlibVerify(mixed, msg, sig)
		if got := voiVerify(t, mixed, msg, sig); got != std {
			t.Fatalf("message %d: verifyEd25519 = %v, crypto/ed25519.Verify = %v", i, got, std)
		}
		if std {
			accepted++
		} else {
			refused++
		}
	}
	if accepted < 2 || refused < 2 {
		t.Fatalf("%d accepted, %d refused: want both", accepted, refused)
	}
}

// FuzzVerifyMatchesStdlib: on any (key, message, signature), verifyEd25519
// with a plain and with a prepared key answers as crypto/ed25519.Verify
// does. The seeds are the interesting shapes; `go test` runs only them.
func FuzzVerifyMatchesStdlib(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(edSeed)
	pub := []byte(priv.Public().(ed25519.PublicKey))
	msg := []byte("fuzz")
	sig := ed25519.Sign(priv, msg)
	f.Add(pub, msg, sig)
	f.Add(pub, []byte("other"), sig)
	f.Add(pub[:31], msg, sig)
	f.Add(pub, msg, sig[:63])
	f.Add(make([]byte, 32), msg, make([]byte, 64))
	id := identityEnc()
	f.Add(id, msg, append(slices.Clone(id), make([]byte, 32)...)) // accepted for every message
	s := slices.Clone(sig)
	s[63] |= 0x10 // S >= L
	f.Add(pub, msg, s)
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		std := stdlibVerify(pub, msg, sig)
		if got := voiVerify(t, pub, msg, sig); got != std {
			t.Fatalf("verifyEd25519 = %v, crypto/ed25519.Verify = %v", got, std)
		}
	})
}

// TestNewVerifyKey: what a prepared key accepts and refuses through
// VerifyCompact, the keys NewVerifyKey refuses, and that a prepared key
// still forces its own algorithm.
func TestNewVerifyKey(t *testing.T) {
	ed, err := NewVerifyKey(edKey().Public())
	if err != nil {
		t.Fatal(err)
	}
	ec, err := NewVerifyKey(p256().Public())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ed.Public().(ed25519.PublicKey), edKey().Public().(ed25519.PublicKey)) {
		t.Fatal("Public is not the key given")
	}
	hdr := func(alg, kid string) string {
		return encJSON(t, map[string]string{"alg": alg, "kid": kid, "typ": TypeRequest})
	}
	keys := lookupOf(map[string]crypto.PublicKey{"ed": ed, "ec": ec, "nil": (*VerifyKey)(nil)})
	goodEd, err := Sign(claims, edKey(), "ed")
	if err != nil {
		t.Fatal(err)
	}
	goodEC, err := Sign(claims, p256(), "ec")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		jws  string
		want error
	}{
		{"ok/EdDSA", goodEd, nil},
		{"ok/ES256", goodEC, nil},
		{"401/wrong-key-EdDSA", signRaw(t, hdr("EdDSA", "ed"), claims, edKeyB()), ErrSignature},
		{"401/wrong-key-ES256", signRaw(t, hdr("ES256", "ec"), claims, p256b()), ErrSignature},
		{"401/alg-confusion-ES256-header-Ed25519-key", signRaw(t, hdr("ES256", "ed"), claims, p256()), ErrSignature},
		{"401/alg-confusion-EdDSA-header-P-256-key", signRaw(t, hdr("EdDSA", "ec"), claims, edKey()), ErrSignature},
		{"401/nil-prepared-key", signRaw(t, hdr("EdDSA", "nil"), claims, edKey()), ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, payload, err := VerifyCompact(tc.jws, keys)
			if !errors.Is(err, tc.want) || (err == nil) != (payload != nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		key  crypto.PublicKey
	}{
		{"400/P-384", p384().Public()},
		{"400/RSA", rsa3072().Public()},
		{"400/Ed25519-31-bytes", edKey().Public().(ed25519.PublicKey)[:31]},
		{"400/private-key", edKey()},
		{"400/nil", nil},
		{"400/already-prepared", ed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if k, err := NewVerifyKey(tc.key); !errors.Is(err, ErrUnsupported) || k != nil {
				t.Fatalf("NewVerifyKey = %v, %v; want ErrUnsupported", k, err)
			}
		})
	}
}

// --- the reference arithmetic: affine twisted Edwards over math/big ---

var (
	curveP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	curveL = func() *big.Int {
		l, _ := new(big.Int).SetString("27742317777372353535851937790883648493", 10)
		return l.Add(l, new(big.Int).Lsh(big.NewInt(1), 252))
	}()
	// curveD is -121665/121666 mod p.
	curveD = func() *big.Int {
		d := new(big.Int).ModInverse(big.NewInt(121666), curveP)
		d.Mul(d, big.NewInt(-121665))
		return d.Mod(d, curveP)
	}()
	sqrtM1 = new(big.Int).Exp(big.NewInt(2), new(big.Int).Rsh(new(big.Int).Sub(curveP, big.NewInt(1)), 2), curveP)
)

// edPoint is an affine point (x, y); the zero value is not a point.
type edPoint struct{ x, y *big.Int }

func mod(v *big.Int) *big.Int { return v.Mod(v, curveP) }

func (a edPoint) isIdentity() bool {
	return a.x != nil && a.x.Sign() == 0 && a.y.Cmp(big.NewInt(1)) == 0
}

func (a edPoint) neg() edPoint { return edPoint{mod(new(big.Int).Neg(a.x)), a.y} }

// add is the complete twisted Edwards addition for a = -1.
func (a edPoint) add(b edPoint) edPoint {
	t := mod(new(big.Int).Mul(curveD, new(big.Int).Mul(new(big.Int).Mul(a.x, b.x), new(big.Int).Mul(a.y, b.y))))
	xn := mod(new(big.Int).Add(new(big.Int).Mul(a.x, b.y), new(big.Int).Mul(a.y, b.x)))
	yn := mod(new(big.Int).Add(new(big.Int).Mul(a.y, b.y), new(big.Int).Mul(a.x, b.x)))
	xd := new(big.Int).ModInverse(mod(new(big.Int).Add(big.NewInt(1), t)), curveP)
	yd := new(big.Int).ModInverse(mod(new(big.Int).Sub(big.NewInt(1), t)), curveP)
	return edPoint{mod(xn.Mul(xn, xd)), mod(yn.Mul(yn, yd))}
}

// mul is [k]a by repeated addition: for the small k of these tests only.
func (a edPoint) mul(k *big.Int) edPoint {
	r := edPoint{big.NewInt(0), big.NewInt(1)}
	for i := int64(0); i < k.Int64(); i++ {
		r = r.add(a)
	}
	return r
}

// bytes is the canonical encoding: y little-endian, x's parity on top.
func (a edPoint) bytes() []byte {
	out := make([]byte, 32)
	a.y.FillBytes(out)
	slices.Reverse(out)
	out[31] |= byte(a.x.Bit(0)) << 7
	return out
}

// decodePoint reads an encoding as crypto/ed25519 does: y reduced mod p
// (non-canonical y accepted), the sign bit picking x, also when x = 0.
func decodePoint(b []byte) (edPoint, bool) {
	if len(b) != 32 {
		return edPoint{}, false
	}
	yb := slices.Clone(b)
	sign := yb[31] >> 7
	yb[31] &= 0x7f
	y := mod(leInt(yb))
	yy := mod(new(big.Int).Mul(y, y))
	u := mod(new(big.Int).Sub(yy, big.NewInt(1)))
	v := mod(new(big.Int).Add(new(big.Int).Mul(curveD, yy), big.NewInt(1)))
	xx := mod(new(big.Int).Mul(u, new(big.Int).ModInverse(v, curveP)))
	x := new(big.Int).Exp(xx, new(big.Int).Rsh(new(big.Int).Add(curveP, big.NewInt(3)), 3), curveP)
	if mod(new(big.Int).Mul(x, x)).Cmp(xx) != 0 {
		x = mod(x.Mul(x, sqrtM1))
	}
	if mod(new(big.Int).Mul(x, x)).Cmp(xx) != 0 {
		return edPoint{}, false
	}
	if byte(x.Bit(0)) != sign {
		x = mod(x.Neg(x))
	}
	return edPoint{x, y}, true
}

func identityEnc() []byte { return edPoint{big.NewInt(0), big.NewInt(1)}.bytes() }

// leInt reads little-endian bytes.
func leInt(b []byte) *big.Int {
	be := slices.Clone(b)
	slices.Reverse(be)
	return new(big.Int).SetBytes(be)
}

// le32 writes v (below 2^256) as 32 little-endian bytes.
func le32(t testing.TB, v *big.Int) []byte {
	t.Helper()
	if v.Sign() < 0 || v.BitLen() > 256 {
		t.Fatalf("le32 of %v", v)
	}
	out := make([]byte, 32)
	v.FillBytes(out)
	slices.Reverse(out)
	return out
}

// hramInt is k = SHA-512(R || A || M) mod L, over the bytes as sent.
func hramInt(r, a, msg []byte) *big.Int {
	h := sha512.New()
	h.Write(r)
	h.Write(a)
	h.Write(msg)
	return new(big.Int).Mod(leInt(h.Sum(nil)), curveL)
}

// signMixed signs msg for the key encoded as pub, which must be A+T for
// priv's A and a small-order T: R is the one priv's own signature of msg
// uses (r is derived from the seed as Ed25519 does), S = r + k*a with k
// hashed over pub. It returns the signature and k.
func signMixed(t testing.TB, priv ed25519.PrivateKey, pub, msg []byte) ([]byte, *big.Int) {
	t.Helper()
	h := sha512.Sum512(priv.Seed())
	s := slices.Clone(h[:32])
	s[0] &= 248
	s[31] &= 127
	s[31] |= 64
	a := leInt(s)
	rh := sha512.New()
	rh.Write(h[32:])
	rh.Write(msg)
	r := new(big.Int).Mod(leInt(rh.Sum(nil)), curveL)
	R := ed25519.Sign(priv, msg)[:32]
	k := hramInt(R, pub, msg)
	S := new(big.Int).Mod(new(big.Int).Add(r, new(big.Int).Mul(k, a)), curveL)
	return append(slices.Clone(R), le32(t, S)...), k
}

// smallEnc is one encoding of a point of order 1, 2, 4 or 8.
type smallEnc struct {
	name      string
	enc       []byte
	p         edPoint
	canonical bool
}

// smallOrderEncodings are the eight small-order points in their canonical
// encodings and the six non-canonical encodings that decode to one of them
// (y = p and y = p+1 with either sign bit, and x = 0 with the sign bit
// set). Each is checked here to be what it says.
func smallOrderEncodings(t testing.TB) []smallEnc {
	t.Helper()
	canon := []struct{ name, hex string }{
		{"identity", "0100000000000000000000000000000000000000000000000000000000000000"},
		{"order-2", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
		{"order-4-a", "0000000000000000000000000000000000000000000000000000000000000000"},
		{"order-4-b", "0000000000000000000000000000000000000000000000000000000000000080"},
		{"order-8-a", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"},
		{"order-8-b", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"},
		{"order-8-c", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"},
		{"order-8-d", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"},
	}
	var out []smallEnc
	for _, c := range canon {
		b, err := hex.DecodeString(c.hex)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, smallEnc{name: c.name, enc: b, canonical: true})
	}
	pPlus := func(k int64, sign byte) []byte {
		b := le32(t, new(big.Int).Add(curveP, big.NewInt(k)))
		b[31] |= sign
		return b
	}
	withSign := func(hexEnc string) []byte {
		b, _ := hex.DecodeString(hexEnc)
		b[31] |= 0x80
		return b
	}
	for _, n := range []struct {
		name string
		enc  []byte
	}{
		{"y-p-sign-0", pPlus(0, 0)},
		{"y-p-sign-1", pPlus(0, 0x80)},
		{"y-p+1-sign-0", pPlus(1, 0)},
		{"y-p+1-sign-1", pPlus(1, 0x80)},
		{"identity-negative-zero", withSign(canon[0].hex)},
		{"order-2-negative-zero", withSign(canon[1].hex)},
	} {
		out = append(out, smallEnc{name: "non-canonical-" + n.name, enc: n.enc})
	}
	for i := range out {
		e := &out[i]
		p, ok := decodePoint(e.enc)
		if !ok {
			t.Fatalf("%s does not decode", e.name)
		}
		if !p.mul(big.NewInt(8)).isIdentity() {
			t.Fatalf("%s is not of small order", e.name)
		}
		if bytes.Equal(p.bytes(), e.enc) != e.canonical {
			t.Fatalf("%s: canonical %v, re-encodes as %x", e.name, e.canonical, p.bytes())
		}
		e.p = p
	}
	return out
}
