package atomicfile

import (
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

func parseInt(b []byte) (int, error) { return strconv.Atoi(string(b)) }

func TestDocReloadKeepsTheGoodSnapshot(t *testing.T) {
	var d Doc[int]
	d.Load(1, []byte("1"))
	tests := []struct {
		name    string
		data    string
		changed bool
		wantErr bool
		want    int
	}{
		{"same-bytes/no-op", "1", false, false, 1},
		{"new/swapped-in", "2", true, false, 2},
		{"bad/kept", "x", false, true, 2},
		{"same-as-in-force/no-op", "2", false, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changed, err := d.Reload([]byte(tt.data), parseInt)
			if changed != tt.changed || (err != nil) != tt.wantErr || d.Get() != tt.want {
				t.Fatalf("Reload(%q) = %v, %v; in force %d", tt.data, changed, err, d.Get())
			}
		})
	}
}

func TestDocUpdateSerializesAndSaveRecordsBytes(t *testing.T) {
	var d Doc[int]
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = d.Update(func(cur int) (int, error) { return cur + 1, nil })
		}()
	}
	wg.Wait()
	if d.Get() != 50 {
		t.Fatalf("after 50 concurrent updates: %d", d.Get())
	}
	if err := d.Update(func(int) (int, error) { return 0, errors.New("refused") }); err == nil || d.Get() != 50 {
		t.Fatalf("a failed update changed the snapshot: %v, %d", err, d.Get())
	}
	path := filepath.Join(t.TempDir(), "n")
	if err := d.Save(path, []byte("50")); err != nil {
		t.Fatal(err)
	}
	if changed, err := d.Reload([]byte("50"), parseInt); changed || err != nil {
		t.Fatalf("reload of the saved bytes: %v, %v", changed, err)
	}
}
