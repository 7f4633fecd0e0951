package keyring

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/internal/randid"
)

func mustMaster(t testing.TB) []byte {
	t.Helper()
	m, err := GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, kr := range []*Keyring{mustNew(t, AlgECDHP256), mustNew(t, AlgECDHP384), rsaKeyring(t)} {
		t.Run(kr.Newest().Alg, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "keyring.sealed")
			master := mustMaster(t)
			if err := Save(path, kr, master); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("mode = %v, want 0600", st.Mode().Perm())
			}
			got, err := Load(path, master)
			if err != nil {
				t.Fatal(err)
			}
			assertSameKeyring(t, kr, got)
			checkJOSE(t, got, got.PublicKeys()[0])

			// Saving again replaces the file and leaves no temporary behind.
			if err := Save(path, got, master); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Fatalf("dir holds %d entries, want only the keyring", len(entries))
			}
		})
	}
}

func TestRoundTripKeepsStates(t *testing.T) {
	kr := mustNew(t, "")
	old := kr.Newest().Kid
	mid, _ := kr.Rotate(AlgECDHP384)
	if _, err := kr.Rotate(""); err != nil {
		t.Fatal(err)
	}
	if err := kr.Retire(old); err != nil {
		t.Fatal(err)
	}
	master := mustMaster(t)
	data, err := Seal(kr, master)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(data, master)
	if err != nil {
		t.Fatal(err)
	}
	assertSameKeyring(t, kr, got)
	if _, err := got.Lookup(old); !errors.Is(err, ErrRetired) {
		t.Fatalf("retired after load: %v", err)
	}
	if _, err := got.Lookup(mid.Kid); err != nil {
		t.Fatalf("decrypt-only after load: %v", err)
	}
}

func assertSameKeyring(t *testing.T, want, got *Keyring) {
	t.Helper()
	wv, gv := want.Versions(), got.Versions()
	if len(wv) != len(gv) {
		t.Fatalf("versions: got %d, want %d", len(gv), len(wv))
	}
	for i := range wv {
		if !wv[i].Created.Equal(gv[i].Created) || wv[i].Kid != gv[i].Kid || wv[i].Alg != gv[i].Alg || wv[i].State != gv[i].State {
			t.Fatalf("version %d: got %+v, want %+v", i, gv[i], wv[i])
		}
		wk, gk := want.snap().versions[i].priv, got.snap().versions[i].priv
		if !wk.(interface{ Equal(crypto.PrivateKey) bool }).Equal(gk) {
			t.Fatalf("version %d: private key differs", i)
		}
	}
	if !bytes.Equal(want.snap().fpKey, got.snap().fpKey) {
		t.Fatal("fingerprint key differs")
	}
}

func TestSealedFileHidesKeys(t *testing.T) {
	kr := mustNew(t, "")
	data, err := Seal(kr, mustMaster(t))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	if env["format"] != FileFormat || env["version"] != float64(FileVersion) || env["deployment"] != kr.Deployment() || len(env) != 6 {
		t.Fatalf("envelope = %v", env)
	}
	for _, s := range []string{kr.Newest().Kid, "pkcs8", "fingerprint", "active"} {
		if bytes.Contains(data, []byte(s)) {
			t.Fatalf("sealed file shows %q in clear", s)
		}
	}
}

func TestLoadWrongMasterKey(t *testing.T) {
	kr := mustNew(t, "")
	path := filepath.Join(t.TempDir(), "kr")
	if err := Save(path, kr, mustMaster(t)); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, mustMaster(t))
	if !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("Load with another key = %v, want ErrWrongMasterKey", err)
	}
	for _, bad := range [][]byte{nil, make([]byte, 31), make([]byte, 33)} {
		if _, err := Load(path, bad); !errors.Is(err, ErrInvalidMasterKey) {
			t.Fatalf("Load with %d-byte key = %v", len(bad), err)
		}
		if err := Save(path, kr, bad); !errors.Is(err, ErrInvalidMasterKey) {
			t.Fatalf("Save with %d-byte key = %v", len(bad), err)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none"), mustMaster(t))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Load(missing) = %v", err)
	}
}

