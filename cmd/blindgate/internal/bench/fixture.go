package bench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/passkey/passkeytest"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/passkeys"
	"github.com/blindgate/blindgate/keyservice/sigauth"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Files of one KEK's run folder.
const (
	fileKeyring       = "keyring.sealed"
	fileMasterKey     = "master.key"
	fileClients       = "clients.json"
	fileGatewayKey    = "gateway.jwk"
	fileBackofficeKey = "backoffice.jwk"
	fileForwardKey    = "forward.jwk"
	filePasskeys      = "passkeys.json"

	clientGateway    = "gateway"
	clientBackoffice = "backoffice"
	clientForward    = "forward"
)

// benchPAN is a test card number (Visa test range); it never leaves the
// loopback bench.
const benchPAN = "4242424242424242"

// The bench's back office as the key service's WebAuthn relying party, and
// the operator whose (software) passkey approves every reveal.
const (
	benchRPID     = "backoffice.bench.test"
	benchOrigin   = "https://backoffice.bench.test"
	benchOperator = "op_bench"
)

// KEKAlg maps the short names the command accepts to keyring algorithms.
func KEKAlg(name string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "rsa3072", "rsa-3072", strings.ToLower(keyring.AlgRSA3072):
		return keyring.AlgRSA3072, nil
	case "p256", "p-256", strings.ToLower(keyring.AlgECDHP256):
		return keyring.AlgECDHP256, nil
	case "p384", "p-384", strings.ToLower(keyring.AlgECDHP384):
		return keyring.AlgECDHP384, nil
	}
	return "", fmt.Errorf("bench: unknown KEK %q (rsa3072, p256 or p384)", name)
}

// kekLabel is a short name for tables and charts.
func kekLabel(alg string) string {
	switch alg {
	case keyring.AlgRSA3072:
		return "RSA-3072"
	case keyring.AlgECDHP256:
		return "P-256"
	case keyring.AlgECDHP384:
		return "P-384"
	}
	return alg
}

// fixture is one KEK's run folder: a fresh sealed keyring, its master key,
// the client allow-list and the client signing keys (gateway, back office,
// the gateway's forward identity), plus the public and private KEK the
// load generator needs (to encrypt cards, and to measure the raw crypto
// limit with the very key the service uses).
type fixture struct {
	dir        string
	alg        string
	kid        string
	pub        crypto.PublicKey
	priv       crypto.PrivateKey
	gateway    *client.Signer
	backoffice *client.Signer
	forward    *client.Signer // the gateway's forward identity (its child signs with the key file)
	// passkey is the bench operator's passkey, approved in the registry
	// as a key-zone admin would; browserKey is the reveal page's key pair
	// the answers are opened with.
	passkey    *passkeytest.Authenticator
	browserKey wire.BrowserKey
	browser    *ecdsa.PrivateKey
}

func newFixture(dir, alg string) (*fixture, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	kr, err := keyring.New(alg)
	if err != nil {
		return nil, err
	}
	master, err := keyring.GenerateMasterKey()
	if err != nil {
		return nil, err
	}
	defer clear(master)
	if err := keyring.Save(p(fileKeyring), kr, master); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p(fileMasterKey), []byte(keyring.EncodeMasterKey(master)), 0o600); err != nil {
		return nil, err
	}
	fx := &fixture{dir: dir, alg: alg, kid: kr.Newest().Kid}
	for _, v := range kr.PublicKeys() {
		if v.Kid == fx.kid {
			fx.pub = v.Key
		}
	}
	if fx.priv, err = kr.Lookup(fx.kid); err != nil {
		return nil, err
	}
	al := &sigauth.AllowList{}
	for _, c := range []struct {
		id, file string
		ops      []string
		dst      **client.Signer
	}{
		{clientGateway, fileGatewayKey, []string{wire.OpInspect, wire.OpRewrap}, &fx.gateway},
		{clientBackoffice, fileBackofficeKey, []string{wire.OpReveal, wire.OpAudit}, &fx.backoffice},
		{clientForward, fileForwardKey, []string{wire.OpForward}, &fx.forward},
	} {
		kid, pub, err := client.GenerateKeyFile(p(c.file), c.id)
		if err != nil {
			return nil, err
		}
		if err := al.AddClient(c.id, c.ops, kid, pub); err != nil {
			return nil, err
		}
		_, key, err := client.LoadKeyFile(p(c.file))
		if err != nil {
			return nil, err
		}
		*c.dst = &client.Signer{ClientID: c.id, Kid: kid, Audience: Audience, Key: key, TTL: wire.MaxTTL}
	}
	if err := al.Save(p(fileClients)); err != nil {
		return nil, err
	}
	if err := fx.enrolPasskey(p(filePasskeys)); err != nil {
		return nil, err
	}
	return fx, nil
}

// enrolPasskey registers the bench operator's passkey and approves it in
// the key service's registry, before the key service starts. It keeps no
// sign counter (as a synced passkey): reveals prepared ahead may arrive in
// any order.
func (fx *fixture) enrolPasskey(path string) error {
	rp := passkey.RP{ID: benchRPID, Origins: []string{benchOrigin}}
	v, err := passkey.New(rp)
	if err != nil {
		return err
	}
	if fx.passkey, err = passkeytest.New(rp.ID, benchOrigin); err != nil {
		return err
	}
	fx.passkey.NoCounter = true
	challenge := wire.EnrolChallenge("pkn_bench", benchOperator)
	att, err := fx.passkey.Create(challenge, wire.UserHandle(benchOperator))
	if err != nil {
		return err
	}
	cred, err := v.Register(challenge, wire.UserHandle(benchOperator), att)
	if err != nil {
		return fmt.Errorf("bench: passkey: %w", err)
	}
	reg, err := passkeys.Open(path)
	if err != nil {
		return err
	}
	if err := reg.AddPending(passkeys.Entry{Actor: benchOperator, Username: "Bench operator", Client: clientBackoffice, Credential: cred}); err != nil {
		return err
	}
	if _, err := reg.Approve(cred.IDString(), "bench", time.Now()); err != nil {
		return err
	}
	if fx.browser, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	pt, err := fx.browser.PublicKey.Bytes()
	if err != nil {
		return err
	}
	fx.browserKey = wire.BrowserKey{Kty: "EC", Crv: "P-256", X: base64.RawURLEncoding.EncodeToString(pt[1:33]), Y: base64.RawURLEncoding.EncodeToString(pt[33:])}
	return nil
}

// cardJWE encrypts the bench card for a session, as the checkout page would.
func (fx *fixture) cardJWE(session string) ([]byte, error) {
	pt := fmt.Sprintf(`{"pan":%q,"exp_month":12,"exp_year":%d,"name":"Bench Shopper","iat":%d}`, benchPAN, time.Now().Year()+3, time.Now().Unix())
	return jose.Encrypt([]byte(pt), fx.pub, fx.kid, map[string]string{jose.HeaderSessionID: session})
}
