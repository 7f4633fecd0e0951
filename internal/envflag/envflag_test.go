package envflag

import (
	"testing"
	"time"
)

func TestEnv(t *testing.T) {
	e := Env("BG_T_")
	t.Setenv("BG_T_S", "x")
	t.Setenv("BG_T_B", "true")
	t.Setenv("BG_T_I", "7")
	t.Setenv("BG_T_D", "3s")
	t.Setenv("BG_T_BAD", "nope")
	if e.String("S", "d") != "x" || e.String("UNSET", "d") != "d" {
		t.Fatal("String")
	}
	if !e.Bool("B", false) || e.Bool("BAD", false) {
		t.Fatal("Bool")
	}
	if e.Int("I", 1) != 7 || e.Int("BAD", 1) != 1 {
		t.Fatal("Int")
	}
	if e.Duration("D", time.Second) != 3*time.Second || e.Duration("BAD", time.Second) != time.Second {
		t.Fatal("Duration")
	}
}
