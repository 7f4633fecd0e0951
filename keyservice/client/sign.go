package client

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Signing algorithms for client keys.
const (
	AlgEdDSA = jose.AlgEdDSA
	AlgES256 = jose.AlgES256
)

// DefaultTTL is a signed request's lifetime unless the Signer says; the key
// service refuses one above wire.wire.MaxTTL.
const DefaultTTL = 30 * time.Second

// maxKeyFile caps a private key file read.
const maxKeyFile = 64 << 10

// Signer signs requests for one client key. Its zero TTL means DefaultTTL;
// a nil Now means time.Now. Safe for concurrent use if Key is.
type Signer struct {
	ClientID string
	Kid      string
	Audience string
	Key      crypto.Signer
	TTL      time.Duration
	Now      func() time.Time
}

// Authorization returns the Authorization header value
// "Blindgate-Sig <compact JWS>" for one request. Every call mints a fresh
// 128-bit jti, so a header must not be reused (a retry signs again).
func (s *Signer) Authorization(method, rawURL string, body []byte) (string, error) {
	if s == nil || s.Key == nil || s.ClientID == "" || s.Kid == "" || s.Audience == "" {
		return "", errors.New("keyservice client: signer needs ClientID, Kid, Audience and Key")
	}
	ttl := s.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < time.Second || ttl > wire.MaxTTL {
		return "", fmt.Errorf("keyservice client: signer TTL %s outside 1s..%s", ttl, wire.MaxTTL)
	}
	if method == "" {
		return "", errors.New("keyservice client: empty method")
	}
	htu, err := requestURI(rawURL)
	if err != nil {
		return "", err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	iat := now().Unix()
	var jti [16]byte
	if _, err := io.ReadFull(rand.Reader, jti[:]); err != nil {
		return "", fmt.Errorf("keyservice client: jti: %w", err)
	}
	c := wire.Claims{
		Iss: s.ClientID,
		Aud: s.Audience,
		Iat: iat,
		Exp: iat + int64(ttl/time.Second),
		Jti: base64.RawURLEncoding.EncodeToString(jti[:]),
		Htm: strings.ToUpper(method),
		Htu: htu,
		Bh:  wire.BodyHash(body),
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("keyservice client: claims: %w", err)
	}
	jws, err := jose.Sign(payload, s.Key, s.Kid)
	if err != nil {
		return "", fmt.Errorf("keyservice client: sign: %w", err)
	}
	return wire.AuthScheme + " " + jws, nil
}

// requestURI is the htu claim: the absolute http(s) URL without query or
// fragment, as RFC 9449 prescribes for DPoP.
func requestURI(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("keyservice client: request URL must be absolute http(s)")
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	return u.String(), nil
}

// GenerateKey makes a new client signing key: alg "EdDSA" (the default,
// also for "") or "ES256".
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "", AlgEdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("keyservice client: generate key: %w", err)
		}
		return k, nil
	case AlgES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("keyservice client: generate key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("keyservice client: unsupported signing algorithm %q", alg)
}

// NewKid names a new key of clientID: "<clientID>-<yyyymmdd>-<8 hex>", so a
// log line tells whose key and how old, and two keys never collide.
func NewKid(clientID string) (string, error) {
	var r [4]byte
	if _, err := io.ReadFull(rand.Reader, r[:]); err != nil {
		return "", fmt.Errorf("keyservice client: kid: %w", err)
	}
	return clientID + "-" + time.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(r[:]), nil
}

// GenerateKeyFile makes an Ed25519 signing key for clientID, writes it as a
// private JWK to path (mode 0600; an existing file is never overwritten)
// and returns its kid and public key for enrolment in the allow-list.
func GenerateKeyFile(path, clientID string) (kid string, pub crypto.PublicKey, err error) {
	if clientID == "" {
		return "", nil, errors.New("keyservice client: empty client id")
	}
	key, err := GenerateKey(AlgEdDSA)
	if err != nil {
		return "", nil, err
	}
	if kid, err = NewKid(clientID); err != nil {
		return "", nil, err
	}
	data, err := jose.MarshalPrivateJWK(key, kid)
	if err != nil {
		return "", nil, fmt.Errorf("keyservice client: encode key: %w", err)
	}
	defer clear(data)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("keyservice client: create key file: %w", err)
	}
	_, werr := f.Write(append(data, '\n'))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(path)
		return "", nil, fmt.Errorf("keyservice client: write key file: %w", err)
	}
	return kid, key.Public(), nil
}

// LoadKeyFile reads a private signing key written by GenerateKeyFile (or
// any Ed25519/P-256 private JWK with a kid).
func LoadKeyFile(path string) (kid string, key crypto.Signer, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("keyservice client: open key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", nil, fmt.Errorf("keyservice client: read key file: %w", err)
	}
	defer clear(data)
	if len(data) > maxKeyFile {
		return "", nil, errors.New("keyservice client: key file too large")
	}
	kid, key, err = jose.ParsePrivateJWK(bytes.TrimSpace(data))
	if err != nil {
		return "", nil, fmt.Errorf("keyservice client: key file %s: %w", path, err)
	}
	return kid, key, nil
}
