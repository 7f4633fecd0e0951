package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestFailoverReadsFastHTTPErrors: each of fasthttp's failures, as the fast
// sender reports it, leads failover where net/http's counterpart does, and
// none of them is a key-service answer (*Error): the gateway maps it as
// "key service unavailable".
func TestFailoverReadsFastHTTPErrors(t *testing.T) {
	const u = "http://ks-1:8443/v1/inspect"
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &net.OpError{Op: "connect", Err: syscall.ECONNREFUSED}}
	wrap := func(err error) error {
		return fmt.Errorf("keyservice client: /v1/inspect: %w", urlError("POST", u, err))
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name           string
		err            error
		ctx            context.Context
		next, passOver bool // for a call safe to repeat
		nextOnce       bool // for a call not to be sent twice
	}{
		// Both senders dial with the transport's dialer.
		{"next/dial-refused", wrap(refused), nil, true, true, true},
		{"next/dial-timeout", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}), nil, true, true, true},
		{"next/fasthttp-no-free-connection", wrap(&noConnection{fasthttp.ErrNoFreeConns}), nil, true, true, true},
		{"dropped/net-http-eof", wrap(io.EOF), nil, true, true, false},
		{"dropped/fasthttp-connection-closed", wrap(fasthttp.ErrConnectionClosed), nil, true, true, false},
		{"dropped/net-http-unexpected-eof", fmt.Errorf("keyservice client: /v1/inspect: read: %w", io.ErrUnexpectedEOF), nil, true, true, false},
		{"dropped/fasthttp-timeout", wrap(fasthttp.ErrTimeout), nil, true, true, false},
		{"dropped/fasthttp-tls-handshake-timeout", wrap(fasthttp.ErrTLSHandshakeTimeout), nil, true, true, false},
		{"stop/call-over", wrap(context.Canceled), done, false, false, false},
		{"stop/bad-response", fmt.Errorf("%w from /v1/inspect", ErrBadResponse), nil, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			if next, pass := failover(ctx, tc.err, true); next != tc.next || pass != tc.passOver {
				t.Errorf("repeatable: next %v, pass over %v; want %v, %v", next, pass, tc.next, tc.passOver)
			}
			if next, _ := failover(ctx, tc.err, false); next != tc.nextOnce {
				t.Errorf("not repeatable: next %v, want %v", next, tc.nextOnce)
			}
			var ke *Error
			if errors.As(tc.err, &ke) {
				t.Error("a transport failure reads as the key service's answer")
			}
		})
	}
}
