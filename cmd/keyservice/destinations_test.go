package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestDestinationsListHosts: the egress proxy's allow-list is derived from
// the destinations, each host:port once, with its private prefixes; a
// processor-key destination needs no route and is not listed.
func TestDestinationsListHosts(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "destinations.json")
	auditLog := filepath.Join(dir, "audit.log")
	add := func(json string) {
		t.Helper()
		src := filepath.Join(dir, "d.json")
		if err := os.WriteFile(src, []byte(json), 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := destinationsCmd([]string{"add", "-destinations", file, "-audit-log", auditLog, "-from", src}, &out); err != nil {
			t.Fatalf("add: %v\n%s", err, out.String())
		}
	}
	add(`{"id":"psp","url":"https://API.psp.example/v1","method":"POST","system_roots":true,"merchants":["m_1"]}`)
	add(`{"id":"psp-refunds","url":"https://api.psp.example/refunds","method":"POST","system_roots":true,"merchants":["m_1"]}`)
	add(`{"id":"stand-in","url":"https://processor:8443/","method":"POST","system_roots":true,"merchants":["m_1"],"allow_private":["172.16.0.0/12"]}`)
	var out bytes.Buffer
	if err := destinationsCmd([]string{"list", "-hosts", "-destinations", file}, &out); err != nil {
		t.Fatal(err)
	}
	want := "api.psp.example:443\nprocessor:8443 172.16.0.0/12\n"
	if out.String() != want {
		t.Fatalf("list -hosts =\n%s\nwant\n%s", out.String(), want)
	}
}
