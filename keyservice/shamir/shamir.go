// Package shamir splits a secret into n shares of which any k recover it
// (Shamir's secret sharing over GF(2^8), one polynomial per byte), for the
// key service's threshold unseal (PCI DSS 3.6.1.2: split knowledge and dual
// control without one lost share losing the keyring).
//
// The share layout is HashiCorp Vault's: the y values, one per secret byte,
// then one byte holding the x coordinate. The field is AES's (reduction
// polynomial x^8+x^4+x^3+x+1, 0x11b), so shares made by Vault's shamir
// package combine here and the other way round; shamir_test.go checks this
// against vectors made with Vault's code. Unlike Vault's, Split numbers its
// shares 1..n, so a share's x coordinate is also its public id ("share 2"),
// and the field arithmetic takes no table lookups or branches on secret
// data.
package shamir

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
)

// MaxShares is the largest n: x coordinates are the non-zero field elements.
const MaxShares = 255

// Errors; none carries share or secret bytes.
var (
	ErrParams = errors.New("shamir: invalid parameters")
	ErrShares = errors.New("shamir: invalid shares")
)

// Split returns n shares of secret, any k of which recover it with Combine
// and any k-1 of which say nothing about it. 2 <= k <= n <= MaxShares.
// Share i (from 0) has x coordinate i+1 as its last byte.
func Split(secret []byte, n, k int) ([][]byte, error) {
	return split(rand.Reader, secret, n, k)
}

func split(random io.Reader, secret []byte, n, k int) ([][]byte, error) {
	switch {
	case len(secret) == 0:
		return nil, fmt.Errorf("%w: empty secret", ErrParams)
	case k < 2 || k > n || n > MaxShares:
		return nil, fmt.Errorf("%w: want 2 <= threshold (%d) <= shares (%d) <= %d", ErrParams, k, n, MaxShares)
	}
	shares := make([][]byte, n)
	for i := range shares {
		shares[i] = make([]byte, len(secret)+1)
		shares[i][len(secret)] = byte(i + 1)
	}
	coef := make([]byte, k) // coef[0] is the secret byte; the rest random
	defer clear(coef)
	for b, s := range secret {
		if _, err := io.ReadFull(random, coef[1:]); err != nil {
			return nil, fmt.Errorf("shamir: random: %w", err)
		}
		coef[0] = s
		for i := range shares {
			shares[i][b] = eval(coef, byte(i+1))
		}
	}
	return shares, nil
}

// eval is Horner's rule: coef[0] + x*(coef[1] + x*(...)).
func eval(coef []byte, x byte) byte {
	var y byte
	for i := len(coef) - 1; i >= 0; i-- {
		y = mul(y, x) ^ coef[i]
	}
	return y
}

// Combine recovers the secret from at least threshold shares of one Split
// (their x coordinates distinct and non-zero, their lengths equal). Given
// fewer than the threshold, or shares of different splits, it returns a
// wrong secret without an error: Shamir's scheme cannot tell. The caller
// checks the result (the key service: the keyring's GCM tag).
func Combine(shares [][]byte) ([]byte, error) {
	if len(shares) < 2 || len(shares) > MaxShares {
		return nil, fmt.Errorf("%w: %d shares, want 2-%d", ErrShares, len(shares), MaxShares)
	}
	size := len(shares[0])
	if size < 2 {
		return nil, fmt.Errorf("%w: a share is at least 2 bytes", ErrShares)
	}
	xs := make([]byte, len(shares))
	for i, sh := range shares {
		if len(sh) != size {
			return nil, fmt.Errorf("%w: shares %d and 1 differ in length", ErrShares, i+1)
		}
		xs[i] = sh[size-1]
		if xs[i] == 0 {
			return nil, fmt.Errorf("%w: share %d has x coordinate 0", ErrShares, i+1)
		}
		for j := range i {
			if xs[j] == xs[i] {
				return nil, fmt.Errorf("%w: shares %d and %d have the same x coordinate %d", ErrShares, j+1, i+1, xs[i])
			}
		}
	}
	// The Lagrange basis at 0 depends on the x coordinates only (public):
	// l_i = prod_{j!=i} x_j / (x_j - x_i), subtraction being XOR.
	basis := make([]byte, len(xs))
	for i := range xs {
		l := byte(1)
		for j := range xs {
			if i != j {
				l = mul(l, mul(xs[j], inv(xs[j]^xs[i])))
			}
		}
		basis[i] = l
	}
	secret := make([]byte, size-1)
	for b := range secret {
		var y byte
		for i, sh := range shares {
			y ^= mul(sh[b], basis[i])
		}
		secret[b] = y
	}
	return secret, nil
}

// X returns a share's x coordinate (its id), 0 for a malformed share.
func X(share []byte) int {
	if len(share) < 2 {
		return 0
	}
	return int(share[len(share)-1])
}

// mul multiplies in GF(2^8) modulo 0x11b, in constant time.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= byte(subtle.ConstantTimeByteEq(b&1, 1)) * a // a if the low bit of b is set
		hi := a >> 7
		a = a<<1 ^ hi*0x1b
		b >>= 1
	}
	return p
}

// inv returns a^254 = a^-1 (0 for 0), by square and multiply.
func inv(a byte) byte {
	// 254 = 0b11111110
	r := byte(1)
	x := a
	for i := 1; i < 8; i++ {
		x = mul(x, x) // a^(2^i)
		r = mul(r, x)
	}
	return r
}
