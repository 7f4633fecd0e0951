package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// TestCredentialField: the credential field (added with passkey approval)
// is hashed like every other field, and a line without it is encoded as
// before, so logs written before it existed verify unchanged.
func TestCredentialField(t *testing.T) {
	l, path := openLog(t, Options{})
	withCred := ev(1)
	withCred.Credential = "Zm9vYmFy"
	if _, err := l.Append(context.Background(), ev(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), withCred); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if bytes.Contains(lines[0], []byte(`"credential"`)) || !bytes.Contains(lines[1], []byte(`"credential":"Zm9vYmFy"`)) {
		t.Fatalf("lines:\n%s", join(lines))
	}
	f, _ := os.Open(path)
	defer f.Close()
	evs, err := Read(f, Filter{})
	if err != nil || len(evs) != 2 || evs[0].Credential != "Zm9vYmFy" {
		t.Fatalf("Read = %+v, %v", evs, err)
	}
	// Editing the credential breaks the chain.
	edited := bytes.Replace(join(lines), []byte("Zm9vYmFy"), []byte("Zm9vYmFz"), 1)
	if _, err := Verify(bytes.NewReader(edited)); !errors.Is(err, ErrChain) {
		t.Fatalf("edited credential: %v", err)
	}
	long := ev(2)
	long.Credential = strings.Repeat("A", MaxFieldLen+1)
	if _, err := l.Append(context.Background(), long); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("oversized credential: %v", err)
	}
}
