package operators

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password policy (PCI DSS v4.0.1 8.3.6: at least 12 characters, with
// both letters and digits).
const (
	MinPasswordLen = 12  // characters (runes)
	MaxPasswordLen = 128 // characters; bounds the work an attacker can make us do
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams: m=64 MiB, t=1, p=2. Measured on the 2-core build machine a
// hash takes about 100 ms (t=2 took ~120-170 ms, t=3 ~180-230 ms), which is
// the budget for an interactive login. This exceeds OWASP's argon2id
// minimum (m=19 MiB, t=2, p=1) in total work. Hashes record their own
// parameters, so raising these later only affects new and rehashed passwords.
func DefaultParams() Params {
	return Params{Memory: 64 * 1024, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32}
}

// Limits on parameters read back from a stored hash, so a tampered record
// cannot make a login allocate gigabytes or spin for minutes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 16
	maxKeyLen    = 128
	maxSaltLen   = 64
)

func (p Params) validate() error {
	switch {
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemoryKiB:
		return fmt.Errorf("memory %d KiB out of range", p.Memory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("time %d out of range", p.Time)
	case p.Threads < 1:
		return errors.New("threads must be >= 1")
	case p.SaltLen < 8 || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length %d out of range", p.SaltLen)
	case p.KeyLen < 16 || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length %d out of range", p.KeyLen)
	}
	return nil
}

var b64 = base64.RawStdEncoding // PHC strings use unpadded standard base64

// hashPassword returns a PHC-format argon2id string with a fresh salt.
// dummyPHC returns a well-formed argon2id PHC string with p's cost and a
// random salt and "hash": verifying any password against it costs exactly a
// real verification and never matches. Unknown usernames are checked against
// it, so timing does not tell which usernames exist, and building it does not
// run argon2 (whose 64 MiB working set would otherwise sit on the heap of an
// idle gateway).
func dummyPHC(p Params) string {
	salt, key := make([]byte, p.SaltLen), make([]byte, p.KeyLen)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(key)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func hashPassword(password string, p Params) string {
	salt := make([]byte, p.SaltLen)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// errBadHash is internal: a stored hash that does not parse. It is never
// shown to the user (Authenticate answers ErrBadCredentials).
var errBadHash = errors.New("operators: malformed password hash")

// parseHash reads a PHC argon2id string.
func parseHash(phc string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(phc, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, errBadHash
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &threads); err != nil || threads == 0 || threads > 255 {
		return p, nil, nil, errBadHash
	}
	p.Threads = uint8(threads)
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return p, nil, nil, errBadHash
	}
	if key, err = b64.DecodeString(parts[5]); err != nil {
		return p, nil, nil, errBadHash
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if p.validate() != nil {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// verifyPassword checks password against a PHC hash in constant time. It
// reports whether the hash was made with parameters other than want, so the
// caller can rehash after a successful login.
func verifyPassword(password, phc string, want Params) (ok, rehash bool, err error) {
	p, salt, key, err := parseHash(phc)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	ok = subtle.ConstantTimeCompare(got, key) == 1
	rehash = p.Memory != want.Memory || p.Time != want.Time || p.Threads != want.Threads ||
		p.KeyLen != want.KeyLen || p.SaltLen != want.SaltLen
	return ok, rehash, nil
}

// CheckPassword applies the password policy: 12 to 128 characters of valid
// UTF-8, at least one letter and one digit (any script: unicode.IsLetter,
// unicode.IsDigit), not the username. The error wraps ErrWeakPassword and
// says why (never echoing the password).
func CheckPassword(username, password string) error {
	if !utf8.ValidString(password) {
		return fmt.Errorf("%w: not valid UTF-8", ErrWeakPassword)
	}
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLen {
		return fmt.Errorf("%w: must be at least %d characters", ErrWeakPassword, MinPasswordLen)
	}
	if n > MaxPasswordLen {
		return fmt.Errorf("%w: must be at most %d characters", ErrWeakPassword, MaxPasswordLen)
	}
	if !strings.ContainsFunc(password, unicode.IsLetter) || !strings.ContainsFunc(password, unicode.IsDigit) {
		return fmt.Errorf("%w: must contain both letters and digits", ErrWeakPassword)
	}
	if strings.EqualFold(strings.TrimSpace(password), strings.TrimSpace(username)) {
		return fmt.Errorf("%w: must not be the username", ErrWeakPassword)
	}
	return nil
}

// GeneratePassword returns a random 26-character password (128 bits, base32
// letters and digits), for `operators add` when no password is given. It is
// shown once and never stored in clear. About one draw in 200 has no digit
// (26 characters of 32, 6 of them digits), so it draws again until the
// password passes CheckPassword, as one an operator chooses must.
func GeneratePassword() string {
	for {
		if pw := rand.Text(); CheckPassword("", pw) == nil {
			return pw
		}
	}
}
