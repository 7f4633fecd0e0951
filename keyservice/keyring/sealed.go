package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/blindgate/blindgate/internal/atomicfile"

	"github.com/blindgate/blindgate/internal/randid"
)

// Sealed file format. The file is a JSON envelope
//
//	{"format":"blindgate-keyring","version":1,"deployment":"ks_...","nonce":"<b64>","ciphertext":"<b64>"}
//
// The ciphertext is AES-256-GCM of the inner JSON (versions with PKCS#8 DER
// private keys, states, creation times, and the fingerprint key). The header
// fields format, version and deployment are the AAD, so a file cannot be
// relabelled. The deployment id is readable without the master key
// (ReadDeployment: the sealed service needs its audience); a file made
// before deployment ids has no such member and the old AAD. The
// AES key is derived from the master key with HKDF-SHA-256 and a fixed label,
// so the master key is never used directly and could safely key something
// else. A random 96-bit nonce per save is fine for the handful of saves
// (rotations) a master key sees.
//
// Version 2 adds "audit_public_key" (strict standard base64 of the Ed25519
// audit key's public half) to the header, where `audit verify` reads it
// without the master key; it is part of the AAD, so a swapped public key makes
// the keyring refuse to open. Keyrings without an audit key stay version 1.
//
// Version 3 adds the custody of the master key (Custody: the Shamir share
// set and/or the HSM wrapping) as the members "shares" and "hsm", also in
// the AAD. Keyrings without custody stay version 2.
const (
	FileFormat  = "blindgate-keyring"
	FileVersion = 2
	fileV1      = 1
	fileV3      = 3
	// maxFileSize bounds what Load reads; a keyring with a hundred RSA versions
	// is ~250 KiB.
	maxFileSize = 4 << 20
	hkdfLabel   = "blindgate-keyring/v1 AES-256-GCM"
)

// Errors of the sealed file.
var (
	// ErrWrongMasterKey means the GCM tag did not verify: a wrong master key
	// (or wrong shares), or a ciphertext altered on disk. AES-GCM cannot tell
	// the two apart.
	ErrWrongMasterKey = errors.New("keyring: wrong master key (or the sealed keyring was altered)")
	// ErrCorrupt means the file is not a readable sealed keyring: truncated,
	// not JSON, an unknown format or version, or invalid contents.
	ErrCorrupt = errors.New("keyring: sealed keyring file is corrupt")
)

// envelope is the on-disk header. Nonce and ciphertext are strict standard
// base64 (canonical padding bits), so every bit of the file is significant.
type envelope struct {
	Format         string    `json:"format"`
	Version        int       `json:"version"`
	Deployment     string    `json:"deployment,omitempty"`
	AuditPublicKey string    `json:"audit_public_key,omitempty"` // version 2
	Shares         *ShareSet `json:"shares,omitempty"`           // version 3
	HSM            *HSMSeal  `json:"hsm,omitempty"`              // version 3
	Nonce          string    `json:"nonce"`
	Ciphertext     string    `json:"ciphertext"`
}

func (e envelope) custody() Custody { return Custody{Shares: e.Shares, HSM: e.HSM} }

// strictB64 rejects non-zero padding bits that base64.StdEncoding ignores.
func strictB64() *base64.Encoding { return base64.StdEncoding.Strict() }

// aad authenticates the header; it is rebuilt from the validated fields.
func aad(env envelope) []byte {
	b := fmt.Appendf(nil, `{"format":%q,"version":%d`, env.Format, env.Version)
	if env.Deployment != "" {
		b = fmt.Appendf(b, `,"deployment":%q`, env.Deployment)
	}
	if env.Version != fileV1 {
		b = fmt.Appendf(b, `,"audit_public_key":%q`, env.AuditPublicKey)
	}
	if env.Version == fileV3 {
		b = append(b, `,"custody":`...)
		b = append(b, env.custody().canonical()...)
	}
	return append(b, '}')
}

