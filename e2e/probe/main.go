// Command probe is a test-only HTTP client for the e2e suite. It runs inside
// a container network (image blindgate/probe, FROM scratch, so there is no
// curl) and reports what a container in that network zone can reach:
//
//	probe [-timeout 3s] [-method POST] [-header 'Name: value']... [-body DATA] URL
//
// It prints "status <code>" and up to 64 KiB of the body and exits 0 when an
// HTTP answer came back, or prints "error <reason>" and exits 3 when none did.
// A POST with a header and a body sends a signed request as the suite made
// it on the host, to a key service no host port reaches.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// headers is a repeatable -header flag.
type headers []string

func (h *headers) String() string     { return strings.Join(*h, "; ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	timeout := flag.Duration("timeout", 3*time.Second, "give up after this long")
	method := flag.String("method", http.MethodGet, "HTTP method")
	body := flag.String("body", "", "request body")
	var hdrs headers
	flag.Var(&hdrs, "header", "request header 'Name: value' (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: probe [-timeout 3s] [-method M] [-header 'N: v']... [-body DATA] URL")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	code, out, err := send(ctx, *method, flag.Arg(0), hdrs, *body)
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	fmt.Printf("status %d\n%s\n", code, out)
}

func send(ctx context.Context, method, url string, hdrs []string, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	for _, h := range hdrs {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return 0, nil, fmt.Errorf("header %q: want 'Name: value'", h)
		}
		req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	// No proxy from the environment: the probe must test the network path.
	tr := &http.Transport{Proxy: nil}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, out, err
}
