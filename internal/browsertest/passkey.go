package browsertest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// VirtualAuthenticator attaches a DevTools virtual authenticator to the tab:
// a platform passkey (CTAP 2.1, internal transport) with resident keys and
// user verification that always succeeds, answering without a prompt. The
// page's navigator.credentials.create and get then work as with a real
// device. It returns the authenticator's id, for Credentials.
func (tb *Tab) VirtualAuthenticator(t testing.TB) webauthn.AuthenticatorID {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, tb.timeout)
	defer cancel()
	id, err := AddVirtualAuthenticator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// AddVirtualAuthenticator is Tab.VirtualAuthenticator for any chromedp tab
// context (the e2e suite's).
func AddVirtualAuthenticator(ctx context.Context) (webauthn.AuthenticatorID, error) {
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		return "", fmt.Errorf("WebAuthn.enable: %w", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		return "", fmt.Errorf("WebAuthn.addVirtualAuthenticator: %w", err)
	}
	return res.AuthenticatorID, nil
}

// Credentials lists the credentials the virtual authenticator id holds.
func (tb *Tab) Credentials(t testing.TB, id webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, tb.timeout)
	defer cancel()
	res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		t.Fatalf("WebAuthn.getCredentials: %v", err)
	}
	return res.Credentials
}

// Response is one network answer the tab received, as the page saw it.
type Response struct {
	URL    string
	Status int64
	Body   string
}

// Responses records the answers whose URL matches, bodies included: what
// the browser received, not what a server says it sent.
type Responses struct {
	tb    *Tab
	match func(url string) bool
	mu    sync.Mutex
	urls  map[network.RequestID]*network.Response
	done  []network.RequestID
}

// RecordResponses starts recording the tab's network answers from URLs for
// which match is true (Network domain events). Bodies fetches their bodies;
// call it before the page that made the requests goes away, since the
// browser keeps a body only while its document lives.
func (tb *Tab) RecordResponses(t testing.TB, match func(url string) bool) *Responses {
	t.Helper()
	r := &Responses{tb: tb, match: match, urls: map[network.RequestID]*network.Response{}}
	if err := chromedp.Listen(tb.ctx, func(ev any) {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventResponseReceived:
			if match(ev.Response.URL) {
				r.urls[ev.RequestID] = ev.Response
			}
		case *network.EventLoadingFinished:
			if _, ok := r.urls[ev.RequestID]; ok {
				r.done = append(r.done, ev.RequestID)
			}
		}
	}); err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithTimeout(tb.ctx, tb.timeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("Network.enable: %v", err)
	}
	return r
}

// Bodies returns the finished answers recorded so far, with their bodies
// (fetched from the browser, which keeps them while the page lives), and
// forgets them.
func (r *Responses) Bodies(t testing.TB) []Response {
	t.Helper()
	r.mu.Lock()
	ids := r.done
	r.done = nil
	resp := map[network.RequestID]*network.Response{}
	for _, id := range ids {
		resp[id] = r.urls[id]
	}
	r.mu.Unlock()
	var out []Response
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(r.tb.ctx, r.tb.timeout)
		b, err := chromedp.Call(ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id})
		cancel()
		if err != nil {
			t.Fatalf("Network.getResponseBody %s: %v", resp[id].URL, err)
		}
		out = append(out, Response{URL: resp[id].URL, Status: resp[id].Status, Body: string(b.Body)})
	}
	return out
}
