package secret

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s")
	if err := os.WriteFile(path, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BG_TEST_SECRET", "from-env")
	tests := []struct {
		name, ref, want string
		wantErr         error
	}{
		{"ok/empty", "", "", nil},
		{"ok/env", "env:BG_TEST_SECRET", "from-env", nil},
		{"ok/file", "file:" + path, "from-file", nil},
		{"err/inline", "hunter2", "", ErrReference},
		{"err/env-unset", "env:BG_TEST_UNSET_XYZ", "", errAny},
		{"err/file-missing", "file:" + filepath.Join(dir, "nope"), "", errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.ref)
			switch {
			case tt.wantErr == errAny && err == nil:
				t.Fatalf("want an error")
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			case tt.wantErr == nil && err != nil:
				t.Fatalf("err = %v", err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

var errAny = errors.New("any")
