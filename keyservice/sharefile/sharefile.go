// Package sharefile hands master-key shares to their custodians encrypted,
// each to the custodian's age public key (age-encryption.org), so that no
// share is ever shown in clear on the operator's screen or written to disk
// in clear. A share file is an ASCII-armored age file holding the share as
// custodians type it (base64 and a newline): `age -d -i key.txt FILE` gives
// what `keyservice unseal` reads.
package sharefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/blindgate/blindgate/keyservice/keyring"
)

// ErrRecipients is returned for a recipient list that is not one age public
// key per share.
var ErrRecipients = errors.New("sharefile: invalid recipients")

// ParseRecipients parses a comma-separated list of age public keys (X25519
// "age1..." or hybrid post-quantum "age1pq1..."); SSH keys and plugins are
// refused: a custodian's key should be made for this.
func ParseRecipients(list string) ([]age.Recipient, error) {
	var (
		out  []age.Recipient
		seen []string
	)
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if slices.Contains(seen, s) {
			return nil, fmt.Errorf("%w: %s is given twice: one custodian would hold two shares", ErrRecipients, s)
		}
		seen = append(seen, s)
		rs, err := age.ParseRecipients(strings.NewReader(s))
		if err != nil || len(rs) != 1 {
			return nil, fmt.Errorf("%w: %q is not an age public key (age1...)", ErrRecipients, s)
		}
		out = append(out, rs[0])
	}
	return out, nil
}

// Encrypt returns the armored age file of one share for one recipient.
func Encrypt(share []byte, r age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return nil, fmt.Errorf("sharefile: %w", err)
	}
	text := []byte(keyring.EncodeMasterKey(share) + "\n")
	defer clear(text)
	if _, err := w.Write(text); err != nil {
		return nil, fmt.Errorf("sharefile: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("sharefile: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("sharefile: %w", err)
	}
	return buf.Bytes(), nil
}

// Decrypt opens a share file with a custodian's identities (what `age -d`
// does): the share as parsed by keyring.ParseShare.
func Decrypt(file []byte, ids ...age.Identity) ([]byte, error) {
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(file)), ids...)
	if err != nil {
		return nil, fmt.Errorf("sharefile: %w", err)
	}
	text, err := io.ReadAll(io.LimitReader(r, 256))
	if err != nil {
		return nil, fmt.Errorf("sharefile: %w", err)
	}
	defer clear(text)
	return keyring.ParseShare(string(text))
}

// Name is the file name of share x of set: share-<set>-<x>.age.
func Name(set *keyring.ShareSet, x int) string {
	return "share-" + set.ShareID(x) + ".age"
}

// WriteAll encrypts share i to recipient i and writes it to dir as Name,
// mode 0600, refusing to replace a file. On error the files it wrote are
// removed. It returns the paths written.
func WriteAll(dir string, set *keyring.ShareSet, shares [][]byte, rs []age.Recipient) (paths []string, err error) {
	if len(rs) != len(shares) {
		return nil, fmt.Errorf("%w: %d recipients for %d shares (one each, in share order)", ErrRecipients, len(rs), len(shares))
	}
	defer func() {
		if err != nil {
			for _, p := range paths {
				_ = os.Remove(p)
			}
			paths = nil
		}
	}()
	for i, sh := range shares {
		data, err := Encrypt(sh, rs[i])
		if err != nil {
			return paths, err
		}
		p := filepath.Join(dir, Name(set, i+1))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return paths, fmt.Errorf("sharefile: %w", err)
		}
		paths = append(paths, p)
		_, werr := f.Write(data)
		serr := f.Sync()
		if cerr := f.Close(); werr == nil && serr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = serr
		}
		if werr != nil {
			return paths, fmt.Errorf("sharefile: write %s: %w", p, werr)
		}
	}
	return paths, nil
}
