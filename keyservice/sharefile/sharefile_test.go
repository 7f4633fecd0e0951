package sharefile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/blindgate/blindgate/keyservice/keyring"
)

func TestRoundTrip(t *testing.T) {
	master, _ := keyring.GenerateMasterKey()
	set, shares, err := keyring.SplitThreshold(master, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	var ids []*age.X25519Identity
	var list []string
	for range 3 {
		id, _ := age.GenerateX25519Identity()
		ids = append(ids, id)
		list = append(list, id.Recipient().String())
	}
	rs, err := ParseRecipients(strings.Join(list, ", "))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	paths, err := WriteAll(dir, set, shares, rs)
	if err != nil || len(paths) != 3 {
		t.Fatalf("write: %v %v", paths, err)
	}
	for i, p := range paths {
		data, _ := os.ReadFile(p)
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", p, st.Mode().Perm())
		}
		if !bytes.HasPrefix(data, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) || bytes.Contains(data, []byte(keyring.EncodeMasterKey(shares[i]))) {
			t.Fatalf("%s is not an armored age file hiding its share", p)
		}
		got, err := Decrypt(data, ids[i])
		if err != nil || !bytes.Equal(got, shares[i]) {
			t.Fatalf("share %d: %v", i+1, err)
		}
		// Only its custodian can read it.
		if _, err := Decrypt(data, ids[(i+1)%3]); err == nil {
			t.Fatalf("share %d opened with another custodian's key", i+1)
		}
		if x, err := set.Identify(got); err != nil || x != i+1 || filepath.Base(p) != Name(set, x) {
			t.Fatalf("share file %s holds share %d (%v)", p, x, err)
		}
	}
	// Files are never replaced.
	if _, err := WriteAll(dir, set, shares, rs); err == nil {
		t.Fatal("WriteAll replaced share files")
	}
}

func TestRecipientsRefused(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	r := id.Recipient().String()
	for name, list := range map[string]string{
		"not-age":    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG",
		"garbage":    r + ",age1nope",
		"same-twice": r + "," + r,
	} {
		if _, err := ParseRecipients(list); !errors.Is(err, ErrRecipients) {
			t.Errorf("%s: %v", name, err)
		}
	}
	master, _ := keyring.GenerateMasterKey()
	set, shares, _ := keyring.SplitThreshold(master, 3, 2)
	rs, _ := ParseRecipients(r)
	if _, err := WriteAll(t.TempDir(), set, shares, rs); !errors.Is(err, ErrRecipients) {
		t.Fatalf("1 recipient for 3 shares: %v", err)
	}
}
