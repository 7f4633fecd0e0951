package forward

import (
	"testing"

	"github.com/blindgate/blindgate/keyservice/wire"
)

// The gateway decides whether to spend the single-use CVC with
// wire.ForwardTemplate.NeedsCVC, without this package's parser: both must
// agree on every template Parse accepts.
func TestNeedsCVCAgreesWithParse(t *testing.T) {
	for _, body := range []string{
		`{"n":"{{card.number}}"}`,
		`{"n":"{{card.number}}","c":"{{card.cvc}}"}`,
		`{"c":"x{{card.cvc}}y"}`,
		`{"e":{{card.exp_month}},"c":"{{card.cvc}}"}`,
	} {
		tpl, err := Parse(wire.ForwardTemplate{ContentType: wire.ContentTypeJSON, Body: body}, nil)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if got := (wire.ForwardTemplate{Body: body}).NeedsCVC(); got != tpl.Needs(FieldCVC) {
			t.Fatalf("%s: wire says %v, Parse says %v", body, got, tpl.Needs(FieldCVC))
		}
	}
	form := "number={{card.number}}&cvc={{card.cvc}}"
	tpl, err := Parse(wire.ForwardTemplate{ContentType: wire.ContentTypeForm, Body: form}, nil)
	if err != nil || !tpl.Needs(FieldCVC) || !(wire.ForwardTemplate{Body: form}).NeedsCVC() {
		t.Fatalf("form: %v", err)
	}
}