type sealedVersion struct {
	Kid     string    `json:"kid"`
	Alg     string    `json:"alg"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
	PKCS8   []byte    `json:"pkcs8"`
}

type sealedBody struct {
	FingerprintKey []byte          `json:"fingerprint_key"`
	Versions       []sealedVersion `json:"versions"`
	AuditKey       []byte          `json:"audit_key,omitempty"` // Ed25519 seed; version 2
}

// Save seals kr under master and writes it to path atomically: a temporary
// file in the same directory, fsync, rename over path, fsync of the
// directory. The file mode is 0600. A crash leaves either the old or the new
// keyring, never a torn one.
//
// Save refuses (ErrWrongMasterKey) to replace a keyring that master does
// not open: after `keys rotate-master`, a writer still holding the old
// master key (a running key service, a stale shell) would otherwise put the
// keyring back under the key whose shares were just destroyed. Reseal is
// the one way to change the master key.
func Save(path string, kr *Keyring, master []byte) error {
	if err := checkSealedUnder(path, master); err != nil {
		return err
	}
	data, err := Seal(kr, master)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}

// Reseal writes kr under newMaster over the keyring at path, which must open
// under oldMaster: the master key rotation.
func Reseal(path string, kr *Keyring, oldMaster, newMaster []byte) error {
	if err := checkSealedUnder(path, oldMaster); err != nil {
		return err
	}
	data, err := Seal(kr, newMaster)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}

// checkSealedUnder returns ErrWrongMasterKey when path holds a sealed
// keyring that master does not open; nothing (no file, or a file that is no
// sealed keyring at all) otherwise.
func checkSealedUnder(path string, master []byte) error {
	data, err := readSealed(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	plain, _, _, err := authenticate(data, master)
	clear(plain)
	if errors.Is(err, ErrWrongMasterKey) {
		return fmt.Errorf("%w: refusing to replace %s, sealed under another master key (rotated by `keys rotate-master`?)", err, path)
	}
	return nil
}

// Load reads and opens the sealed keyring at path. A missing file is reported
// as the os error (errors.Is(err, fs.ErrNotExist)), not as ErrCorrupt.
func Load(path string, master []byte) (*Keyring, error) {
	data, err := readSealed(path)
	if err != nil {
		return nil, err
	}
	return Open(data, master)
}

// Seal returns the sealed file bytes of kr under master.
func Seal(kr *Keyring, master []byte) ([]byte, error) {
	if err := checkMasterKey(master); err != nil {
		return nil, err
	}
	s := kr.snap()
	if len(s.versions) == 0 || s.active() < 0 || len(s.fpKey) != FingerprintKeySize {
		return nil, errors.New("keyring: refusing to seal an empty keyring")
	}
	plain, err := marshalBody(s)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	aead, err := newAEAD(master)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keyring: nonce: %w", err)
	}
	env := envelope{Format: FileFormat, Version: fileV1, Deployment: kr.deployment, Nonce: strictB64().EncodeToString(nonce)}
	if s.auditKey != nil {
		env.Version = FileVersion
		env.AuditPublicKey = strictB64().EncodeToString(s.auditKey.Public().(ed25519.PublicKey))
	}
	if c := kr.Custody(); !c.Empty() {
		if s.auditKey == nil {
			return nil, errors.New("keyring: a keyring recording its custody needs an audit key (EnsureAuditKey)")
		}
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("keyring: custody: %w", err)
		}
		env.Version, env.Shares, env.HSM = fileV3, c.Shares, c.HSM
	}
	env.Ciphertext = strictB64().EncodeToString(aead.Seal(nil, nonce, plain, aad(env)))
	out, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("keyring: encode envelope: %w", err)
	}
	return append(out, '\n'), nil
}

// Open parses sealed file bytes: ErrCorrupt for anything that is not a sealed
// keyring, ErrWrongMasterKey when authentication fails.
func Open(data, master []byte) (*Keyring, error) {
	plain, env, auditPub, err := authenticate(data, master)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	s, err := unmarshalBody(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	// The header's public key must be the sealed key's: `audit verify`
	// trusts the header.
	switch {
	case auditPub == nil && s.auditKey != nil:
		return nil, fmt.Errorf("%w: version 1 keyring holds an audit key", ErrCorrupt)
	case auditPub != nil && (s.auditKey == nil || !auditPub.Equal(s.auditKey.Public())):
		return nil, fmt.Errorf("%w: audit public key in the header does not match the sealed key", ErrCorrupt)
	}
	kr := &Keyring{deployment: env.Deployment}
	kr.cur.Store(s)
	kr.SetCustody(env.custody())
	return kr, nil
}

// authenticate checks the header and opens the ciphertext: the inner JSON,
// which the caller clears.
func authenticate(data, master []byte) ([]byte, envelope, ed25519.PublicKey, error) {
	if err := checkMasterKey(master); err != nil {
		return nil, envelope{}, nil, err
	}
	env, auditPub, err := parseEnvelope(data)
	if err != nil {
		return nil, env, nil, err
	}
	aead, err := newAEAD(master)
	if err != nil {
		return nil, env, nil, err
	}
	nonce, err := strictB64().DecodeString(env.Nonce)
	if err != nil {
		return nil, env, nil, fmt.Errorf("%w: nonce is not base64", ErrCorrupt)
	}
	ct, err := strictB64().DecodeString(env.Ciphertext)
	if err != nil {
		return nil, env, nil, fmt.Errorf("%w: ciphertext is not base64", ErrCorrupt)
	}
	if len(nonce) != aead.NonceSize() || len(ct) < aead.Overhead() {
		return nil, env, nil, fmt.Errorf("%w: nonce or ciphertext too short", ErrCorrupt)
	}
	plain, err := aead.Open(nil, nonce, ct, aad(env))
	if err != nil {
		return nil, env, nil, ErrWrongMasterKey
	}
	return plain, env, auditPub, nil
}

// parseEnvelope reads and checks the header; nothing in it is trusted until
// the ciphertext opens under the AAD built from it. The audit public key is
// nil for version 1.
func parseEnvelope(data []byte) (envelope, ed25519.PublicKey, error) {
	var env envelope
	names := []string{"format", "version", "nonce", "ciphertext"}
	// Both members are optional (older files lack them); base64 values
	// cannot hold a quote, so a quoted name appears only as the member.
	hasDeployment := bytes.Contains(data, []byte(`"deployment"`))
	if hasDeployment {
		names = append(names, "deployment")
	}
	if bytes.Contains(data, []byte(`"audit_public_key"`)) {
		names = append(names, "audit_public_key")
	}
	for _, m := range custodyMembers {
		if bytes.Contains(data, m) {
			names = append(names, string(m[1:len(m)-1]))
		}
	}
	if err := exactKeys(data, names...); err != nil {
		return env, nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return env, nil, fmt.Errorf("%w: envelope is not valid JSON", ErrCorrupt)
	}
	if dec.More() {
		return env, nil, fmt.Errorf("%w: trailing data after the envelope", ErrCorrupt)
	}
	if env.Format != FileFormat {
		return env, nil, fmt.Errorf("%w: format is not %q", ErrCorrupt, FileFormat)
	}
	if hasDeployment && !randid.Valid(DeploymentPrefix, env.Deployment) {
		return env, nil, fmt.Errorf("%w: deployment id is malformed", ErrCorrupt)
	}
	if c := env.custody(); env.Version == fileV3 && c.Empty() || env.Version != fileV3 && !c.Empty() {
		return env, nil, fmt.Errorf("%w: custody members belong to version 3, and only to it", ErrCorrupt)
	} else if err := c.validate(); err != nil {
		return env, nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	switch env.Version {
	case fileV1:
		if env.AuditPublicKey != "" {
			return env, nil, fmt.Errorf("%w: version 1 has no audit_public_key", ErrCorrupt)
		}
		return env, nil, nil
	case FileVersion, fileV3:
		pub, err := strictB64().DecodeString(env.AuditPublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return env, nil, fmt.Errorf("%w: audit_public_key is not a base64 Ed25519 public key", ErrCorrupt)
		}
		return env, ed25519.PublicKey(pub), nil
	default:
		return env, nil, fmt.Errorf("%w: unsupported version %d", ErrCorrupt, env.Version)
	}
}

// ReadDeployment returns the deployment id of the sealed keyring at path
// without the master key. It is not authenticated until the keyring is
// unsealed (the id is in the AAD, so an altered one makes unsealing fail);
// "" for a keyring made before deployment ids.
func ReadDeployment(path string) (string, error) {
	data, err := readSealed(path)
	if err != nil {
		return "", err
	}
	env, _, err := parseEnvelope(data)
	if err != nil {
		return "", err
	}
	return env.Deployment, nil
}

// ReadAuditPublicKey returns the audit signing key's public half from the
// sealed keyring's header, without the master key: what `audit verify` checks
// checkpoints against. A keyring without one returns ErrNoAuditKey.
func ReadAuditPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := readSealed(path)
	if err != nil {
		return nil, err
	}
	_, pub, err := parseEnvelope(data)
	if err != nil {
		return nil, err
	}
	if pub == nil {
		return nil, ErrNoAuditKey
	}
	return pub, nil
}

// exactKeys checks that data is one JSON object whose members are exactly
// names, each once, spelled exactly: encoding/json alone would accept
// "Format" for "format" and keep the last of duplicate members.
func exactKeys(data []byte, names ...string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("envelope is not a JSON object")
	}
	seen := make(map[string]bool, len(names))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errors.New("envelope is not valid JSON")
		}
		key, _ := tok.(string)
		if !slices.Contains(names, key) || seen[key] {
			return errors.New("envelope has an unknown or repeated member")
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return errors.New("envelope is not valid JSON")
		}
	}
	if len(seen) != len(names) {
		return errors.New("envelope misses a member")
	}
	return nil
}

func newAEAD(master []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, master, nil, hkdfLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("keyring: derive key: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return cipher.NewGCM(block)
}

// marshalBody writes the inner JSON by hand into one buffer sized up front,
// so that the private keys and the fingerprint key are only ever in buffers
// this package clears (encoding/json would leave base64 copies in its pooled
// encoder buffers).
func marshalBody(s *snapshot) ([]byte, error) {
	ders := make([][]byte, len(s.versions))
	defer func() {
		for _, d := range ders {
			clear(d)
		}
	}()
	size := 64 + base64.StdEncoding.EncodedLen(len(s.fpKey))
	if s.auditKey != nil {
		size += 32 + base64.StdEncoding.EncodedLen(ed25519.SeedSize)
	}
	for i, v := range s.versions {
		der, err := x509.MarshalPKCS8PrivateKey(v.priv)
		if err != nil {
			return nil, fmt.Errorf("keyring: encode %s: %w", v.info.Kid, err)
		}
		ders[i] = der
		size += 160 + len(v.info.Kid) + len(v.info.Alg) + len(v.info.State) + base64.StdEncoding.EncodedLen(len(der))
	}
	b := make([]byte, 0, size)
	b = append(b, `{"fingerprint_key":"`...)
	b = base64.StdEncoding.AppendEncode(b, s.fpKey)
	b = append(b, `","versions":[`...)
	for i, v := range s.versions {
		if i > 0 {
			b = append(b, ',')
		}
		// Kid, alg and state are public and ASCII; json.Marshal quotes them.
		b = append(b, `{"kid":`...)
		b = appendJSON(b, v.info.Kid)
		b = append(b, `,"alg":`...)
		b = appendJSON(b, v.info.Alg)
		b = append(b, `,"state":`...)
		b = appendJSON(b, v.info.State)
		b = append(b, `,"created":`...)
		b = appendJSON(b, v.info.Created.UTC().Format(time.RFC3339))
		b = append(b, `,"pkcs8":"`...)
		b = base64.StdEncoding.AppendEncode(b, ders[i])
		b = append(b, `"}`...)
	}
	b = append(b, ']')
	if s.auditKey != nil {
		b = append(b, `,"audit_key":"`...)
		b = base64.StdEncoding.AppendEncode(b, s.auditKey.Seed())
		b = append(b, '"')
	}
	b = append(b, '}')
	if cap(b) != size {
		// A reallocation left a copy behind; the size estimate is wrong.
		clear(b)
		return nil, errors.New("keyring: internal error: body size estimate too small")
	}
	return b, nil
}

func appendJSON(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

func unmarshalBody(plain []byte) (_ *snapshot, err error) {
	var body sealedBody
	defer func() {
		for _, v := range body.Versions {
			clear(v.PKCS8)
		}
		clear(body.AuditKey)
		if err != nil {
			clear(body.FingerprintKey)
		}
	}()
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return nil, errors.New("contents are not valid JSON")
	}
	if len(body.FingerprintKey) != FingerprintKeySize {
		return nil, fmt.Errorf("fingerprint key is %d bytes, want %d", len(body.FingerprintKey), FingerprintKeySize)
	}
	if len(body.Versions) == 0 {
		return nil, errors.New("no key versions")
	}
	s := &snapshot{fpKey: body.FingerprintKey}
	if body.AuditKey != nil {
		if len(body.AuditKey) != ed25519.SeedSize {
			return nil, fmt.Errorf("audit key is %d bytes, want %d", len(body.AuditKey), ed25519.SeedSize)
		}
		s.auditKey = ed25519.NewKeyFromSeed(body.AuditKey)
	}
	active := 0
	for i, sv := range body.Versions {
		if err := checkAlg(sv.Alg); err != nil {
			return nil, fmt.Errorf("version %d: %w", i, err)
		}
		switch sv.State {
		case StateActive:
			active++
		case StateDecrypt, StateRetired:
		default:
			return nil, fmt.Errorf("version %d: unknown state %q", i, sv.State)
		}
		if sv.Kid == "" || s.find(sv.Kid) >= 0 {
			return nil, fmt.Errorf("version %d: empty or duplicate kid", i)
		}
		key, err := x509.ParsePKCS8PrivateKey(sv.PKCS8)
		if err != nil {
			return nil, fmt.Errorf("version %s: private key: %w", sv.Kid, err)
		}
		priv, err := checkKey(sv.Alg, key)
		if err != nil {
			return nil, fmt.Errorf("version %s: %w", sv.Kid, err)
		}
		s.versions = append(s.versions, version{
			info: VersionInfo{Kid: sv.Kid, Alg: sv.Alg, State: sv.State, Created: sv.Created.UTC()},
			priv: priv,
		})
	}
	if active != 1 {
		return nil, fmt.Errorf("%d active versions, want exactly 1", active)
	}
	return s, nil
}

func readSealed(path string) ([]byte, error) {
	data, err := atomicfile.ReadCapped(path, maxFileSize)
	if errors.Is(err, atomicfile.ErrTooLarge) {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return data, nil
}

func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data); err != nil {
		return fmt.Errorf("keyring: save: %w", err)
	}
	return nil
}
