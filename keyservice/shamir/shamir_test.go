package shamir

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// vault_vectors.json holds splits made with HashiCorp Vault's shamir package
// (its Split and GF(2^8) log/exp tables, with x coordinates drawn at random
// from 1..255 as newer Vault does), each checked there with Vault's Combine.
// The same run checked that Vault's Combine recovers secrets from this
// package's Split and that mul and inv agree with Vault's tables on all
// 65,536 products.
type vector struct {
	Secret    string   `json:"secret"`
	Threshold int      `json:"threshold"`
	Shares    []string `json:"shares"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/vault_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	return vs
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCombineVaultVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		secret := unhex(t, v.Secret)
		var shares [][]byte
		for _, s := range v.Shares {
			shares = append(shares, unhex(t, s))
		}
		// Every window of threshold consecutive shares (and, wrapping, the
		// last with the first) recovers the secret; threshold-1 do not.
		for start := range shares {
			sub := make([][]byte, 0, v.Threshold)
			for i := range v.Threshold {
				sub = append(sub, shares[(start+i)%len(shares)])
			}
			got, err := Combine(sub)
			if err != nil {
				t.Fatalf("%d-of-%d from share %d: %v", v.Threshold, len(shares), start, err)
			}
			if !bytes.Equal(got, secret) {
				t.Fatalf("%d-of-%d from share %d: wrong secret", v.Threshold, len(shares), start)
			}
			if v.Threshold > 2 && len(secret) >= 16 {
				fewer, err := Combine(sub[:v.Threshold-1])
				if err != nil || bytes.Equal(fewer, secret) {
					t.Fatalf("threshold-1 shares recovered the secret (err %v)", err)
				}
			}
		}
		// More shares than the threshold still recover it.
		if got, err := Combine(shares); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("all %d shares: %v", len(shares), err)
		}
	}
}

func TestSplitCombineEverySubset(t *testing.T) {
	secret := bytes.Repeat([]byte{0x5a, 0x00, 0xff, 0x01}, 8)
	const n, k = 5, 3
	shares, err := Split(secret, n, k)
	if err != nil {
		t.Fatal(err)
	}
	for i, sh := range shares {
		if X(sh) != i+1 || len(sh) != len(secret)+1 {
			t.Fatalf("share %d: x %d, %d bytes", i, X(sh), len(sh))
		}
	}
	for mask := range 1 << n {
		var sub [][]byte
		for i := range n {
			if mask&(1<<i) != 0 {
				sub = append(sub, shares[i])
			}
		}
		if len(sub) < 2 {
			continue
		}
		got, err := Combine(sub)
		if err != nil {
			t.Fatal(err)
		}
		if ok := bytes.Equal(got, secret); ok != (len(sub) >= k) {
			t.Errorf("%d shares (mask %05b): recovered %v", len(sub), mask, ok)
		}
	}
}

func TestField(t *testing.T) {
	for _, c := range []struct{ a, b, want byte }{
		{3, 7, 9}, {0, 3, 0}, {3, 0, 0}, {1, 0xe5, 0xe5},
		{0x57, 0x83, 0xc1}, {0x57, 0x13, 0xfe}, // FIPS-197 section 4.2
	} {
		if got := mul(c.a, c.b); got != c.want {
			t.Errorf("mul(%#x, %#x) = %#x, want %#x", c.a, c.b, got, c.want)
		}
	}
	for a := 1; a < 256; a++ {
		if mul(byte(a), inv(byte(a))) != 1 {
			t.Fatalf("inv(%#x) is not the inverse", a)
		}
	}
}

func TestRefusals(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, c := range []struct {
		name string
		n, k int
		s    []byte
	}{
		{"threshold-1", 3, 1, secret}, {"threshold>shares", 2, 3, secret}, {"too-many", 256, 2, secret}, {"empty", 3, 2, nil},
	} {
		if _, err := Split(c.s, c.n, c.k); !errors.Is(err, ErrParams) {
			t.Errorf("split/%s: %v, want ErrParams", c.name, err)
		}
	}
	shares, _ := Split(secret, 3, 2)
	zeroX := append([]byte(nil), shares[1]...)
	zeroX[len(zeroX)-1] = 0
	for _, c := range []struct {
		name   string
		shares [][]byte
	}{
		{"one", shares[:1]},
		{"same-x", [][]byte{shares[0], shares[0]}},
		{"zero-x", [][]byte{shares[0], zeroX}},
		{"lengths", [][]byte{shares[0], shares[1][1:]}},
		{"too-short", [][]byte{{1}, {2}}},
	} {
		if _, err := Combine(c.shares); !errors.Is(err, ErrShares) {
			t.Errorf("combine/%s: %v, want ErrShares", c.name, err)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// With zero coefficients every share's y is the secret: the randomness of
// Split is what hides it.
func TestSplitUsesItsRandomness(t *testing.T) {
	secret := []byte{1, 2, 3}
	shares, err := split(zeros{}, secret, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shares[2][:3], secret) {
		t.Fatal("the polynomial is not coef[0] + 0*x")
	}
	made, _ := Split(secret, 3, 2)
	if bytes.Equal(made[0][:3], secret) && bytes.Equal(made[1][:3], secret) {
		t.Fatal("Split's shares show the secret")
	}
}

// FuzzSplitCombine: any secret, count and threshold either is refused or
// splits into shares of which the first threshold recover it; Combine never
// panics on what Split did not make.
func FuzzSplitCombine(f *testing.F) {
	f.Add([]byte("master key"), uint8(5), uint8(3), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, secret []byte, n, k uint8, junk []byte) {
		shares, err := Split(secret, int(n), int(k))
		if err != nil {
			if !errors.Is(err, ErrParams) {
				t.Fatal(err)
			}
		} else {
			got, err := Combine(shares[:k])
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("%d of %d: %v", k, n, err)
			}
		}
		_, _ = Combine([][]byte{junk, junk})
		if len(junk) > 1 {
			other := append([]byte(nil), junk...)
			other[len(other)-1]++
			_, _ = Combine([][]byte{junk, other})
		}
	})
}
