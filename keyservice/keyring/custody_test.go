package keyring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestThresholdShares(t *testing.T) {
	master := mustMaster(t)
	set, shares, err := SplitThreshold(master, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(shares) != 5 || set.Threshold != 3 || set.Total != 5 || len(set.Set) != 8 {
		t.Fatalf("set %v, %d shares", set, len(shares))
	}
	// Shares travel as base64 text.
	var parsed [][]byte
	for _, sh := range shares {
		p, err := ParseShare(EncodeMasterKey(sh))
		if err != nil || !bytes.Equal(p, sh) {
			t.Fatalf("parse: %v", err)
		}
		parsed = append(parsed, p)
	}
	t.Run("any-3-open", func(t *testing.T) {
		for _, pick := range [][]int{{0, 1, 2}, {4, 2, 0}, {1, 3, 4}, {0, 1, 2, 3, 4}} {
			var sub [][]byte
			for _, i := range pick {
				sub = append(sub, parsed[i])
			}
			got, ids, err := set.Combine(sub)
			if err != nil || !bytes.Equal(got, master) {
				t.Fatalf("%v: %v", pick, err)
			}
			if ids[0] != set.ShareID(pick[0]+1) {
				t.Fatalf("ids %v", ids)
			}
		}
	})
	t.Run("2-of-3-refused", func(t *testing.T) {
		_, ids, err := set.Combine(parsed[:2])
		if !errors.Is(err, ErrInvalidShare) || len(ids) != 2 {
			t.Fatalf("K-1 shares: %v %v", err, ids)
		}
	})
	t.Run("twice-refused", func(t *testing.T) {
		if _, _, err := set.Combine([][]byte{parsed[0], parsed[1], parsed[0]}); !errors.Is(err, ErrInvalidShare) {
			t.Fatalf("a share given twice: %v", err)
		}
	})
	t.Run("wrong-share", func(t *testing.T) {
		bad := append([]byte(nil), parsed[1]...)
		bad[0] ^= 1
		if _, err := set.Identify(bad); !errors.Is(err, ErrWrongShare) {
			t.Fatalf("altered share: %v", err)
		}
		other, otherShares, _ := SplitThreshold(master, 5, 3)
		if _, err := set.Identify(otherShares[1]); !errors.Is(err, ErrWrongShare) {
			t.Fatalf("a share of another set (a rekey) identified: %v", err)
		}
		if x, err := other.Identify(otherShares[1]); err != nil || x != 2 {
			t.Fatalf("own share: %d %v", x, err)
		}
		if _, err := set.Identify(master); !errors.Is(err, ErrWrongShare) {
			t.Fatalf("a 32-byte value: %v", err)
		}
	})
	t.Run("params", func(t *testing.T) {
		for _, c := range [][2]int{{3, 1}, {2, 3}, {MaxShares + 1, 2}} {
			if _, _, err := SplitThreshold(master, c[0], c[1]); !errors.Is(err, ErrInvalidShare) {
				t.Errorf("%d of %d: %v", c[1], c[0], err)
			}
		}
	})
}

func TestParseShare(t *testing.T) {
	for _, s := range []string{"", "not base64!", EncodeMasterKey(make([]byte, 31)), EncodeMasterKey(make([]byte, 34))} {
		if _, err := ParseShare(s); !errors.Is(err, ErrInvalidShare) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// TestCustodyHeader: the custody is readable without the master key,
// survives a save, and is authenticated: an edited header does not open.
func TestCustodyHeader(t *testing.T) {
	kr := mustNew(t, "")
	master := mustMaster(t)
	set, _, err := SplitThreshold(master, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	kr.SetCustody(Custody{Shares: set, HSM: &HSMSeal{KeyLabel: "blindgate-master", Wrapped: bytes.Repeat([]byte{7}, HSMWrappedSize)}})
	path := filepath.Join(t.TempDir(), "keyring.sealed")
	if err := Save(path, kr, master); err != nil {
		t.Fatal(err)
	}
	c, err := ReadCustody(path)
	if err != nil || c.Shares == nil || c.Shares.Set != set.Set || c.Shares.Threshold != 2 || c.HSM == nil || c.HSM.KeyLabel != "blindgate-master" {
		t.Fatalf("read custody: %+v %v", c, err)
	}
	got, err := Load(path, master)
	if err != nil {
		t.Fatal(err)
	}
	if g := got.Custody(); g.Shares == nil || g.Shares.String() != set.String() {
		t.Fatalf("loaded custody %+v", g)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"version":3`) {
		t.Fatalf("not version 3: %s", data)
	}
	for name, edit := range map[string][2]string{
		"threshold": {`"threshold":2`, `"threshold":3`},
		"label":     {`"key_label":"blindgate-master"`, `"key_label":"other"`},
		"set":       {`"set":"` + set.Set + `"`, `"set":"00000000"`},
	} {
		forged := strings.Replace(string(data), edit[0], edit[1], 1)
		if forged == string(data) {
			t.Fatalf("%s: edit not applied", name)
		}
		if _, err := Open([]byte(forged), master); !errors.Is(err, ErrWrongMasterKey) {
			t.Errorf("%s edited: %v, want ErrWrongMasterKey", name, err)
		}
	}
	for name, forged := range map[string]string{
		"bad-threshold":   strings.Replace(string(data), `"threshold":2`, `"threshold":9`, 1),
		"v2-with-custody": strings.Replace(string(data), `"version":3`, `"version":2`, 1),
	} {
		if _, err := Open([]byte(forged), master); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	// Without custody the file stays version 2 and reads back empty.
	plain := mustNew(t, "")
	p2 := filepath.Join(t.TempDir(), "k2")
	if err := Save(p2, plain, master); err != nil {
		t.Fatal(err)
	}
	if c, err := ReadCustody(p2); err != nil || !c.Empty() {
		t.Fatalf("custody of a version 2 keyring: %+v %v", c, err)
	}
}

// TestSaveRefusesAnotherMaster: once the master key is rotated, a writer
// with the old one cannot put the keyring back under it.
func TestSaveRefusesAnotherMaster(t *testing.T) {
	kr := mustNew(t, "")
	oldM, newM := mustMaster(t), mustMaster(t)
	path := filepath.Join(t.TempDir(), "keyring.sealed")
	if err := Save(path, kr, oldM); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, kr, newM); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("save under another master: %v", err)
	}
	if err := Reseal(path, kr, newM, oldM); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("reseal naming the wrong current master: %v", err)
	}
	if err := Reseal(path, kr, oldM, newM); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, oldM); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("old master still opens: %v", err)
	}
	if err := Save(path, kr, oldM); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("stale writer: %v", err)
	}
	if _, err := Load(path, newM); err != nil {
		t.Fatal(err)
	}
}
