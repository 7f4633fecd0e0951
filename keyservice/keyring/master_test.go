package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateMasterKey(t *testing.T) {
	a, b := mustMaster(t), mustMaster(t)
	if len(a) != MasterKeySize || bytes.Equal(a, b) {
		t.Fatalf("master keys: %d bytes, equal=%v", len(a), bytes.Equal(a, b))
	}
}

func TestParseMasterKey(t *testing.T) {
	k := mustMaster(t)
	k[0], k[1] = 0xfb, 0xff // make the std and URL alphabets differ
	tests := []struct {
		name string
		in   string
		err  error
	}{
		{"200/std", base64.StdEncoding.EncodeToString(k), nil},
		{"200/raw-std", base64.RawStdEncoding.EncodeToString(k), nil},
		{"200/url", base64.URLEncoding.EncodeToString(k), nil},
		{"200/raw-url", base64.RawURLEncoding.EncodeToString(k), nil},
		{"200/encoded", EncodeMasterKey(k), nil},
		{"200/whitespace", "  " + EncodeMasterKey(k) + "\n", nil},
		{"400/empty", "", ErrInvalidMasterKey},
		{"400/blank", " \n", ErrInvalidMasterKey},
		{"400/31-bytes", base64.StdEncoding.EncodeToString(k[:31]), ErrInvalidMasterKey},
		{"400/33-bytes", base64.StdEncoding.EncodeToString(append(bytes.Clone(k), 1)), ErrInvalidMasterKey},
		{"400/hex", strings.Repeat("ab", 32) + "!", ErrInvalidMasterKey},
		{"400/mixed-alphabets", "+" + base64.RawURLEncoding.EncodeToString(k)[1:42] + "_", ErrInvalidMasterKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMasterKey(tt.in)
			if tt.err == nil {
				if err != nil || !bytes.Equal(got, k) {
					t.Fatalf("ParseMasterKey = %x, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tt.err) || got != nil {
				t.Fatalf("ParseMasterKey = %v, want %v", err, tt.err)
			}
			if strings.TrimSpace(tt.in) != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
				t.Fatalf("error quotes the input: %v", err)
			}
		})
	}
}

func TestSplitCombine(t *testing.T) {
	master := mustMaster(t)
	for n := 1; n <= 5; n++ {
		shares, err := SplitKey(master, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(shares) != n {
			t.Fatalf("n=%d: %d shares", n, len(shares))
		}
		for i, s := range shares {
			if len(s) != MasterKeySize || (n > 1 && bytes.Equal(s, master)) {
				t.Fatalf("n=%d share %d reveals the master key", n, i)
			}
			// Shares travel as text: they must survive the master key encoding.
			if p, err := ParseMasterKey(EncodeMasterKey(s)); err != nil || !bytes.Equal(p, s) {
				t.Fatalf("share does not round-trip as text: %v", err)
			}
		}
		got, err := CombineShares(shares...)
		if err != nil || !bytes.Equal(got, master) {
			t.Fatalf("n=%d: combine = %v", n, err)
		}
		// Order does not matter.
		rev := make([][]byte, n)
		for i := range shares {
			rev[n-1-i] = shares[i]
		}
		if got, _ := CombineShares(rev...); !bytes.Equal(got, master) {
			t.Fatalf("n=%d: reversed order gave another key", n)
		}
		if n > 1 {
			if got, err := CombineShares(shares[:n-1]...); err == nil && bytes.Equal(got, master) {
				t.Fatalf("n=%d: n-1 shares gave the master key", n)
			}
		}
	}
	// Shares from two splits do not mix.
	a, _ := SplitKey(master, 2)
	b, _ := SplitKey(master, 2)
	if bytes.Equal(a[0], b[0]) {
		t.Fatal("two splits drew the same random share")
	}
	if got, _ := CombineShares(a[0], b[1]); bytes.Equal(got, master) {
		t.Fatal("shares of different splits combined to the master key")
	}
}

func TestSplitCombineErrors(t *testing.T) {
	master := mustMaster(t)
	shares, _ := SplitKey(master, 3)
	tests := []struct {
		name string
		call func() error
		err  error
	}{
		{"400/split-zero", func() error { _, err := SplitKey(master, 0); return err }, ErrInvalidShare},
		{"400/split-too-many", func() error { _, err := SplitKey(master, MaxShares+1); return err }, ErrInvalidShare},
		{"400/split-short-master", func() error { _, err := SplitKey(master[:16], 2); return err }, ErrInvalidMasterKey},
		{"400/combine-none", func() error { _, err := CombineShares(); return err }, ErrInvalidShare},
		{"400/combine-short", func() error { _, err := CombineShares(shares[0], shares[1][:31]); return err }, ErrInvalidShare},
		{"400/combine-duplicate", func() error { _, err := CombineShares(shares[0], shares[1], shares[0]); return err }, ErrInvalidShare},
		{"400/combine-zero", func() error { _, err := CombineShares(shares[0], make([]byte, 32)); return err }, ErrInvalidShare},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
		})
	}
}

// TestSharesUnsealKeyring is the unseal ceremony end to end.
func TestSharesUnsealKeyring(t *testing.T) {
	kr := mustNew(t, "")
	master := mustMaster(t)
	path := filepath.Join(t.TempDir(), "kr")
	if err := Save(path, kr, master); err != nil {
		t.Fatal(err)
	}
	shares, _ := SplitKey(master, 3)
	var texts []string
	for _, s := range shares {
		texts = append(texts, EncodeMasterKey(s))
	}
	var parsed [][]byte
	for _, s := range texts {
		p, err := ParseMasterKey(s)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, p)
	}
	combined, err := CombineShares(parsed...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, combined); err != nil {
		t.Fatal(err)
	}
	wrong, _ := CombineShares(parsed[:2]...)
	if _, err := Load(path, wrong); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("two of three shares: %v", err)
	}
}
