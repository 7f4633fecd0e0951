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
