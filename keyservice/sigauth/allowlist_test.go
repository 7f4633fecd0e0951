package sigauth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/jose"
)

func TestAllowListRoundTrip(t *testing.T) {
	al, k := newTestList(t)
	path := filepath.Join(t.TempDir(), "clients.json")
	if err := al.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	loaded, err := LoadAllowList(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []ClientSummary{
		{ID: "gateway", Ops: []string{"inspect", "rewrap"}, Kids: []string{"gw-new", "gw-old", "gw-revoked"}, RevokedKids: []string{"gw-revoked"}},
		{ID: "backoffice", Ops: []string{"reveal"}, Kids: []string{"bo-1"}, RevokedKids: []string{}},
	}
	if got := loaded.Summary(); !reflect.DeepEqual(got, want) {
		t.Fatalf("summary = %+v", got)
	}
	// The loaded list verifies what the original did.
	v := &Verifier{Audience: "keyservice", Origins: testOrigins(t), Clients: loaded, Replay: newFakeReplay(), Now: func() time.Time { return now }}
	if _, err := v.Verify(context.Background(), sign(t, goodClaims(), k.gwOld, "gw-old"), "POST", "/v1/inspect", body); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), sign(t, goodClaims(), k.revoked, "gw-revoked"), "POST", "/v1/inspect", body); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked after reload: %v", err)
	}

	// The file is the documented shape.
	var doc map[string][]map[string]any
	raw, _ := os.ReadFile(path)
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc["clients"]) != 2 || doc["clients"][0]["id"] != "gateway" {
		t.Fatalf("file %s", raw)
	}
	if strings.Contains(string(raw), `"d"`) {
		t.Fatal("private key material in the allow-list")
	}
}

