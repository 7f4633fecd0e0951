package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// loopbackDialer dials only loopback and records every address.
type loopbackDialer struct {
	t     *testing.T
	mu    sync.Mutex
	addrs []string
}

func (d *loopbackDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
	if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().IsLoopback() {
		d.t.Errorf("dial to non-loopback %q", addr)
		return nil, errors.New("test: refused")
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func (d *loopbackDialer) dials() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// seqResolver answers answers[i] to the i-th lookup (the last one after).
type seqResolver struct {
	mu      sync.Mutex
	answers [][]netip.Addr
	calls   int
}

func (r *seqResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.answers[min(r.calls, len(r.answers)-1)]
	r.calls++
	return a, nil
}

// echoServer answers each line it reads with "echo: <line>" on loopback.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					io.WriteString(c, "echo: "+sc.Text()+"\n")
				}
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

type fixture struct {
	url  string // the proxy's address
	dial *loopbackDialer
	res  *seqResolver
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFixture(t *testing.T, allow string, answers ...[]netip.Addr) *fixture {
	t.Helper()
	al, err := ParseAllowList(allow)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dial: &loopbackDialer{t: t}, res: &seqResolver{answers: answers}, logs: &syncBuffer{}}
	if len(answers) == 0 {
		f.res.answers = [][]netip.Addr{{netip.MustParseAddr("127.0.0.1")}}
	}
	p := New(Config{Allow: al, Resolver: f.res, Dialer: f.dial, Log: slog.New(slog.NewTextHandler(f.logs, nil))})
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	f.url = strings.TrimPrefix(srv.URL, "http://")
	return f
}

// connect sends CONNECT target and returns the status and, on 200, the
// tunnel.
func (f *fixture) connect(t *testing.T, target string) (int, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", f.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, c, br
}

func TestConnect(t *testing.T) {
	port := echoServer(t)
	pub := netip.MustParseAddr("203.0.113.9")
	lo := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name    string
		allow   string
		target  string
		answers [][]netip.Addr
		want    int
	}{
		{"200/listed-private-named", "psp.example:" + port + " 127.0.0.0/8", "psp.example:" + port, nil, 200},
		{"200/host-case-insensitive", "PSP.example:" + port + " 127.0.0.1/32", "psp.EXAMPLE:" + port, nil, 200},
		{"200/ip-literal-named", "127.0.0.1:" + port + " 127.0.0.1/32", "127.0.0.1:" + port, nil, 200},
		{"403/not-listed", "psp.example:" + port + " 127.0.0.0/8", "other.example:" + port, nil, 403},
		{"403/listed-host-other-port", "psp.example:" + port + " 127.0.0.0/8", "psp.example:22", nil, 403},
		{"403/private-not-named", "psp.example:" + port, "psp.example:" + port, nil, 403},
		{"403/ip-literal-loopback-not-named", "127.0.0.1:" + port, "127.0.0.1:" + port, nil, 403},
		{"403/metadata-address", "psp.example:" + port + " 127.0.0.0/8", "psp.example:" + port, [][]netip.Addr{{netip.MustParseAddr("169.254.169.254")}}, 403},
		{"403/mixed-public-and-private", "psp.example:" + port, "psp.example:" + port, [][]netip.Addr{{pub, lo}}, 403},
		{"403/empty-list", "", "psp.example:" + port, nil, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.allow, tc.answers...)
			st, c, br := f.connect(t, tc.target)
			if st != tc.want {
				t.Fatalf("CONNECT %s = %d, want %d; logs:\n%s", tc.target, st, tc.want, f.logs.String())
			}
			if st != 200 {
				if d := f.dial.dials(); len(d) != 0 {
					t.Errorf("refused, yet dialed %v", d)
				}
				if !strings.Contains(f.logs.String(), "egress refused") {
					t.Errorf("refusal not logged:\n%s", f.logs.String())
				}
				return
			}
			io.WriteString(c, "secret-content\n")
			line, err := br.ReadString('\n')
			if err != nil || line != "echo: secret-content\n" {
				t.Fatalf("through the tunnel: %q, %v", line, err)
			}
			c.Close()
			waitFor(t, func() bool { return strings.Contains(f.logs.String(), "egress tunnel") })
			logs := f.logs.String()
			if strings.Contains(logs, "secret-content") {
				t.Errorf("tunnel content logged:\n%s", logs)
			}
			for _, want := range []string{"port=" + port, "ip=127.0.0.1", "bytes_sent=15", "bytes_received=21", "duration_ms="} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q:\n%s", want, logs)
				}
			}
		})
	}
}

func TestOnlyConnect(t *testing.T) {
	port := echoServer(t)
	f := newFixture(t, "127.0.0.1:"+port+" 127.0.0.1/32")
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequest(m, "http://127.0.0.1:"+port+"/", nil)
		// Sent to the proxy as an absolute-form proxy request.
		c, err := net.Dial("tcp", f.url)
		if err != nil {
			t.Fatal(err)
		}
		_ = req.WriteProxy(c)
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		c.Close()
		if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("%s through the proxy: %v %v, want 405", m, resp, err)
		}
	}
	if d := f.dial.dials(); len(d) != 0 {
		t.Errorf("a plain-HTTP request was relayed: dials %v", d)
	}
}

func TestRebindingDialsTheCheckedAddress(t *testing.T) {
	port := echoServer(t)
	f := newFixture(t, "psp.example:"+port+" 127.0.0.0/8",
		[]netip.Addr{netip.MustParseAddr("127.0.0.1")}, []netip.Addr{netip.MustParseAddr("10.9.9.9")})
	if st, _, _ := f.connect(t, "psp.example:"+port); st != 200 {
		t.Fatalf("CONNECT = %d", st)
	}
	if d := f.dial.dials(); f.res.calls != 1 || len(d) != 1 || d[0] != "127.0.0.1:"+port {
		t.Fatalf("resolver calls %d, dials %v: want one lookup and the checked address dialed", f.res.calls, d)
	}
}

func TestDialFailureIs502(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close() // nothing listens there now
	f := newFixture(t, "psp.example:"+port+" 127.0.0.0/8")
	if st, _, _ := f.connect(t, "psp.example:"+port); st != http.StatusBadGateway {
		t.Fatalf("CONNECT to a closed port = %d, want 502", st)
	}
}

func TestParseAllowList(t *testing.T) {
	al, err := ParseAllowList("# processors\napi.psp.example:443\n\nprocessor:8443 172.16.0.0/12 fd00::/8, Other.example:8443\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(al) != 3 {
		t.Fatalf("entries: %v", al)
	}
	if r, ok := al.Lookup("processor:8443"); !ok || len(r.Private) != 2 {
		t.Errorf("processor:8443 = %+v %v", r, ok)
	}
	if _, ok := al.Lookup("other.example:8443"); !ok {
		t.Error("host names are not lower-cased")
	}
	for _, bad := range []string{"api.psp.example", "api.psp.example:0", "api.psp.example:99999", "api.psp.example:443x",
		"*.psp.example:443", "api.psp.example:443 10.0.0.0", ":443", "user@host:443"} {
		if _, err := ParseAllowList(bad); !errors.Is(err, ErrInvalidAllowList) {
			t.Errorf("ParseAllowList(%q) = %v, want ErrInvalidAllowList", bad, err)
		}
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("timed out")
}
