package bench

import (
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/keyring"
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

	clientGateway    = "gateway"
	clientBackoffice = "backoffice"
	clientForward    = "forward"
)

// benchPAN is a test card number (Visa test range); it never leaves the
// loopback bench.
const benchPAN = "4242424242424242"

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
	return fx, nil
}

// cardJWE encrypts the bench card for a session, as the checkout page would.
func (fx *fixture) cardJWE(session string) ([]byte, error) {
	pt := fmt.Sprintf(`{"pan":%q,"exp_month":12,"exp_year":%d,"name":"Bench Shopper","iat":%d}`, benchPAN, time.Now().Year()+3, time.Now().Unix())
	return jose.Encrypt([]byte(pt), fx.pub, fx.kid, map[string]string{jose.HeaderSessionID: session})
}
