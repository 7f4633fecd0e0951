// Command probe is a test-only HTTP client for the e2e suite. It runs inside
// a container network (image blindgate/probe, FROM scratch, so there is no
// curl) and reports what a container in that network zone can reach:
//
//	probe [-timeout 3s] URL
//
// It prints "status <code>" and up to 64 KiB of the body and exits 0 when an
// HTTP answer came back, or prints "error <reason>" and exits 3 when none did.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 3*time.Second, "give up after this long")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: probe [-timeout 3s] URL")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	code, body, err := get(ctx, flag.Arg(0))
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	fmt.Printf("status %d\n%s\n", code, body)
}

func get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	// No proxy from the environment: the probe must test the network path.
	tr := &http.Transport{Proxy: nil}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, body, err
}
