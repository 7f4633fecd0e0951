package keyring

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/blindgate/blindgate/keyservice/shamir"
)

// Custody is how the master key is held, recorded in the sealed file's
// header (format version 3) where the sealed key service reads it before it
// has the master key: the Shamir share set (threshold unseal), an HSM
// wrapping of the master key, or both (the shares then recover the keyring
// if the HSM is lost). Neither holds anything secret. Both are in the AAD:
// an altered header makes unsealing fail, so the worst a forger achieves is
// a refused unseal. A keyring without custody (versions 1 and 2) has a
// whole master key or an n-of-n XOR split, whose count the service is told
// (-unseal-shares).
type Custody struct {
	Shares *ShareSet `json:"shares,omitempty"`
	HSM    *HSMSeal  `json:"hsm,omitempty"`
}

// Empty reports whether c records nothing (a version 1 or 2 keyring).
func (c Custody) Empty() bool { return c.Shares == nil && c.HSM == nil }

// SchemeShamir is the share scheme of a ShareSet: keyservice/shamir, Vault's
// share layout (32 bytes of y values, then the x coordinate).
const SchemeShamir = "shamir-gf256"

// ShareSize is the size of one threshold share of the master key.
const ShareSize = MasterKeySize + 1

// shareCheckSize is the length of a share's check value.
const shareCheckSize = 16

var setIDPattern = regexp.MustCompile(`^[0-9a-f]{8}$`)

// ShareSet describes one split of the master key: K of N shares open it.
// Set names the split (drawn anew by every rekey and master rotation), so a
// share's id, "<set>-<x>", is unique across splits and says which custodian
// holds it without saying anything about the share. Check holds, for each
// share, a keyed hash of it: the sealed service knows a share as soon as it
// arrives (a wrong or superseded share is refused with its own error
// instead of spoiling the round), and learns its id for the audit trail. A
// share has 256 bits of entropy, so its check value reveals nothing usable.
type ShareSet struct {
	Scheme    string   `json:"scheme"`
	Set       string   `json:"set"`
	Threshold int      `json:"threshold"`
	Total     int      `json:"total"`
	Check     [][]byte `json:"check"`
}

// HSMSeal is the master key encrypted under an AES key that never leaves a
// PKCS#11 token (AES-GCM done by the token): Wrapped is the 12-byte nonce
// then the ciphertext and tag. The key service unseals at start by asking
// the token to decrypt it (seal/pkcs11, built with the hsm tag).
type HSMSeal struct {
	KeyLabel string `json:"key_label"`
	Wrapped  []byte `json:"wrapped"`
}

// HSMWrappedSize is the size of HSMSeal.Wrapped: nonce, master key, tag.
const HSMWrappedSize = 12 + MasterKeySize + 16

// ErrWrongShare is returned for a share that is not one of the keyring's
// share set (a typo, another keyring's share, or one replaced by a rekey).
var ErrWrongShare = errors.New("keyring: not a share of this keyring's current share set")

// SplitThreshold splits master into total shares of which threshold open
// it, with a fresh set id. 2 <= threshold <= total <= MaxShares.
func SplitThreshold(master []byte, total, threshold int) (*ShareSet, [][]byte, error) {
	if err := checkMasterKey(master); err != nil {
		return nil, nil, err
	}
	if threshold < 2 || threshold > total || total > MaxShares {
		return nil, nil, fmt.Errorf("%w: %d of %d; want 2 <= threshold <= shares <= %d", ErrInvalidShare, threshold, total, MaxShares)
	}
	shares, err := shamir.Split(master, total, threshold)
	if err != nil {
		return nil, nil, fmt.Errorf("keyring: %w", err)
	}
	var id [4]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, nil, fmt.Errorf("keyring: share set id: %w", err)
	}
	s := &ShareSet{Scheme: SchemeShamir, Set: hex.EncodeToString(id[:]), Threshold: threshold, Total: total}
	for _, sh := range shares {
		s.Check = append(s.Check, s.check(sh))
	}
	return s, shares, nil
}

func (s *ShareSet) check(share []byte) []byte {
	m := hmac.New(sha256.New, []byte("blindgate share check v1 "+s.Set))
	m.Write(share)
	return m.Sum(nil)[:shareCheckSize]
}

// ShareID is the public id of share number x: "<set>-<x>".
func (s *ShareSet) ShareID(x int) string { return s.Set + "-" + strconv.Itoa(x) }

