package atomicfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesWholeAndPrivately(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "list.json")
	for _, data := range [][]byte{[]byte("first"), []byte("second, longer")} {
		if err := Write(path, data); err != nil {
			t.Fatal(err)
		}
		got, err := ReadCapped(path, 1024)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", st.Mode(), err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestWriteIntoMissingDirFails(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "no", "such", "file"), []byte("x")); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestReadCapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, bytes.Repeat([]byte("a"), 11), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		limit int64
		want  error
	}{
		{"ok/at-limit", 11, nil},
		{"err/over-limit", 10, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadCapped(path, tt.limit)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadCapped(limit %d) = %v, want %v", tt.limit, err, tt.want)
			}
		})
	}
	if _, err := ReadCapped(path+".missing", 10); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
