package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/client"
)

// signCmd prints an Authorization header for one request, so the key service
// can be called with curl (Contract 2). Each header is single-use (its jti).
func signCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	keyFile := fs.String("key", "gateway.jwk", "private signing key (JWK)")
	id := fs.String("client", "gateway", "client id (iss)")
	aud := fs.String("audience", envOr("BLINDGATE_GW_KEYSERVICE_AUDIENCE", ""), "key service id (aud): its deployment id, from `keyservice keys list`")
	method := fs.String("method", http.MethodPost, "HTTP method")
	url := fs.String("url", "", "full request URL, e.g. https://127.0.0.1:8443/v1/inspect")
	bodyFile := fs.String("body-file", "", "request body file ('-' = standard input); empty = no body")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("sign: -url is required")
	}
	if *aud == "" {
		return errors.New("sign: -audience is required: the key service's deployment id (keyservice keys list)")
	}
	var body []byte
	var err error
	switch *bodyFile {
	case "":
	case "-":
		body, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	default:
		body, err = os.ReadFile(*bodyFile)
	}
	if err != nil {
		return err
	}
	kid, key, err := client.LoadKeyFile(*keyFile)
	if err != nil {
		return err
	}
	s := &client.Signer{ClientID: *id, Kid: kid, Audience: *aud, Key: key}
	h, err := s.Authorization(*method, *url, body)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, h)
	return nil
}

// encryptCmd builds a card JWE the way the checkout page does, from a JSON
// card on standard input, for trying the key service by hand. It adds iat.
func encryptCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("encrypt", flag.ContinueOnError)
	jwksURL := fs.String("jwks", "http://127.0.0.1:8080/v1/keys", "where to fetch the public KEKs (gateway /v1/keys or key service /.well-known/jwks.json)")
	session := fs.String("session", "", "checkout session id (bg_sid)")
	insecure := fs.Bool("insecure-skip-verify", false, "development only: do not verify TLS")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *session == "" {
		return errors.New("encrypt: -session is required")
	}
	in, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
	if err != nil {
		return err
	}
	card := strings.TrimSpace(string(in))
	if !strings.HasPrefix(card, "{") || !strings.HasSuffix(card, "}") {
		return errors.New(`encrypt: standard input must be a JSON object like {"pan":"4242424242424242","exp_month":12,"exp_year":2030,"name":"A"}`)
	}
	if !strings.Contains(card, `"iat"`) {
		card = strings.TrimSuffix(card, "}") + fmt.Sprintf(`,"iat":%d}`, time.Now().Unix())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *jwksURL, nil)
	if err != nil {
		return err
	}
	resp, err := client.HTTPClient(*insecure).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	keys, err := jose.ParseJWKS(b)
	if err != nil || len(keys) == 0 {
		return fmt.Errorf("encrypt: no usable key at %s: %v", *jwksURL, err)
	}
	jwe, err := jose.Encrypt([]byte(card), keys[0].Key, keys[0].Kid, map[string]string{jose.HeaderSessionID: *session})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, string(jwe))
	return nil
}
