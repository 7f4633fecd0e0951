package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/blindgate/blindgate/keyservice/destinations"
)

// Files and names of the forward path.
const (
	fileDestinations = "destinations.json"
	fileStandinCA    = "standin-ca.pem"
	destStandin      = "standin"
)

// standin is the processor the forward path reaches: an HTTPS server on
// loopback, in the load generator's process, with a certificate of its own
// CA (which the key service's destination trusts, as it would a
// processor's). It answers a payment like a processor, with a tiny JSON
// body, and times its own handling so that the bench can report what a
// forward adds on top of the destination.
//
// It runs in the parent, so its CPU time counts as the load generator's.
type standin struct {
	srv    *http.Server
	addr   string
	caFile string

	mu    sync.Mutex
	lat   hist // handling time of the requests since the last take
	count int64
}

// startStandin listens on 127.0.0.1 and writes its CA to dir.
func startStandin(dir string) (*standin, error) {
	caPEM, cert, err := standinCert(time.Now())
	if err != nil {
		return nil, err
	}
	s := &standin{caFile: filepath.Join(dir, fileStandinCA)}
	if err := os.WriteFile(s.caFile, caPEM, 0o600); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{
		Handler: s, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		// The key service hangs up after every forward (no keep-alive to
		// destinations); the resulting handshake noise is not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return s, nil
}

func (s *standin) stop() {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// destination is the key service's destination for the stand-in, usable
// by merchant: loopback is private, so allow_private names it.
func (s *standin) destination(merchant string) destinations.Destination {
	return destinations.Destination{
		ID: destStandin, URL: "https://" + s.addr + "/v1", Method: http.MethodPost,
		AnswerHeaders: []string{"Psp-Reference"}, CAFile: s.caFile, TimeoutMS: 10_000,
		Merchants: []string{merchant}, AllowPrivate: []string{"127.0.0.0/8"},
		// The stand-in's card fields (forward.go's template): the card goes
		// nowhere else.
		CardFields: &destinations.CardFields{Places: map[string][]string{
			"card.number": {"number"}, "card.exp_month": {"exp_month"}, "card.exp_year": {"exp_year"},
		}},
	}
}

// writeDestinations writes the key service's destinations file with the
// stand-in's destination; the running key service picks it up.
func (s *standin) writeDestinations(dir, merchant string) error {
	l := destinations.New(dir)
	if err := l.Add(s.destination(merchant)); err != nil {
		return err
	}
	return l.Save(filepath.Join(dir, fileDestinations))
}

// standinPayment is what the bench's template sends.
type standinPayment struct {
	Reference string `json:"reference"`
	Number    string `json:"number"`
	ExpMonth  string `json:"exp_month"`
	ExpYear   string `json:"exp_year"`
}

// ServeHTTP authorizes a payment whose number looks like a card (16
// digits): enough to show that the template arrived filled, no more (the
// processor of deploy/processor checks Luhn and expiry). It never logs or
// echoes the number.
func (s *standin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	var in standinPayment
	err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Psp-Reference", "psp-bench")
	if err != nil || len(in.Number) != 16 || in.ExpMonth == "" || in.ExpYear == "" {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"status":"declined"}`)
	} else {
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"pay_bench","status":"authorized","last4":"`+in.Number[12:]+`"}`)
	}
	d := time.Since(t0)
	s.mu.Lock()
	s.lat.add(d)
	s.count++
	s.mu.Unlock()
}

// take returns the requests handled since the last take, and their
// handling times, and starts over.
func (s *standin) take() (int64, hist) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, h := s.count, s.lat
	s.count, s.lat = 0, hist{}
	return n, h
}

// standinCert makes a CA and a server certificate for 127.0.0.1 signed by
// it, valid for a day; it returns the CA as PEM.
func standinCert(now time.Time) ([]byte, tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench processor stand-in CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return caPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
