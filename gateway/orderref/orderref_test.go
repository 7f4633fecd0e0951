package orderref

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) }
	many := map[string]string{}
	for i := range MaxKeys + 1 {
		many["k"+string(rune('a'+i))] = "v"
	}
	for _, tc := range []struct {
		name  string
		ref   string
		meta  map[string]string
		field string // "" = accepted
		pan   bool
	}{
		{"ok/none", "", nil, "", false},
		{"ok/order-number", "ORD-2026-000123", map[string]string{"customer_id": "c_77", "channel": "web shop", "note": ""}, "", false},
		{"ok/reference-of-128-characters", long(MaxReference), nil, "", false},
		{"ok/short-digit-runs", "order 4242 line 12", map[string]string{"phone": "+33 1 23 45 67 89"}, "", false},
		{"ok/long-number-that-fails-luhn", "4242424242424241", nil, "", false},
		{"invalid/reference-of-129-characters", long(MaxReference + 1), nil, "reference", false},
		{"invalid/reference-control-character", "ORD\n1", nil, "reference", false},
		{"invalid/reference-not-utf8", "ORD\xff", nil, "reference", false},
		{"invalid/reference-untrimmed", " ORD-1", nil, "reference", false},
		{"pan_in_text/reference", "4242424242424242", nil, "reference", true},
		{"pan_in_text/reference-grouped", "order for 4242 4242 4242 4242", nil, "reference", true},
		{"invalid/too-many-keys", "", many, "metadata", false},
		{"invalid/empty-key", "", map[string]string{"": "v"}, "metadata", false},
		{"invalid/key-with-space", "", map[string]string{"a b": "v"}, "metadata", false},
		{"invalid/key-of-41", "", map[string]string{strings.Repeat("k", MaxKey+1): "v"}, "metadata", false},
		{"pan_in_text/key", "", map[string]string{"4242424242424242": "v"}, "metadata", true},
		{"pan_in_text/value", "", map[string]string{"card": "4242-4242-4242-4242"}, "metadata.card", true},
		{"invalid/value-of-201-characters", "", map[string]string{"note": long(MaxValue + 1)}, "metadata.note", false},
		{"invalid/value-control-character", "", map[string]string{"note": "a\x00b"}, "metadata.note", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.ref, tc.meta)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want an *Error", err)
			}
			if e.Field != tc.field || errors.Is(err, ErrPANInText) != tc.pan {
				t.Fatalf("got field %q pan %v (%v), want %q pan %v", e.Field, errors.Is(err, ErrPANInText), err, tc.field, tc.pan)
			}
			if strings.Contains(err.Error(), "4242") {
				t.Fatalf("the error echoes the value: %v", err)
			}
		})
	}
}

func TestFold(t *testing.T) {
	if Fold("  ORD-ÉTÉ-1 ") != Fold("ord-été-1") || Fold("ORD-1") == Fold("ORD-2") {
		t.Fatal("Fold does not compare references case-insensitively after trimming")
	}
}
