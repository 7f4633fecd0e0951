package keyring

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// MasterKeySize is the size of the master key and of each key share.
const MasterKeySize = 32

// MaxShares bounds SplitKey and CombineShares.
const MaxShares = 16

// Errors of master keys and shares. Messages never contain key material.
var (
	ErrInvalidMasterKey = errors.New("keyring: invalid master key")
	ErrInvalidShare     = errors.New("keyring: invalid key share")
)

func checkMasterKey(master []byte) error {
	if len(master) != MasterKeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrInvalidMasterKey, len(master), MasterKeySize)
	}
	return nil
}

// GenerateMasterKey returns 32 random bytes.
func GenerateMasterKey() ([]byte, error) {
	k := make([]byte, MasterKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("keyring: master key: %w", err)
	}
	return k, nil
}

// EncodeMasterKey returns the standard base64 (padded) of a master key or
// share: the form operators store and ParseMasterKey reads.
func EncodeMasterKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// ParseMasterKey decodes a master key or share given as base64, standard or
// URL alphabet, padded or not, with surrounding whitespace ignored. It must
// decode to exactly 32 bytes. The error never quotes the input.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidMasterKey)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		k, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(k) != MasterKeySize {
			clear(k)
			return nil, fmt.Errorf("%w: decodes to %d bytes, want %d", ErrInvalidMasterKey, len(k), MasterKeySize)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: not base64 (standard or URL alphabet)", ErrInvalidMasterKey)
}

// SplitKey splits a master key into n shares for split knowledge and dual
// control (PCI DSS 3.6.1.2): n-1 shares are random and the last is the master
// XOR all of them, so each share alone, or any n-1 of them, says nothing
// about the master key. All n are needed (n-of-n, not a threshold scheme: a
// lost share means a lost keyring, so custodians keep backups of their
// share). n = 1 returns a copy of the master key.
func SplitKey(master []byte, n int) ([][]byte, error) {
	if err := checkMasterKey(master); err != nil {
		return nil, err
	}
	if n < 1 || n > MaxShares {
		return nil, fmt.Errorf("%w: share count %d, want 1-%d", ErrInvalidShare, n, MaxShares)
	}
	shares := make([][]byte, n)
	last := make([]byte, MasterKeySize)
	copy(last, master)
	for i := range n - 1 {
		sh := make([]byte, MasterKeySize)
		if _, err := rand.Read(sh); err != nil {
			clear(last)
			return nil, fmt.Errorf("keyring: share: %w", err)
		}
		subtle.XORBytes(last, last, sh)
		shares[i] = sh
	}
	shares[n-1] = last
	return shares, nil
}

// CombineShares XORs shares back into the master key. Each share must be 32
// bytes; an all-zero share or two equal shares are refused, because they
// would silently cancel out (a custodian entering a share twice).
func CombineShares(shares ...[]byte) ([]byte, error) {
	if len(shares) < 1 || len(shares) > MaxShares {
		return nil, fmt.Errorf("%w: share count %d, want 1-%d", ErrInvalidShare, len(shares), MaxShares)
	}
	var zero [MasterKeySize]byte
	for i, sh := range shares {
		if len(sh) != MasterKeySize {
			return nil, fmt.Errorf("%w: share %d is %d bytes, want %d", ErrInvalidShare, i+1, len(sh), MasterKeySize)
		}
		if subtle.ConstantTimeCompare(sh, zero[:]) == 1 {
			return nil, fmt.Errorf("%w: share %d is all zeros", ErrInvalidShare, i+1)
		}
		for j := range i {
			if subtle.ConstantTimeCompare(sh, shares[j]) == 1 {
				return nil, fmt.Errorf("%w: shares %d and %d are the same", ErrInvalidShare, j+1, i+1)
			}
		}
	}
	master := make([]byte, MasterKeySize)
	for _, sh := range shares {
		subtle.XORBytes(master, master, sh)
	}
	return master, nil
}
