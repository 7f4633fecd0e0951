package forward

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/keyservice/destinations"
)

// fakeEgress is a CONNECT proxy on loopback that tunnels only to allowed
// targets, each mapped to a loopback address, and records what it was asked.
type fakeEgress struct {
	ln      net.Listener
	allowed map[string]string // CONNECT target -> loopback address dialed
	mu      sync.Mutex
	asked   []string
}

func newFakeEgress(t *testing.T, allowed map[string]string) *fakeEgress {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeEgress{ln: ln, allowed: allowed}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *fakeEgress) serve(c net.Conn) {
	defer c.Close()
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	p.mu.Lock()
	p.asked = append(p.asked, req.Method+" "+req.Host)
	p.mu.Unlock()
	to, ok := p.allowed[req.Host]
	if req.Method != http.MethodConnect || !ok {
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", to)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	go io.Copy(up, c)
	io.Copy(c, up)
}

func (p *fakeEgress) url() *url.URL { return &url.URL{Scheme: "http", Host: p.ln.Addr().String()} }

func (p *fakeEgress) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.asked...)
}

func TestSenderThroughEgressProxy(t *testing.T) {
	destPort := func(f *fixture, id string) string {
		d, err := f.list.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		return d.Port
	}
	t.Run("tunnels-by-name-tls-end-to-end", func(t *testing.T) {
		f := newFixture(t, echoPAN, nil)
		port := destPort(f, "no-private")
		p := newFakeEgress(t, map[string]string{"example.com:" + port: "127.0.0.1:" + port})
		f.svc.cfg.Sender.(*Sender).EgressProxy = p.url()
		// no-private would be refused if the key service resolved the
		// name itself (the fixture's resolver answers loopback): through
		// the proxy, the proxy resolves and applies the address rule.
		resp, err := f.svc.Forward(context.Background(), Meta{}, f.request("no-private", "k1"))
		if err != nil || resp.Status != 201 {
			t.Fatalf("Forward = %+v, %v", resp, err)
		}
		if got := p.requests(); len(got) != 1 || got[0] != "CONNECT example.com:"+port {
			t.Errorf("proxy asked %v, want one CONNECT example.com:%s", got, port)
		}
		if f.res.calls != 0 {
			t.Errorf("the key service resolved the destination itself (%d lookups)", f.res.calls)
		}
		if strings.Contains(resp.Body, testPAN) {
			t.Error("answer not redacted")
		}
	})
	t.Run("proxy-403-is-address-refused-nothing-sent", func(t *testing.T) {
		f := newFixture(t, echoPAN, nil)
		p := newFakeEgress(t, nil)
		f.svc.cfg.Sender.(*Sender).EgressProxy = p.url()
		_, err := f.svc.Forward(context.Background(), Meta{}, f.request("named", "k1"))
		if !errors.Is(err, ErrAddressRefused) || f.hits.Load() != 0 {
			t.Fatalf("Forward = %v, hits %d", err, f.hits.Load())
		}
	})
	t.Run("tls-still-verified-against-the-destination", func(t *testing.T) {
		f := newFixture(t, echoPAN, nil)
		port := destPort(f, "named")
		// A proxy that sends the tunnel somewhere else (its own TLS
		// server, another certificate) gets no card.
		other := newOtherTLS(t)
		p := newFakeEgress(t, map[string]string{"example.com:" + port: other})
		f.svc.cfg.Sender.(*Sender).EgressProxy = p.url()
		if _, err := f.svc.Forward(context.Background(), Meta{}, f.request("named", "k1")); !errors.Is(err, ErrUnreachable) || f.hits.Load() != 0 {
			t.Fatalf("Forward = %v, hits %d", err, f.hits.Load())
		}
	})
	t.Run("private-ip-literal-refused-before-the-proxy", func(t *testing.T) {
		f := newFixture(t, echoPAN, nil)
		p := newFakeEgress(t, nil)
		s := f.svc.cfg.Sender.(*Sender)
		s.EgressProxy = p.url()
		d, err := destinations.Compile(destinations.Destination{ID: "lit", URL: "https://10.0.0.1/v1", SystemRoots: true, Merchants: []string{"m_1"}}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Send(context.Background(), d, Request{URL: "https://10.0.0.1/v1", Method: http.MethodPost, ContentType: "application/json"})
		if !errors.Is(err, ErrAddressRefused) || len(p.requests()) != 0 {
			t.Fatalf("Send = %v, proxy asked %v", err, p.requests())
		}
	})
}

// newOtherTLS is a TLS server for example.com with a self-signed
// certificate no destination trusts (httptest's own is shared by all).
func newOtherTLS(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the untrusted server got a request")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
