// Command processor is a card processor stand-in for the e2e suite and
// docker-compose.yml: the destination a forward reaches through the key
// service and the egress proxy. Not part of Blindgate.
//
//	processor -addr 0.0.0.0:8443 -hosts processor -ca-out /shared/processor-ca.pem
//
// At start it makes its own CA and a server certificate for -hosts and
// writes the CA (PEM) to -ca-out: the key service's destination trusts that
// file. It answers POST on any path with a JSON body
//
//	{"reference":"...","number":"...","exp_month":"12","exp_year":"2031","cvc":"123"}
//
// like a processor: 201 {"id":"pay_...","status":"authorized","last4":...}
// when the number passes Luhn, the expiry is in the future and a CVC, if
// any, is 3-4 digits and the first for its reference (a token's CVC is
// single-use); otherwise 422 {"status":"declined","reason":...}. Every
// answer also echoes the full number in "card_echo", on purpose: the key
// service must redact it. GET /stats counts what arrived. It logs counts,
// never a number.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/blindgate/blindgate/internal/atomicfile"
	"github.com/blindgate/blindgate/internal/envflag"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], log); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			log.Error("processor stopped", "err", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	env := envflag.Env("BLINDGATE_PROCESSOR_")
	fs := flag.NewFlagSet("processor", flag.ContinueOnError)
	addr := fs.String("addr", env.String("ADDR", "127.0.0.1:8443"), "listen address (HTTPS)")
	hosts := fs.String("hosts", env.String("HOSTS", "processor,localhost,127.0.0.1"), "names and addresses on the server certificate, comma-separated")
	caOut := fs.String("ca-out", env.String("CA_OUT", "processor-ca.pem"), "where to write the CA certificate (PEM) a destination trusts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	caPEM, cert, err := newCA(strings.Split(*hosts, ","), time.Now())
	if err != nil {
		return err
	}
	if err := atomicfile.Write(*caOut, caPEM); err != nil {
		return fmt.Errorf("ca-out: %w", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	p := newProcessor(time.Now)
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("processor listening", "addr", ln.Addr().String(), "ca", *caOut)
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newCA makes a CA and a server certificate for hosts signed by it, valid
// for a day; it returns the CA as PEM.
func newCA(hosts []string, now time.Time) ([]byte, tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "processor stand-in CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(strings.TrimSpace(h)); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else if h = strings.TrimSpace(h); h != "" {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return caPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// Stats is GET /stats.
type Stats struct {
	Requests   int `json:"requests"`
	Authorized int `json:"authorized"`
	Declined   int `json:"declined"`
	WithCVC    int `json:"with_cvc"`
}

// processor holds what arrived; safe for concurrent use.
type processor struct {
	now func() time.Time
	mu  sync.Mutex
	st  Stats
	// cvcSeen: the references (or card hashes) a CVC came with.
	cvcSeen map[string]bool
}

func newProcessor(now func() time.Time) *processor {
	return &processor{now: now, cvcSeen: map[string]bool{}}
}

type payment struct {
	Reference string `json:"reference"`
	Number    string `json:"number"`
	ExpMonth  string `json:"exp_month"`
	ExpYear   string `json:"exp_year"`
	CVC       string `json:"cvc"`
}

func (p *processor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/stats" {
		p.mu.Lock()
		st := p.st
		p.mu.Unlock()
		writeJSON(w, http.StatusOK, st)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var in payment
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in); err != nil {
		p.answer(w, in, "malformed", false)
		return
	}
	p.answer(w, in, p.check(in), in.CVC != "")
}

// check returns why the payment is declined, or "".
func (p *processor) check(in payment) string {
	if !luhn(in.Number) {
		return "luhn"
	}
	m, errM := strconv.Atoi(in.ExpMonth)
	y, errY := strconv.Atoi(in.ExpYear)
	if errM != nil || errY != nil || m < 1 || m > 12 {
		return "expiry_invalid"
	}
	if y < 100 {
		y += 2000
	}
	// Valid through the last day of its month.
	if !p.now().Before(time.Date(y, time.Month(m)+1, 1, 0, 0, 0, 0, time.UTC)) {
		return "expired"
	}
	if in.CVC == "" {
		return ""
	}
	if n := len(in.CVC); n < 3 || n > 4 || strings.Trim(in.CVC, "0123456789") != "" {
		return "cvc_invalid"
	}
	ref := in.Reference
	if ref == "" {
		sum := sha256.Sum256([]byte(in.Number))
		ref = hex.EncodeToString(sum[:])
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cvcSeen[ref] {
		return "cvc_reused"
	}
	p.cvcSeen[ref] = true
	return ""
}

func (p *processor) answer(w http.ResponseWriter, in payment, declined string, withCVC bool) {
	p.mu.Lock()
	p.st.Requests++
	if withCVC {
		p.st.WithCVC++
	}
	id := fmt.Sprintf("pay_%06d", p.st.Requests)
	if declined == "" {
		p.st.Authorized++
	} else {
		p.st.Declined++
	}
	p.mu.Unlock()
	last4 := ""
	if len(in.Number) >= 4 {
		last4 = in.Number[len(in.Number)-4:]
	}
	out := map[string]string{"id": id, "last4": last4, "card_echo": in.Number}
	status := http.StatusCreated
	if declined == "" {
		out["status"] = "authorized"
	} else {
		out["status"], out["reason"] = "declined", declined
		status = http.StatusUnprocessableEntity
	}
	writeJSON(w, status, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Psp-Reference", "psp-stand-in")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// luhn is the processor's own check, written apart from keyservice/card so
// that a bug there cannot hide here.
func luhn(pan string) bool {
	if len(pan) < 12 || len(pan) > 19 {
		return false
	}
	sum := 0
	for i := range len(pan) {
		c := pan[len(pan)-1-i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}
