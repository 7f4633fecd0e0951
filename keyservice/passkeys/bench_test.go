package passkeys

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkReloadIfChanged is the registry check every reveal and reveal
// challenge makes when nothing changed: a registry of eight passkeys of
// four operators, some approved.
func BenchmarkReloadIfChanged(b *testing.B) {
	r := openRegistry(b, filepath.Join(b.TempDir(), "passkeys.json"))
	for i := range 8 {
		_, e := newCred(b, []string{"op_1", "op_2", "op_3", "op_4"}[i%4])
		if err := r.AddPending(e); err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := r.Approve(e.ID(), "admin", t0); err != nil {
				b.Fatal(err)
			}
		}
	}
	// The steady state: the file was written more than racyWindow ago
	// (a file this fresh is read at every check, see fileID).
	r.now = func() time.Time { return time.Now().Add(racyWindow) }
	if _, err := r.reload(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if changed, err := r.ReloadIfChanged(); changed || err != nil {
			b.Fatal(changed, err)
		}
	}
}