func TestLoadDamaged(t *testing.T) {
	kr := mustNew(t, "")
	master := mustMaster(t)
	good, err := Seal(kr, master)
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	if err := json.Unmarshal(good, &env); err != nil {
		t.Fatal(err)
	}
	type rawEnvelope struct {
		Format         string
		Version        int
		AuditPub       string
		Nonce, Ciphert []byte
	}
	reencode := func(f func(e *rawEnvelope)) []byte {
		e := rawEnvelope{Format: env.Format, Version: env.Version, AuditPub: env.AuditPublicKey}
		e.Nonce, _ = base64.StdEncoding.DecodeString(env.Nonce)
		e.Ciphert, _ = base64.StdEncoding.DecodeString(env.Ciphertext)
		f(&e)
		b, _ := json.Marshal(envelope{Format: e.Format, Version: e.Version, Deployment: env.Deployment, AuditPublicKey: e.AuditPub,
			Nonce: base64.StdEncoding.EncodeToString(e.Nonce), Ciphertext: base64.StdEncoding.EncodeToString(e.Ciphert)})
		return b
	}
	tests := []struct {
		name string
		data []byte
		err  error
	}{
		{"corrupt/empty", nil, ErrCorrupt},
		{"corrupt/truncated", good[:len(good)/2], ErrCorrupt},
		{"corrupt/not-json", []byte("hello"), ErrCorrupt},
		{"corrupt/trailing", append(bytes.Clone(good), `{}`...), ErrCorrupt},
		{"corrupt/unknown-field", bytes.Replace(good, []byte(`{"format"`), []byte(`{"x":1,"format"`), 1), ErrCorrupt},
		{"corrupt/format", reencode(func(e *rawEnvelope) { e.Format = "other" }), ErrCorrupt},
		{"corrupt/version-3", reencode(func(e *rawEnvelope) { e.Version = 3 }), ErrCorrupt},
		{"corrupt/version-1-with-audit-key", reencode(func(e *rawEnvelope) { e.Version = 1 }), ErrCorrupt},
		{"corrupt/audit-key-not-base64", reencode(func(e *rawEnvelope) { e.AuditPub = "*" }), ErrCorrupt},
		{"auth/audit-key-swapped", reencode(func(e *rawEnvelope) {
			pub, _, _ := ed25519.GenerateKey(nil)
			e.AuditPub = base64.StdEncoding.EncodeToString(pub)
		}), ErrWrongMasterKey},
		{"corrupt/short-nonce", reencode(func(e *rawEnvelope) { e.Nonce = e.Nonce[:8] }), ErrCorrupt},
		{"corrupt/nonce-not-base64", bytes.Replace(good, []byte(`"nonce":"`), []byte(`"nonce":"*`), 1), ErrCorrupt},
		{"corrupt/format-case", bytes.Replace(good, []byte(`"format"`), []byte(`"Format"`), 1), ErrCorrupt},
		{"corrupt/duplicate-member", bytes.Replace(good, []byte(`{"format"`), []byte(`{"version":1,"format"`), 1), ErrCorrupt},
		{"auth/deployment-relabelled", bytes.Replace(good, []byte(env.Deployment), []byte(DeploymentPrefix+strings.Repeat("a", 26)), 1), ErrWrongMasterKey},
		{"auth/deployment-removed", bytes.Replace(good, []byte(`"deployment":"`+env.Deployment+`",`), nil, 1), ErrWrongMasterKey},
		{"corrupt/deployment-malformed", bytes.Replace(good, []byte(env.Deployment), []byte("staging"), 1), ErrCorrupt},
		{"corrupt/short-ciphertext", reencode(func(e *rawEnvelope) { e.Ciphert = e.Ciphert[:10] }), ErrCorrupt},
		{"auth/flipped-ciphertext", reencode(func(e *rawEnvelope) { e.Ciphert[3] ^= 1 }), ErrWrongMasterKey},
		{"auth/flipped-tag", reencode(func(e *rawEnvelope) { e.Ciphert[len(e.Ciphert)-1] ^= 0x80 }), ErrWrongMasterKey},
		{"auth/flipped-nonce", reencode(func(e *rawEnvelope) { e.Nonce[0] ^= 1 }), ErrWrongMasterKey},
		{"auth/ciphertext-truncated-in-json", reencode(func(e *rawEnvelope) { e.Ciphert = e.Ciphert[:len(e.Ciphert)-1] }), ErrWrongMasterKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kr")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			kr, err := Load(path, master)
			if !errors.Is(err, tt.err) || kr != nil {
				t.Fatalf("Load = %v, want %v", err, tt.err)
			}
		})
	}
}

