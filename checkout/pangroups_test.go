package checkout_test

import (
	"testing"

	"github.com/blindgate/blindgate/checkout"
)

func TestGroupPAN(t *testing.T) {
	for _, tc := range []struct{ brand, digits, want string }{
		{"amex", "378282246310005", "3782 822463 10005"},
		{"visa", "4242424242424242", "4242 4242 4242 4242"},
		{"visa", "4222222222222", "4222 2222 2222 2"},
		{"visa", "4242424242424242424", "4242 4242 4242 4242 424"},
		{"diners", "36227206271667", "3622 720627 1667"},
		{"diners", "3056930009020004", "3056 9300 0902 0004"},
		{"mastercard", "5555555555554444", "5555 5555 5555 4444"},
		{"", "1234", "1234"},
		{"visa", "", ""},
	} {
		if got := checkout.GroupPAN(tc.brand, tc.digits); got != tc.want {
			t.Errorf("GroupPAN(%s, %s) = %q, want %q", tc.brand, tc.digits, got, tc.want)
		}
	}
}

func TestMaskPAN(t *testing.T) {
	for _, tc := range []struct {
		brand, bin, last4 string
		length            int
		want              string
	}{
		{"amex", "378282", "0005", 15, "3782 82•••• •0005"},
		{"amex", "", "0005", 15, "•••• •••••• •0005"},
		{"visa", "424242", "4242", 16, "4242 42•• •••• 4242"},
		{"visa", "42424242", "4242", 16, "4242 4242 •••• 4242"},
		{"visa", "", "4242", 16, "•••• •••• •••• 4242"},
		{"visa", "", "2222", 13, "•••• •••• •222 2"},
		{"visa", "", "4242", 19, "•••• •••• •••• •••4 242"},
		{"diners", "", "1667", 14, "•••• •••••• 1667"},
		// Length unknown or impossible: no length implied.
		{"amex", "378282", "0005", 0, "378282 •••• 0005"},
		{"visa", "", "4242", 0, "•••• 4242"},
		{"visa", "42424242", "4242", 11, "42424242 •••• 4242"},
		{"visa", "424242", "4242", 20, "424242 •••• 4242"},
	} {
		if got := checkout.MaskPAN(tc.brand, tc.bin, tc.last4, tc.length); got != tc.want {
			t.Errorf("MaskPAN(%s, %q, %s, %d) = %q, want %q", tc.brand, tc.bin, tc.last4, tc.length, got, tc.want)
		}
	}
}