func TestAllowListReloadIfChanged(t *testing.T) {
	al, k := newTestList(t)
	path := filepath.Join(t.TempDir(), "clients.json")
	if err := al.Save(path); err != nil {
		t.Fatal(err)
	}
	if changed, err := al.ReloadIfChanged(path); changed || err != nil {
		t.Fatalf("unchanged file reloaded: %v %v", changed, err)
	}
	// An admin revokes gw-old in another process (another AllowList value).
	admin, err := LoadAllowList(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Revoke("gw-old"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Save(path); err != nil {
		t.Fatal(err)
	}
	if changed, err := al.ReloadIfChanged(path); !changed || err != nil {
		t.Fatalf("reload: %v %v", changed, err)
	}
	v := &Verifier{Audience: "keyservice", Origins: testOrigins(t), Clients: al, Replay: newFakeReplay(), Now: func() time.Time { return now }}
	if _, err := v.Verify(context.Background(), sign(t, goodClaims(), k.gwOld, "gw-old"), "POST", "/v1/inspect", body); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after reload: %v", err)
	}
	// A broken file is refused and the loaded list stays in force.
	if err := os.WriteFile(path, []byte(`{"clients":[{"id":"x","ops":["everything"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := al.ReloadIfChanged(path); changed || !errors.Is(err, ErrInvalidList) {
		t.Fatalf("bad file: %v %v", changed, err)
	}
	if _, err := v.Verify(context.Background(), sign(t, goodClaims(), k.gwNew, "gw-new"), "POST", "/v1/inspect", body); err != nil {
		t.Fatalf("list lost after a bad reload: %v", err)
	}
}

func TestAllowListChanges(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		do   func(al *AllowList) error
		want error
	}{
		{"error/duplicate-kid", func(al *AllowList) error { return al.AddClient("gateway", nil, "gw-new", mustEd(t).Public()) }, ErrInvalidList},
		{"error/kid-of-other-client", func(al *AllowList) error {
			return al.AddClient("other", []string{"inspect"}, "bo-1", mustEd(t).Public())
		}, ErrInvalidList},
		{"error/revoked-kid-reuse", func(al *AllowList) error { return al.AddClient("gateway", nil, "gw-revoked", mustEd(t).Public()) }, ErrInvalidList},
		{"error/ops-change-on-rotation", func(al *AllowList) error {
			return al.AddClient("gateway", []string{"reveal"}, "gw-3", mustEd(t).Public())
		}, ErrInvalidList},
		{"error/unknown-op", func(al *AllowList) error {
			return al.AddClient("new", []string{"decrypt-all"}, "n-1", mustEd(t).Public())
		}, ErrInvalidList},
		{"error/rsa-key", func(al *AllowList) error { return al.AddClient("new", []string{"inspect"}, "n-1", &rsaKey.PublicKey) }, ErrInvalidList},
		{"error/private-key", func(al *AllowList) error { return al.AddClient("new", []string{"inspect"}, "n-1", mustEd(t)) }, ErrInvalidList},
		{"error/bad-client-id", func(al *AllowList) error {
			return al.AddClient("bad id", []string{"inspect"}, "n-1", mustEd(t).Public())
		}, ErrInvalidList},
		{"error/revoke-unknown", func(al *AllowList) error { return al.Revoke("nope") }, ErrUnknownClient},
		{"error/setops-unknown", func(al *AllowList) error { return al.SetOps("nope", nil) }, ErrUnknownClient},
		{"ok/rotation-same-ops", func(al *AllowList) error {
			return al.AddClient("gateway", []string{"rewrap", "inspect"}, "gw-3", mustEd(t).Public())
		}, nil},
		{"ok/rotation-no-ops", func(al *AllowList) error { return al.AddClient("gateway", nil, "gw-3", mustEd(t).Public()) }, nil},
		{"ok/revoke-twice", func(al *AllowList) error { return al.Revoke("gw-revoked") }, nil},
		{"ok/setops", func(al *AllowList) error { return al.SetOps("gateway", []string{"inspect"}) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			al, _ := newTestList(t)
			before := al.Summary()
			err := tc.do(al)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil && !reflect.DeepEqual(before, al.Summary()) {
				t.Fatal("a refused change modified the list")
			}
		})
	}
}

func TestLoadAllowListRejects(t *testing.T) {
	jwk := func(kid string) string {
		b, err := jose.MarshalPublicJWK(mustEd(t).Public(), kid)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name string
		doc  string
	}{
		{"unknown-field", `{"clients":[],"admins":[]}`},
		{"unknown-client-field", `{"clients":[{"id":"a","ops":[],"keys":[],"revoked_kids":[],"superuser":true}]}`},
		{"duplicate-client", `{"clients":[{"id":"a","ops":[],"keys":[]},{"id":"a","ops":[],"keys":[]}]}`},
		{"duplicate-kid-across-clients", `{"clients":[{"id":"a","ops":[],"keys":[` + jwk("k1") + `]},{"id":"b","ops":[],"keys":[` + jwk("k1") + `]}]}`},
		{"revokes-other-clients-kid", `{"clients":[{"id":"a","ops":[],"keys":[` + jwk("k1") + `]},{"id":"b","ops":[],"keys":[],"revoked_kids":["k1"]}]}`},
		{"unknown-op", `{"clients":[{"id":"a","ops":["root"],"keys":[]}]}`},
		{"duplicate-op", `{"clients":[{"id":"a","ops":["inspect","inspect"],"keys":[]}]}`},
		{"key-without-kid", `{"clients":[{"id":"a","ops":[],"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}]}`},
		{"trailing-data", `{"clients":[]} {}`},
		{"not-json", `clients: []`},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run("error/"+tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".json")
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			if al, err := LoadAllowList(path); !errors.Is(err, ErrInvalidList) || al != nil {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("error/missing-file", func(t *testing.T) {
		if _, err := LoadAllowList(filepath.Join(dir, "absent.json")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ok/tombstone", func(t *testing.T) {
		path := filepath.Join(dir, "tomb.json")
		_ = os.WriteFile(path, []byte(`{"clients":[{"id":"a","ops":["inspect"],"keys":[],"revoked_kids":["old-1"]}]}`), 0o600)
		al, err := LoadAllowList(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := al.AddClient("a", nil, "old-1", mustEd(t).Public()); !errors.Is(err, ErrInvalidList) {
			t.Fatalf("tombstoned kid reused: %v", err)
		}
	})
}

func TestZeroAllowList(t *testing.T) {
	var al AllowList
	if s := al.Summary(); len(s) != 0 {
		t.Fatal(s)
	}
	path := filepath.Join(t.TempDir(), "c.json")
	if err := al.Save(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if strings.TrimSpace(string(raw)) != "{\n  \"clients\": []\n}" {
		t.Fatalf("%q", raw)
	}
	if _, err := LoadAllowList(path); err != nil {
		t.Fatal(err)
	}
}

// TestAllowListKeysArePrepared: every listed key is held prepared for
// jose.VerifyCompact (an Ed25519 key expanded once, when the list is
// built, not on every request), and is the key that was enrolled; a
// revoked kid whose key was dropped holds none.
func TestAllowListKeysArePrepared(t *testing.T) {
	al, k := newTestList(t)
	for _, tc := range []struct {
		kid string
		pub crypto.PublicKey
	}{{"gw-old", k.gwOld.Public()}, {"gw-new", k.gwNew.Public()}, {"bo-1", k.bo.Public()}} {
		t.Run("prepared/"+tc.kid, func(t *testing.T) {
			e, err := al.lookup(tc.kid)
			if err != nil || e.key == nil {
				t.Fatalf("lookup: %+v, %v", e, err)
			}
			if got, ok := e.key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !got.Equal(tc.pub) {
				t.Fatalf("prepared key is %T, not the enrolled key", e.key.Public())
			}
		})
	}
	t.Run("none/tombstone", func(t *testing.T) {
		snap, err := build(fileDoc{Clients: []fileClient{{ID: "gone", RevokedKids: []string{"gone-1"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if e := snap.byKid["gone-1"]; e.key != nil || !e.revoked {
			t.Fatalf("tombstone %+v", e)
		}
	})
}
