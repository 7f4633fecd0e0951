package randid

import "testing"

func TestNewAndValid(t *testing.T) {
	a, err := New("tok_")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New("tok_")
	if a == b || !Valid("tok_", a) {
		t.Fatalf("ids %q %q", a, b)
	}
	for _, bad := range []string{"", "tok_", a[:len(a)-1], "cs_" + a[4:], a[:10] + "A" + a[11:], a[:10] + "1" + a[11:], a + "a"} {
		if Valid("tok_", bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
}

func TestKeySafe(t *testing.T) {
	for id, want := range map[string]bool{
		"m_abc": true, "m_alpha-2": true, "": false, "m_{x}": false, "m:1": false, "m\x00": false,
		string(make([]byte, 65)): false, "ok_" + string([]byte{'a'}): true,
	} {
		if got := KeySafe(id); got != want {
			t.Errorf("KeySafe(%q) = %v", id, got)
		}
	}
}
