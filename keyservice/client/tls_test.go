package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// selfSigned is a client certificate and the pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// TestClientTLS: both senders verify the key service's certificate against
// the configured CA and present the gateway's client certificate (mTLS);
// without either the call fails and nothing is read.
func TestClientTLS(t *testing.T) {
	bothSenders(t, func(t *testing.T, newClient clientMaker) {
		f := newFixture(t, "")
		clientCert, clientCAs := selfSigned(t)
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"kid":"kek-1","brand":"visa","bin":"424242","last4":"4242","exp_month":12,"exp_year":2030,"fingerprint":"fpm_x"}`))
		}))
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs, MinVersion: tls.VersionTLS12}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		serverCA := x509.NewCertPool()
		serverCA.AddCert(srv.Certificate())
		req := wire.InspectRequest{JWE: "a.b.c.d.e", Session: "cs_1", Merchant: "m_1"}
		mk := func(roots *x509.CertPool, certs []tls.Certificate) *client.Client {
			hc := client.HTTPClient(false)
			tr := hc.Transport.(*http.Transport)
			tr.TLSClientConfig.RootCAs, tr.TLSClientConfig.Certificates = roots, certs
			return newClient(srv.URL, f.signer, hc)
		}
		if got, err := mk(serverCA, []tls.Certificate{clientCert}).Inspect(context.Background(), req); err != nil || got.Kid != "kek-1" {
			t.Fatalf("with the CA and a client certificate: %+v %v", got, err)
		}
		if _, err := mk(serverCA, nil).Inspect(context.Background(), req); err == nil {
			t.Fatal("no client certificate, yet an answer")
		}
		if _, err := mk(clientCAs, []tls.Certificate{clientCert}).Inspect(context.Background(), req); err == nil {
			t.Fatal("a server certificate from an unknown CA, yet an answer")
		}
	})
}