// Identify returns the number (x coordinate, 1..Total) of a share of this
// set, or ErrWrongShare.
func (s *ShareSet) Identify(share []byte) (int, error) {
	if len(share) != ShareSize {
		return 0, fmt.Errorf("%w: a share of a %d-of-%d set is %d bytes, not %d", ErrWrongShare, s.Threshold, s.Total, ShareSize, len(share))
	}
	x := shamir.X(share)
	if x < 1 || x > s.Total || subtle.ConstantTimeCompare(s.check(share), s.Check[x-1]) != 1 {
		return 0, ErrWrongShare
	}
	return x, nil
}

// Combine recovers the master key from at least Threshold distinct shares of
// this set; it returns their ids, for the audit trail, even on error.
func (s *ShareSet) Combine(shares [][]byte) ([]byte, []string, error) {
	var ids []string
	seen := map[int]bool{}
	for _, sh := range shares {
		x, err := s.Identify(sh)
		if err != nil {
			return nil, ids, err
		}
		if seen[x] {
			return nil, ids, fmt.Errorf("%w: share %s given twice", ErrInvalidShare, s.ShareID(x))
		}
		seen[x] = true
		ids = append(ids, s.ShareID(x))
	}
	if len(shares) < s.Threshold {
		return nil, ids, fmt.Errorf("%w: %d shares given, %d needed", ErrInvalidShare, len(shares), s.Threshold)
	}
	master, err := shamir.Combine(shares)
	if err != nil {
		return nil, ids, fmt.Errorf("keyring: %w", err)
	}
	return master, ids, nil
}

// String describes the set without its check values: "2-of-3 (set 3f9a1c07)".
func (s *ShareSet) String() string {
	return fmt.Sprintf("%d-of-%d (set %s)", s.Threshold, s.Total, s.Set)
}

func (s *ShareSet) validate() error {
	switch {
	case s.Scheme != SchemeShamir:
		return fmt.Errorf("share scheme %q is not %q", s.Scheme, SchemeShamir)
	case !setIDPattern.MatchString(s.Set):
		return errors.New("share set id is malformed")
	case s.Threshold < 2 || s.Threshold > s.Total || s.Total > MaxShares:
		return fmt.Errorf("share set %d of %d is out of range", s.Threshold, s.Total)
	case len(s.Check) != s.Total:
		return errors.New("share set has not one check value per share")
	}
	for _, c := range s.Check {
		if len(c) != shareCheckSize {
			return errors.New("share check value has the wrong size")
		}
	}
	return nil
}

var keyLabelPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (h *HSMSeal) validate() error {
	switch {
	case !keyLabelPattern.MatchString(h.KeyLabel):
		return errors.New("hsm key label must be 1-64 of [A-Za-z0-9._-]")
	case len(h.Wrapped) != HSMWrappedSize:
		return fmt.Errorf("hsm wrapped master key is %d bytes, want %d", len(h.Wrapped), HSMWrappedSize)
	}
	return nil
}

func (c Custody) validate() error {
	if c.Shares != nil {
		if err := c.Shares.validate(); err != nil {
			return err
		}
	}
	if c.HSM != nil {
		return c.HSM.validate()
	}
	return nil
}

// canonical is the custody's bytes in the AAD: encoding/json of the
// validated struct (fixed member order, standard base64).
func (c Custody) canonical() []byte {
	b, _ := json.Marshal(c) // plain data always marshals
	return b
}

// ParseShare decodes one share as custodians hold it: base64 (standard or
// URL alphabet, padded or not, whitespace ignored) of a whole master key or
// n-of-n share (32 bytes) or of a threshold share (33 bytes). The error
// never quotes the input.
func ParseShare(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		k, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(k) != MasterKeySize && len(k) != ShareSize {
			clear(k)
			return nil, fmt.Errorf("%w: decodes to %d bytes, want %d or %d", ErrInvalidShare, len(k), MasterKeySize, ShareSize)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: not base64 (standard or URL alphabet)", ErrInvalidShare)
}

// ReadCustody returns the custody recorded in the sealed keyring's header at
// path, without the master key (unauthenticated until the keyring opens);
// the zero Custody for a keyring that records none.
func ReadCustody(path string) (Custody, error) {
	data, err := readSealed(path)
	if err != nil {
		return Custody{}, err
	}
	env, _, err := parseEnvelope(data)
	if err != nil {
		return Custody{}, err
	}
	return env.custody(), nil
}

// custodyMembers are the header members of version 3; each appears only as
// a member name (values are base64, hex or labels without quotes).
var custodyMembers = [][]byte{[]byte(`"shares"`), []byte(`"hsm"`)}
