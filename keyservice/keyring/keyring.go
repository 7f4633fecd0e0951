// Package keyring holds the key service's key-encryption keys (KEKs) and the
// fingerprint key, versioned and rotated, and seals them at rest.
//
// A KEK version is in one of three states:
//
//	active   encrypts (published in the JWKS) and decrypts; exactly one at a time
//	decrypt  decrypts only: ciphertexts made before a rotation still open
//	retired  neither: ciphertexts under it are no longer accepted
//
// Rotate adds a new active version and demotes the previous one to decrypt;
// rewrap moves stored ciphertexts to Newest; Retire ends an old version
// (PCI DSS 3.6.1 and 3.7.4/3.7.5: defined cryptoperiod, retirement).
//
// A Keyring is safe for concurrent use: readers (Lookup, PublicKeys,
// Fingerprint ...) load an immutable snapshot atomically and never wait, while
// writers (Rotate, Retire) build a new snapshot under a mutex and publish it.
//
// The package uses only the standard library's crypto; JOSE encoding lives in
// internal/jose, which consumes the keys this package hands out.
package keyring

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindgate/blindgate/internal/randid"
)

// Key algorithms of a KEK version, written "<JWE alg>/<key parameters>". The
// JWE alg of a version is the part before "/" (see JWEAlg).
//
// DefaultAlg is ECDH-ES+A256KW on P-256 because:
//   - P-256 gives ~128-bit security, the same as RSA-3072. The content is
//     encrypted with A256GCM, but a 256-bit content key wrapped under either
//     KEK is only as strong as the KEK, ~128 bits; nothing is lost against
//     RSA-3072.
//   - an ECDH-ES decryption on P-256 is roughly 50-100x faster than an
//     RSA-3072 private-key operation, which matters for inspect and rewrap
//     throughput, and the keys are small (a 65-byte public point).
//
// Choose AlgECDHP384 for ~192-bit security; AlgRSA3072 exists for clients or
// HSMs that cannot do ECDH-ES.
const (
	AlgECDHP256 = "ECDH-ES+A256KW/P-256"
	AlgECDHP384 = "ECDH-ES+A256KW/P-384"
	AlgRSA3072  = "RSA-OAEP-256/3072"
	DefaultAlg  = AlgECDHP256
)

// Version states.
const (
	StateActive  = "active"
	StateDecrypt = "decrypt"
	StateRetired = "retired"
)

// DeploymentPrefix starts every deployment id.
const DeploymentPrefix = "ks_"

// FingerprintKeySize is the size of the HMAC key behind Fingerprint.
const FingerprintKeySize = 32

// Sentinel errors.
var (
	ErrUnknownKid     = errors.New("keyring: unknown key id")
	ErrRetired        = errors.New("keyring: key version is retired")
	ErrLastActive     = errors.New("keyring: cannot retire the active key version; rotate first")
	ErrUnsupportedAlg = errors.New("keyring: unsupported key algorithm")
	// ErrNoAuditKey: the keyring predates audit signing keys; any save with
	// the master key (keys rotate, retire or upgrade) adds one.
	ErrNoAuditKey = errors.New("keyring: no audit signing key (run `keyservice keys upgrade`)")
)

// Algs lists the supported key algorithms, the default first.
func Algs() []string { return []string{AlgECDHP256, AlgECDHP384, AlgRSA3072} }

// JWEAlg returns the JWE "alg" of a key algorithm: the part before "/".
func JWEAlg(alg string) string {
	jwe, _, _ := strings.Cut(alg, "/")
	return jwe
}

func checkAlg(alg string) error {
	if !slices.Contains(Algs(), alg) {
		return fmt.Errorf("%w: %q (want one of %s)", ErrUnsupportedAlg, alg, strings.Join(Algs(), ", "))
	}
	return nil
}

// VersionInfo describes a KEK version without key material.
type VersionInfo struct {
	Kid     string    `json:"kid"`
	Alg     string    `json:"alg"` // key algorithm, e.g. "ECDH-ES+A256KW/P-256"
	State   string    `json:"state"`
	Created time.Time `json:"created"`
}

