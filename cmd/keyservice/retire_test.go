package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// TestRetireRefusedWhileTokensReferenceTheKey: `keys retire` retires a
// version only on the gateway's count showing no token under it, taken late
// enough after the rotation, fresh and for this deployment; -force retires
// regardless, with its reason on record. Every refusal leaves the keyring
// as it was.
func TestRetireRefusedWhileTokensReferenceTheKey(t *testing.T) {
	dir := t.TempDir()
	krPath, al := filepath.Join(dir, "keyring.sealed"), filepath.Join(dir, "audit.log")
	kr, err := keyring.New(keyring.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	oldKid := kr.Newest().Kid
	rotated := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	newV, err := kr.RotateAt("", rotated)
	if err != nil {
		t.Fatal(err)
	}
	master, _ := keyring.GenerateMasterKey()
	if err := keyring.Save(krPath, kr, master); err != nil {
		t.Fatal(err)
	}
	masterFile := filepath.Join(dir, "master")
	if err := os.WriteFile(masterFile, []byte(keyring.EncodeMasterKey(master)), 0o600); err != nil {
		t.Fatal(err)
	}
	writeCount := func(name string, c wire.TokenCounts) string {
		p := filepath.Join(dir, name)
		b, _ := json.Marshal(c)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dep := kr.Deployment()
	fresh := time.Now().Add(-10 * time.Minute).UTC()
	left := writeCount("left.json", wire.TokenCounts{Audience: dep, GeneratedAt: fresh, Total: 7, Kids: map[string]int{oldKid: 3, newV.Kid: 4}})
	early := writeCount("early.json", wire.TokenCounts{Audience: dep, GeneratedAt: rotated.Add(time.Hour), Total: 4, Kids: map[string]int{newV.Kid: 4}})
	staging := writeCount("staging.json", wire.TokenCounts{Audience: "ks_staging", GeneratedAt: fresh, Total: 4, Kids: map[string]int{newV.Kid: 4}})
	clean := writeCount("clean.json", wire.TokenCounts{Audience: dep, GeneratedAt: fresh, Total: 4, Kids: map[string]int{newV.Kid: 4}})

	retire := func(extra ...string) (string, error) {
		return runCmd(t, "", append([]string{"keys", "retire", "-keyring", krPath, "-master-key", "file:" + masterFile, "-kid", oldKid, "-audit-log", al}, extra...)...)
	}
	state := func() string {
		t.Helper()
		k, err := keyring.Load(krPath, master)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range k.Versions() {
			if v.Kid == oldKid {
				return v.State
			}
		}
		return ""
	}
	refusals := []struct {
		name string
		args []string
		want string
	}{
		{"refused/no-count", nil, "-token-counts"},
		{"refused/tokens-left", []string{"-token-counts", left}, "3 tokens are still under " + oldKid},
		{"refused/count-too-soon-after-rotation", []string{"-token-counts", early}, "less than 2h0m0s after"},
		{"refused/count-of-another-deployment", []string{"-token-counts", staging}, "is for key service"},
		{"refused/unreadable-count", []string{"-token-counts", filepath.Join(dir, "missing.json")}, "token counts"},
		{"refused/card-number-in-reason", []string{"-force", "see 4242 4242 4242 4242"}, "card number"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			out, err := retire(r.args...)
			if err == nil || !strings.Contains(err.Error(), r.want) {
				t.Fatalf("retire = %v, want a refusal naming %q\n%s", err, r.want, out)
			}
			if got := state(); got != keyring.StateDecrypt {
				t.Fatalf("a refused retire left %s %s", oldKid, got)
			}
		})
	}
	t.Run("retired/clean-count", func(t *testing.T) {
		if out, err := retire("-token-counts", clean); err != nil {
			t.Fatalf("retire with a clean count: %v\n%s", err, out)
		}
		if got := state(); got != keyring.StateRetired {
			t.Fatalf("%s is %s", oldKid, got)
		}
		evs, _, err := audit.FileTrail(al).Query(t.Context(), audit.Filter{Event: audit.EventKeyRetire})
		if err != nil || len(evs) != 1 || evs[0].Kid != oldKid || !strings.Contains(evs[0].Reason, "none of 4 tokens") {
			t.Fatalf("audit: %+v %v", evs, err)
		}
	})
}

// TestRetireForced: -force retires despite a count that refuses, and says
// so in the audit record (a compromised key is retired whatever it opens).
func TestRetireForced(t *testing.T) {
	dir := t.TempDir()
	krPath, al := filepath.Join(dir, "keyring.sealed"), filepath.Join(dir, "audit.log")
	kr, _ := keyring.New(keyring.DefaultAlg)
	oldKid := kr.Newest().Kid
	newV, _ := kr.Rotate("")
	master, _ := keyring.GenerateMasterKey()
	if err := keyring.Save(krPath, kr, master); err != nil {
		t.Fatal(err)
	}
	masterFile := filepath.Join(dir, "master")
	_ = os.WriteFile(masterFile, []byte(keyring.EncodeMasterKey(master)), 0o600)
	b, _ := json.Marshal(wire.TokenCounts{Audience: kr.Deployment(), GeneratedAt: time.Now().UTC(), Total: 5, Kids: map[string]int{oldKid: 2, newV.Kid: 3}})
	counts := filepath.Join(dir, "counts.json")
	_ = os.WriteFile(counts, b, 0o600)
	out, err := runCmd(t, "", "keys", "retire", "-keyring", krPath, "-master-key", "file:"+masterFile, "-kid", oldKid, "-audit-log", al,
		"-token-counts", counts, "-force", "INC-42: key exposed")
	if err != nil {
		t.Fatalf("forced retire: %v\n%s", err, out)
	}
	evs, _, _ := audit.FileTrail(al).Query(t.Context(), audit.Filter{Event: audit.EventKeyRetire})
	if len(evs) != 1 || !strings.Contains(evs[0].Reason, "forced despite the token count") || !strings.Contains(evs[0].Reason, "INC-42") || !strings.Contains(evs[0].Reason, "2 tokens") {
		t.Fatalf("audit: %+v", evs)
	}
}
