package app

import (
	"flag"
	"strings"
	"testing"
)

func TestValidateProxyTrust(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"ok/no-proxy", nil, ""},
		{"ok/proxy-with-trust", []string{"-proxy-header", "X-Forwarded-For", "-trusted-proxies", "10.0.0.0/8,192.0.2.1"}, ""},
		{"err/proxy-without-trust", []string{"-proxy-header", "X-Forwarded-For"}, "needs trusted-proxies"},
		{"err/trust-without-proxy", []string{"-trusted-proxies", "10.0.0.0/8"}, "needs proxy-header"},
		{"err/bad-cidr", []string{"-proxy-header", "X-Forwarded-For", "-trusted-proxies", "10.0.0.0/40"}, "trusted-proxies"},
		{"err/inline-name-key", []string{"-login-name-key", "hunter2hunter2"}, "login-name-key"},
		{"ok/rewrap-off", []string{"-rewrap-interval", "0"}, ""},
		{"err/rewrap-interval-too-short", []string{"-rewrap-interval", "5m"}, "rewrap-interval"},
		{"err/rewrap-rate-negative", []string{"-rewrap-rate", "-1"}, "rewrap-rate"},
		{"ok/keyservice-replicas", []string{"-keyservice-url", "https://ks-1:8443, https://ks-2:8443"}, ""},
		{"err/keyservice-replica-not-a-url", []string{"-keyservice-url", "https://ks-1:8443,ks-2:8443"}, "keyservice-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			c.Flags(fs)
			if err := fs.Parse(append([]string{"-store", "bolt", "-keyservice-audience", "ks_test"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate = %v, want an error about %q", err, tt.wantErr)
			}
		})
	}
}

// TestOperatorAuth: the MFA mode and the passkeys' relying party come from
// the back office's origin; an IP address has no relying party, which turns
// passkeys off, or is refused where passkeys are required or named.
func TestOperatorAuth(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantRP     string // "" with no relying party
		wantOrigin string
		wantErr    string
	}{
		{"ok/default-any-at-localhost", nil, "localhost", "http://localhost:8080", ""},
		{"ok/backoffice-url-beside-an-ip-public-url", []string{"-public-url", "http://127.0.0.1:8080", "-backoffice-url", "http://localhost:8080"}, "localhost", "http://localhost:8080", ""},
		{"ok/parent-domain-rp-id", []string{"-public-url", "https://pay.example.com", "-webauthn-rp-id", "example.com"}, "example.com", "https://pay.example.com", ""},
		{"ok/any-at-an-ip-passkeys-off", []string{"-public-url", "http://127.0.0.1:8080"}, "", "", ""},
		{"ok/totp-at-an-ip", []string{"-public-url", "http://127.0.0.1:8080", "-operator-mfa", "totp"}, "", "", ""},
		{"err/passkey-mode-at-an-ip", []string{"-public-url", "http://127.0.0.1:8080", "-operator-mfa", "passkey"}, "", "", "passkeys need a host name"},
		{"err/unknown-mode", []string{"-operator-mfa", "sms"}, "", "", "operator-mfa"},
		{"err/rp-id-not-the-origins-domain", []string{"-public-url", "https://pay.example.com", "-webauthn-rp-id", "other.example"}, "", "", "passkeys"},
		{"err/plain-http-off-loopback", []string{"-public-url", "http://pay.example.com"}, "", "", "passkeys"},
		{"err/backoffice-url-not-an-origin", []string{"-backoffice-url", "https://pay.example.com/backoffice"}, "", "", "backoffice-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			c.Flags(fs)
			if err := fs.Parse(append([]string{"-store", "bolt", "-keyservice-audience", "ks_test"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Validate = %v, want an error about %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			_, rp, _ := c.OperatorAuth()
			switch {
			case tt.wantRP == "" && rp != nil:
				t.Fatalf("relying party %+v, want none", *rp)
			case tt.wantRP != "" && (rp == nil || rp.ID != tt.wantRP || len(rp.Origins) != 1 || rp.Origins[0] != tt.wantOrigin):
				t.Fatalf("relying party %+v, want %s at %s", rp, tt.wantRP, tt.wantOrigin)
			}
		})
	}
}