// JWEAlg returns the version's JWE "alg".
func (v VersionInfo) JWEAlg() string { return JWEAlg(v.Alg) }

// PublicVersion is a published KEK: what a JWKS entry is built from.
type PublicVersion struct {
	Kid string
	Alg string           // JWE alg, e.g. "ECDH-ES+A256KW"
	Key crypto.PublicKey // *ecdsa.PublicKey or *rsa.PublicKey
}

// version is immutable once published in a snapshot; a state change makes a
// new version value that shares the key.
type version struct {
	info VersionInfo
	priv crypto.Signer // *ecdsa.PrivateKey or *rsa.PrivateKey
}

// snapshot is an immutable view of the keyring.
type snapshot struct {
	versions []version // oldest first; exactly one is active
	fpKey    []byte
	auditKey ed25519.PrivateKey // signs audit checkpoints; nil in keyrings made before it existed
	// The guard's and the binding's keys depend on fpKey alone, which a
	// snapshot never changes: derived once, at first use, not per inspect.
	fixedOnce         sync.Once
	guardKey, bindKey []byte
}

func (s *snapshot) find(kid string) int {
	for i := range s.versions {
		if s.versions[i].info.Kid == kid {
			return i
		}
	}
	return -1
}

func (s *snapshot) active() int {
	for i := range s.versions {
		if s.versions[i].info.State == StateActive {
			return i
		}
	}
	return -1
}

// Keyring is a set of KEK versions and the fingerprint key. Create one with
// New or Load; the zero value holds no keys.
type Keyring struct {
	mu  sync.Mutex // serialises writers; readers never take it
	cur atomic.Pointer[snapshot]
	// deployment is set at New and kept by every save: see Deployment.
	deployment string
	custody    atomic.Pointer[Custody] // header metadata: see Custody
}

// Custody is how the master key is held, as recorded in the sealed file's
// header (the zero Custody for a keyring that records none).
func (k *Keyring) Custody() Custody {
	if c := k.custody.Load(); c != nil {
		return *c
	}
	return Custody{}
}

// SetCustody records how the master key is held; the next Save writes it.
func (k *Keyring) SetCustody(c Custody) { k.custody.Store(&c) }

// Deployment is the keyring's deployment id, drawn at New ("ks_" and 128
// random bits), public, and kept across rotations. The key service uses it
// as the default audience of signed requests, so a request signed for one
// deployment (staging) is refused by another (production) even when they
// share client keys. "" for a keyring made before deployment ids existed.
func (k *Keyring) Deployment() string { return k.deployment }

func (k *Keyring) snap() *snapshot {
	if s := k.cur.Load(); s != nil {
		return s
	}
	return &snapshot{}
}

// New returns a keyring with one active version of alg ("" = DefaultAlg) and
// a fresh random fingerprint key.
func New(alg string) (*Keyring, error) {
	if alg == "" {
		alg = DefaultAlg
	}
	if err := checkAlg(alg); err != nil {
		return nil, err
	}
	v, err := newVersion(alg, nil, time.Now())
	if err != nil {
		return nil, err
	}
	fp := make([]byte, FingerprintKeySize)
	if _, err := rand.Read(fp); err != nil {
		return nil, fmt.Errorf("keyring: fingerprint key: %w", err)
	}
	dep, err := randid.New(DeploymentPrefix)
	if err != nil {
		return nil, fmt.Errorf("keyring: deployment id: %w", err)
	}
	_, ak, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keyring: audit key: %w", err)
	}
	kr := &Keyring{deployment: dep}
	kr.cur.Store(&snapshot{versions: []version{v}, fpKey: fp, auditKey: ak})
	return kr, nil
}