// TestEveryFlippedBitFails flips one bit at every position of a sealed file:
// no altered file may load.
func TestEveryFlippedBitFails(t *testing.T) {
	master := mustMaster(t)
	good, err := Seal(mustNew(t, ""), master)
	if err != nil {
		t.Fatal(err)
	}
	for i := range good {
		for _, bit := range []byte{0x01, 0x20} {
			bad := bytes.Clone(good)
			bad[i] ^= bit
			if kr, err := Open(bad, master); err == nil {
				// Only a change JSON cannot see (e.g. trailing newline to
				// another whitespace) is allowed to load.
				if strings.TrimSpace(string(bad)) != strings.TrimSpace(string(good)) {
					t.Fatalf("byte %d ^ %#x: altered file loaded (%d versions)", i, bit, len(kr.Versions()))
				}
			} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongMasterKey) {
				t.Fatalf("byte %d: unexpected error %v", i, err)
			}
		}
	}
}

// TestLoadInvalidContents seals bodies that decrypt fine but describe an
// invalid keyring: each is ErrCorrupt, not a half-loaded keyring.
func TestLoadInvalidContents(t *testing.T) {
	kr := mustNew(t, "")
	master := mustMaster(t)
	good, err := marshalBody(kr.snap())
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(good, &body); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b map[string]any)) []byte {
		var b map[string]any
		_ = json.Unmarshal(good, &b)
		f(b)
		out, _ := json.Marshal(b)
		return out
	}
	version := func(b map[string]any) map[string]any { return b["versions"].([]any)[0].(map[string]any) }
	p384, _ := New(AlgECDHP384)
	p384Body, _ := marshalBody(p384.snap())
	var p384Map map[string]any
	_ = json.Unmarshal(p384Body, &p384Map)

	tests := []struct {
		name string
		body []byte
	}{
		{"not-json", []byte("nope")},
		{"unknown-field", mutate(func(b map[string]any) { b["extra"] = 1 })},
		{"short-fingerprint-key", mutate(func(b map[string]any) { b["fingerprint_key"] = "AAAA" })},
		{"no-versions", mutate(func(b map[string]any) { b["versions"] = []any{} })},
		{"no-active", mutate(func(b map[string]any) { version(b)["state"] = StateDecrypt })},
		{"unknown-state", mutate(func(b map[string]any) { version(b)["state"] = "paused" })},
		{"unknown-alg", mutate(func(b map[string]any) { version(b)["alg"] = "RSA1_5/2048" })},
		{"empty-kid", mutate(func(b map[string]any) { version(b)["kid"] = "" })},
		{"two-active-duplicate-kid", mutate(func(b map[string]any) {
			b["versions"] = append(b["versions"].([]any), b["versions"].([]any)[0])
		})},
		{"key-alg-mismatch", mutate(func(b map[string]any) {
			version(b)["pkcs8"] = p384Map["versions"].([]any)[0].(map[string]any)["pkcs8"]
		})},
		{"bad-pkcs8", mutate(func(b map[string]any) { version(b)["pkcs8"] = "AAAA" })},
	}
	for _, tt := range tests {
		t.Run("corrupt/"+tt.name, func(t *testing.T) {
			data := sealRaw(t, tt.body, master)
			if kr, err := Open(data, master); !errors.Is(err, ErrCorrupt) || kr != nil {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
	if _, err := Open(sealRaw(t, good, master), master); err != nil {
		t.Fatalf("control: %v", err)
	}
}

func sealRaw(t *testing.T, plain, master []byte) []byte {
	t.Helper()
	aead, err := newAEAD(master)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	env := envelope{Format: FileFormat, Version: fileV1, Nonce: base64.StdEncoding.EncodeToString(nonce)}
	// A body with an audit key goes in a version 2 envelope naming its public half.
	var body struct {
		AuditKey []byte `json:"audit_key"`
	}
	if json.Unmarshal(plain, &body) == nil && len(body.AuditKey) == ed25519.SeedSize {
		env.Version = FileVersion
		env.AuditPublicKey = base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(body.AuditKey).Public().(ed25519.PublicKey))
	}
	env.Ciphertext = base64.StdEncoding.EncodeToString(aead.Seal(nil, nonce, plain, aad(env)))
	out, _ := json.Marshal(env)
	return out
}

// TestAuditKey: new keyrings carry an audit signing key whose public half is
// readable without the master key; older (version 1) keyrings load without
// one and get one from EnsureAuditKey.
func TestAuditKey(t *testing.T) {
	dir := t.TempDir()
	master := mustMaster(t)
	kr := mustNew(t, "")
	path := filepath.Join(dir, "kr")
	if err := Save(path, kr, master); err != nil {
		t.Fatal(err)
	}
	pub, err := ReadAuditPublicKey(path)
	if err != nil || !pub.Equal(kr.AuditPublicKey()) {
		t.Fatalf("ReadAuditPublicKey: %v", err)
	}
	loaded, err := Load(path, master)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := loaded.SignAudit([]byte("head"))
	if err != nil || !ed25519.Verify(pub, []byte("head"), sig) {
		t.Fatalf("SignAudit after a round trip: %v", err)
	}
	if _, err := loaded.Rotate(""); err != nil || !loaded.AuditPublicKey().Equal(pub) {
		t.Fatalf("rotation changed the audit key: %v", err)
	}

	// A version 1 keyring, as written before audit keys existed.
	old := mustNew(t, "")
	old.cur.Store(&snapshot{versions: old.snap().versions, fpKey: old.snap().fpKey})
	v1 := filepath.Join(dir, "v1")
	if err := Save(v1, old, master); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(v1); !bytes.Contains(b, []byte(`"version":1`)) {
		t.Fatalf("keyring without an audit key not written as version 1: %s", b)
	}
	if _, err := ReadAuditPublicKey(v1); !errors.Is(err, ErrNoAuditKey) {
		t.Fatalf("ReadAuditPublicKey(v1): %v", err)
	}
	got, err := Load(v1, master)
	if err != nil || got.AuditPublicKey() != nil {
		t.Fatalf("Load(v1): %v", err)
	}
	if _, err := got.SignAudit([]byte("x")); !errors.Is(err, ErrNoAuditKey) {
		t.Fatalf("SignAudit without a key: %v", err)
	}
	if added, err := got.EnsureAuditKey(); err != nil || !added {
		t.Fatalf("EnsureAuditKey: %v %v", added, err)
	}
	if added, _ := got.EnsureAuditKey(); added {
		t.Fatal("EnsureAuditKey replaced an existing key")
	}
	if err := Save(v1, got, master); err != nil {
		t.Fatal(err)
	}
	if pub, err := ReadAuditPublicKey(v1); err != nil || !pub.Equal(got.AuditPublicKey()) {
		t.Fatalf("upgraded keyring: %v", err)
	}
}

// TestDeploymentID: every keyring gets its own id at New, kept by every save
// and rotation and readable without the master key; a keyring sealed before
// deployment ids (no header member) still opens, with none.
func TestDeploymentID(t *testing.T) {
	a, b := mustNew(t, ""), mustNew(t, "")
	if !randid.Valid(DeploymentPrefix, a.Deployment()) || a.Deployment() == b.Deployment() {
		t.Fatalf("deployment ids %q and %q: want two distinct ks_ ids", a.Deployment(), b.Deployment())
	}
	master := mustMaster(t)
	path := filepath.Join(t.TempDir(), "kr")
	if err := Save(path, a, master); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(path, master)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loaded.Rotate(""); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, loaded, master); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadDeployment(path); err != nil || got != a.Deployment() {
		t.Fatalf("ReadDeployment after rotate = %q, %v; want %q", got, err, a.Deployment())
	}
	if again, err := Load(path, master); err != nil || again.Deployment() != a.Deployment() {
		t.Fatalf("Load after rotate: %v", err)
	}
	plain, err := marshalBody(a.snap())
	if err != nil {
		t.Fatal(err)
	}
	legacy := filepath.Join(t.TempDir(), "legacy")
	if err := os.WriteFile(legacy, sealRaw(t, plain, master), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadDeployment(legacy); err != nil || got != "" {
		t.Fatalf("ReadDeployment(legacy) = %q, %v", got, err)
	}
	if kr, err := Load(legacy, master); err != nil || kr.Deployment() != "" {
		t.Fatalf("Load(legacy): %v", err)
	}
}
