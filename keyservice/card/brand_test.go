package card

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/blindgate/blindgate/keyservice/wire"
)

var update = flag.Bool("update", false, "rewrite testdata/brand_table.json")

func TestDetectBrand(t *testing.T) {
	tests := []struct {
		name string
		pan  string
		want Brand
	}{
		{"visa/4", "4", Visa},
		{"mastercard/51", "51", Mastercard},
		{"mastercard/55", "55", Mastercard},
		{"mastercard/2221", "2221", Mastercard},
		{"mastercard/2720", "2720", Mastercard},
		{"unknown/2220", "2220", ""},
		{"unknown/2721", "2721", ""},
		{"unknown/222-too-short", "222", ""},
		{"amex/34", "34", Amex},
		{"amex/37", "37", Amex},
		{"discover/6011", "6011", Discover},
		{"discover/644", "644", Discover},
		{"discover/649", "649", Discover},
		{"discover/65", "65", Discover},
		{"discover/622126-beats-unionpay", "622126", Discover},
		{"discover/622925-beats-unionpay", "622925", Discover},
		{"unionpay/622125", "622125", UnionPay},
		{"unionpay/622926", "622926", UnionPay},
		{"unionpay/62", "62", UnionPay},
		{"jcb/3528", "3528", JCB},
		{"jcb/3589", "3589", JCB},
		{"unknown/3527", "3527", ""},
		{"unknown/3590", "3590", ""},
		{"diners/300", "300", Diners},
		{"diners/305", "305", Diners},
		{"unknown/306", "306", ""},
		{"diners/3095", "3095", Diners},
		{"unknown/3096", "3096", ""},
		{"diners/36", "36", Diners},
		{"diners/38", "38", Diners},
		{"diners/39", "39", Diners},
		{"maestro/50", "50", Maestro},
		{"maestro/56", "56", Maestro},
		{"maestro/58", "58", Maestro},
		{"unknown/59", "59", ""},
		{"maestro/6-other/6012", "6012", Maestro},
		{"maestro/6-other/643", "643", Maestro},
		{"maestro/6-other/67", "6759", Maestro},
		{"maestro/6-prefix-only", "6", Maestro},
		{"unknown/1", "1234567890123452", ""},
		{"unknown/9", "9", ""},
		{"unknown/empty", "", ""},
		{"unknown/non-digit", "4a", ""},
		{"unknown/space", "4242 4242", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DetectBrand(tt.pan); got != tt.want {
				t.Fatalf("DetectBrand = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBrandTableInvariants proves the claims the detection rule rests on:
// well-formed ranges, and no overlap between ranges of equal specificity (so
// "longest prefix wins" is never a tie and row order never matters).
func TestBrandTableInvariants(t *testing.T) {
	type span struct {
		brand    Brand
		from, to string
	}
	bySpec := map[int][]span{}
	seen := map[Brand]bool{}
	for _, r := range BrandTable() {
		if seen[r.Brand] {
			t.Errorf("%s: duplicate row", r.Brand)
		}
		seen[r.Brand] = true
		if r.CVCLength != 3 && r.CVCLength != 4 {
			t.Errorf("%s: cvc length %d", r.Brand, r.CVCLength)
		}
		if len(r.Lengths) == 0 || !slices.IsSorted(r.Lengths) || r.Lengths[0] < MinPANLength || r.Lengths[len(r.Lengths)-1] > MaxPANLength {
			t.Errorf("%s: lengths %v", r.Brand, r.Lengths)
		}
		for _, rg := range r.Ranges {
			if len(rg.From) == 0 || len(rg.From) != len(rg.To) || !allDigits(rg.From) || !allDigits(rg.To) || rg.From > rg.To {
				t.Errorf("%s: bad range %+v", r.Brand, rg)
			}
			n := len(rg.From)
			for _, o := range bySpec[n] {
				if rg.From <= o.to && o.from <= rg.To {
					t.Errorf("%s %s-%s overlaps %s %s-%s at equal specificity", r.Brand, rg.From, rg.To, o.brand, o.from, o.to)
				}
			}
			bySpec[n] = append(bySpec[n], span{r.Brand, rg.From, rg.To})
		}
	}
	for _, b := range []Brand{Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro} {
		if !seen[b] || !b.Known() {
			t.Errorf("%s missing from the table", b)
		}
	}
}

func TestBrandLengthsAndCVC(t *testing.T) {
	tests := []struct {
		brand   Brand
		lengths []int
		cvc     int
	}{
		{Visa, []int{13, 16, 19}, 3},
		{Mastercard, []int{16}, 3},
		{Amex, []int{15}, 4},
		{Discover, []int{16, 17, 18, 19}, 3},
		{JCB, []int{16, 17, 18, 19}, 3},
		{Diners, []int{14, 15, 16, 17, 18, 19}, 3},
		{UnionPay, []int{16, 17, 18, 19}, 3},
		{Maestro, []int{12, 13, 14, 15, 16, 17, 18, 19}, 3},
		{"", nil, 0},
		{"laser", nil, 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.brand), func(t *testing.T) {
			if got := tt.brand.Lengths(); !slices.Equal(got, tt.lengths) {
				t.Errorf("Lengths = %v, want %v", got, tt.lengths)
			}
			if got := tt.brand.CVCLength(); got != tt.cvc {
				t.Errorf("CVCLength = %d, want %d", got, tt.cvc)
			}
			for n := 0; n <= 20; n++ {
				if got, want := tt.brand.ValidLength(n), slices.Contains(tt.lengths, n); got != want {
					t.Errorf("ValidLength(%d) = %v", n, got)
				}
			}
		})
	}
}

func TestBrandTableIsACopy(t *testing.T) {
	a := BrandTable()
	a[0].Ranges[0].From = "9"
	a[0].Lengths[0] = 99
	if b := BrandTable(); b[0].Ranges[0].From == "9" || b[0].Lengths[0] == 99 {
		t.Fatal("BrandTable exposes the package table")
	}
	if DetectBrand("4") != Visa {
		t.Fatal("mutating the copy changed detection")
	}
}

// TestBrandTableGolden pins the JSON the checkout JS mirrors. After an
// intended change run: go test ./keyservice/card -run Golden -update
func TestBrandTableGolden(t *testing.T) {
	got, err := json.MarshalIndent(BrandTable(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "brand_table.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("brand table changed; update the checkout JS and run with -update\n%s", got)
	}
}

// TestBrandTableMatchesWire: every brand detected here is one the wire
// contract names (the gateway shows and searches by that list), and every
// brand the wire names is detected here: one list, no drift.
func TestBrandTableMatchesWire(t *testing.T) {
	var table, listed []string
	for _, r := range BrandTable() {
		table = append(table, string(r.Brand))
	}
	for _, b := range wire.Brands() {
		listed = append(listed, b.ID)
	}
	slices.Sort(table)
	slices.Sort(listed)
	if !slices.Equal(table, listed) {
		t.Fatalf("brand table %v, wire.Brands %v", table, listed)
	}
}