func newVersion(alg string, existing []version, now time.Time) (version, error) {
	priv, err := generateKey(alg)
	if err != nil {
		return version{}, err
	}
	now = now.UTC().Truncate(time.Second)
	for range 8 {
		kid, err := newKid(now)
		if err != nil {
			return version{}, err
		}
		if !slices.ContainsFunc(existing, func(v version) bool { return v.info.Kid == kid }) {
			return version{info: VersionInfo{Kid: kid, Alg: alg, State: StateActive, Created: now}, priv: priv}, nil
		}
	}
	return version{}, errors.New("keyring: could not draw a unique kid")
}

// newKid returns "kek-<yyyymmdd>-<8 hex>": the date helps operators, the
// random part keeps two rotations on one day apart. Kids are public (JWKS).
func newKid(now time.Time) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("keyring: kid: %w", err)
	}
	return "kek-" + now.Format("20060102") + "-" + hex.EncodeToString(b[:]), nil
}

func generateKey(alg string) (crypto.Signer, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case AlgECDHP256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgECDHP384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case AlgRSA3072:
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	default:
		return nil, checkAlg(alg)
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: generate %s key: %w", alg, err)
	}
	return priv, nil
}

// checkKey verifies that a private key is of the kind alg names.
func checkKey(alg string, key any) (crypto.Signer, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if (alg == AlgECDHP256 && k.Curve == elliptic.P256()) || (alg == AlgECDHP384 && k.Curve == elliptic.P384()) {
			return k, nil
		}
	case *rsa.PrivateKey:
		if alg == AlgRSA3072 && k.N.BitLen() == 3072 {
			if err := k.Validate(); err != nil {
				return nil, fmt.Errorf("rsa key: %w", err)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("key of type %T does not match %s", key, alg)
}

// Versions lists all versions, oldest first, without key material.
func (k *Keyring) Versions() []VersionInfo {
	s := k.snap()
	out := make([]VersionInfo, len(s.versions))
	for i, v := range s.versions {
		out[i] = v.info
	}
	return out
}

// Newest returns the active version: the one new ciphertexts and rewraps use.
func (k *Keyring) Newest() VersionInfo {
	s := k.snap()
	if i := s.active(); i >= 0 {
		return s.versions[i].info
	}
	return VersionInfo{}
}

// PublicKeys returns the public keys of the active versions (what the JWKS
// publishes). Decrypt-only versions are left out so that no new ciphertext is
// made under a key that is on its way out.
func (k *Keyring) PublicKeys() []PublicVersion {
	s := k.snap()
	var out []PublicVersion
	for _, v := range s.versions {
		if v.info.State == StateActive {
			out = append(out, PublicVersion{Kid: v.info.Kid, Alg: v.info.JWEAlg(), Key: v.priv.Public()})
		}
	}
	return out
}

// Lookup returns the private key of an active or decrypt-only version:
// *ecdsa.PrivateKey for ECDH-ES, *rsa.PrivateKey for RSA-OAEP-256. It returns
// ErrRetired for a retired version and ErrUnknownKid otherwise. The kid is not
// echoed in the error: it comes from an untrusted JWE header.
func (k *Keyring) Lookup(kid string) (crypto.PrivateKey, error) {
	s := k.snap()
	i := s.find(kid)
	if i < 0 {
		return nil, ErrUnknownKid
	}
	v := s.versions[i]
	if v.info.State == StateRetired {
		return nil, ErrRetired
	}
	return v.priv, nil
}

// Rotate adds a new active version of alg ("" = the alg of the current
// active version) and demotes the previous active version to decrypt-only.
func (k *Keyring) Rotate(alg string) (VersionInfo, error) { return k.RotateAt(alg, time.Now()) }

// RotateAt is Rotate with the new version created at now: the key service's
// scheduled rotation measures a version's age on its own (injectable) clock,
// so the version it makes must be dated by that clock too.
func (k *Keyring) RotateAt(alg string, now time.Time) (VersionInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.snap()
	if alg == "" {
		alg = k.Newest().Alg
		if alg == "" {
			alg = DefaultAlg
		}
	}
	if err := checkAlg(alg); err != nil {
		return VersionInfo{}, err
	}
	nv, err := newVersion(alg, s.versions, now)
	if err != nil {
		return VersionInfo{}, err
	}
	next := &snapshot{versions: make([]version, 0, len(s.versions)+1), fpKey: s.fpKey, auditKey: s.auditKey}
	for _, v := range s.versions {
		if v.info.State == StateActive {
			v.info.State = StateDecrypt
		}
		next.versions = append(next.versions, v)
	}
	next.versions = append(next.versions, nv)
	k.cur.Store(next)
	return nv.info, nil
}

// Retire moves a version to retired: Lookup refuses it from then on. Retiring
// a retired version is a no-op. The active version cannot be retired
// (ErrLastActive): rotate first, rewrap, then retire the old version.
//
// A retired version's private key stays in the sealed file (archived, PCI DSS
// 3.7.5), so a premature retirement is an incident, not data loss.
func (k *Keyring) Retire(kid string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.snap()
	i := s.find(kid)
	if i < 0 {
		return ErrUnknownKid
	}
	switch s.versions[i].info.State {
	case StateRetired:
		return nil
	case StateActive:
		return ErrLastActive
	}
	next := &snapshot{versions: slices.Clone(s.versions), fpKey: s.fpKey, auditKey: s.auditKey}
	next.versions[i].info.State = StateRetired
	k.cur.Store(next)
	return nil
}

// FingerprintPrefix starts every fingerprint. It is "fpm_" (merchant-scoped)
// so that a token still carrying an unscoped "fp_" value from before the
// change is visibly stale until the rewrap job refreshes it.
const FingerprintPrefix = "fpm_"

// Domain labels of the keys derived from the fingerprint key: each use gets
// its own key, so a value computed for one can never be replayed as another.
const (
	labelFingerprint = "blindgate/fingerprint/merchant/v1"
	labelGuard       = "blindgate/enumeration-guard/v1"
	labelBinding     = "blindgate/merchant-binding/v1"
)

// BindingPrefix starts every merchant binding.
const BindingPrefix = "bnd_"

// Binding returns the merchant binding of a stored card ciphertext: "bnd_" +
// base64url (no padding) of the first 16 bytes of HMAC(K_b, merchant,
// SHA-256(jwe)), K_b derived from the fingerprint key for this use alone.
//
// A ciphertext names its checkout session, not its merchant, so the key
// service issues this tag when it sees the merchant and the ciphertext
// together (inspect, within the freshness window; rewrap, from an earlier
// binding) and a forward must present it: whoever holds only the forward
// key cannot name another merchant for a stored card, since it cannot
// compute a tag. 128 bits are ample for a tag that cannot be checked
// offline.
func (k *Keyring) Binding(merchant string, jwe []byte) string {
	sum := sha256.Sum256(jwe)
	return BindingPrefix + base64.RawURLEncoding.EncodeToString(k.bindingMAC(merchant, sum[:]))
}

// VerifyBinding reports whether binding is Binding(merchant, jwe), in
// constant time.
func (k *Keyring) VerifyBinding(merchant string, jwe []byte, binding string) bool {
	sum := sha256.Sum256(jwe)
	want := []byte(BindingPrefix + base64.RawURLEncoding.EncodeToString(k.bindingMAC(merchant, sum[:])))
	return hmac.Equal(want, []byte(binding))
}

func (k *Keyring) bindingMAC(merchant string, jweSum []byte) []byte {
	mac := hmac.New(sha256.New, k.snap().fixed().bindKey)
	writeParts(mac, merchant, string(jweSum))
	return mac.Sum(nil)[:16]
}

// Fingerprint returns "fpm_" + base64url (no padding) of
// HMAC-SHA-256(K_m, pan), where K_m = HMAC-SHA-256(fingerprint key,
// label || len(merchant) || merchant) is a key of the merchant alone.
//
// It is a keyed hash (PCI DSS 3.5.1.1): a plain hash of a PAN can be reversed
// by enumerating the few billion PANs of a BIN, a keyed one only with the key,
// which never leaves the key service. It is scoped per merchant so that the
// same card at two merchants gives unrelated values: a merchant (or anyone
// holding its tokens) cannot correlate its cards with another's, and a
// fingerprint learnt at one merchant is no oracle at another. The length
// prefix makes the encoding unambiguous. The fingerprint key is not a KEK
// version, so fingerprints stay the same across KEK rotation. Pass the
// validated digits only: "4242 4242..." and "42424242..." differ.
func (k *Keyring) Fingerprint(merchant string, pan []byte) string {
	mk := k.derive(labelFingerprint, merchant)
	defer clear(mk)
	mac := hmac.New(sha256.New, mk)
	mac.Write(pan)
	var sum [sha256.Size]byte
	out := make([]byte, len(FingerprintPrefix), len(FingerprintPrefix)+base64.RawURLEncoding.EncodedLen(sha256.Size))
	copy(out, FingerprintPrefix)
	return string(base64.RawURLEncoding.AppendEncode(out, mac.Sum(sum[:0])))
}

// The audit signing key is an Ed25519 key kept sealed with the KEKs. The
// running key service signs the audit chain's head with it (checkpoints), so
// that someone who can rewrite the log file but not unseal the keyring cannot
// rebuild a chain that verifies. Its public half is in the sealed file's
// authenticated header, readable without the master key (ReadAuditPublicKey).

// AuditPublicKey returns the audit signing key's public half, or nil for a
// keyring that has none.
func (k *Keyring) AuditPublicKey() ed25519.PublicKey {
	s := k.snap()
	if s.auditKey == nil {
		return nil
	}
	return s.auditKey.Public().(ed25519.PublicKey)
}

// SignAudit signs msg with the audit key (ErrNoAuditKey without one).
func (k *Keyring) SignAudit(msg []byte) ([]byte, error) {
	s := k.snap()
	if s.auditKey == nil {
		return nil, ErrNoAuditKey
	}
	return ed25519.Sign(s.auditKey, msg), nil
}

// EnsureAuditKey gives a keyring made before audit keys existed a fresh one;
// it reports whether it added one. Save the keyring afterwards.
func (k *Keyring) EnsureAuditKey() (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.snap()
	if s.auditKey != nil {
		return false, nil
	}
	_, ak, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return false, fmt.Errorf("keyring: audit key: %w", err)
	}
	k.cur.Store(&snapshot{versions: s.versions, fpKey: s.fpKey, auditKey: ak})
	return true, nil
}

// GuardTag returns a short keyed hash (hex, 16 bytes) of parts, for the
// enumeration guard's store keys and members: Redis, which may sit outside
// the key zone, learns neither BINs, last fours nor fingerprints from them,
// only equality within a window. Each part is length-prefixed.
func (k *Keyring) GuardTag(parts ...string) string {
	mac := hmac.New(sha256.New, k.snap().fixed().guardKey)
	writeParts(mac, parts...)
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// derive returns HMAC-SHA-256(fingerprint key, label, parts...) with every
// element length-prefixed; the caller clears it.
func (k *Keyring) derive(label string, parts ...string) []byte {
	return k.snap().derive(label, parts...)
}

// fixed returns s with its per-use keys derived (once).
func (s *snapshot) fixed() *snapshot {
	s.fixedOnce.Do(func() {
		s.guardKey, s.bindKey = s.derive(labelGuard), s.derive(labelBinding)
	})
	return s
}

func (s *snapshot) derive(label string, parts ...string) []byte {
	if len(s.fpKey) != FingerprintKeySize {
		// Fail loudly: an empty-key HMAC would be an unkeyed hash.
		panic("keyring: Fingerprint on a keyring without a fingerprint key (use New or Load)")
	}
	mac := hmac.New(sha256.New, s.fpKey)
	writeParts(mac, append([]string{label}, parts...)...)
	return mac.Sum(nil)
}

func writeParts(w interface{ Write([]byte) (int, error) }, parts ...string) {
	var n [4]byte
	for _, p := range parts {
		n[0], n[1], n[2], n[3] = byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
		_, _ = w.Write(n[:])
		_, _ = w.Write([]byte(p))
	}
}
