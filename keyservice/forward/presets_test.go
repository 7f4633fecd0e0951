package forward

import (
	"testing"

	"github.com/blindgate/blindgate/keyservice/destinations"
)

func TestPresetsParseAndFill(t *testing.T) {
	ps, err := Presets()
	if err != nil || len(ps) < 3 {
		t.Fatalf("Presets = %d, %v", len(ps), err)
	}
	for _, p := range ps {
		t.Run(p.Name, func(t *testing.T) {
			d, err := destinationsCompile(p)
			if err != nil {
				t.Fatal(err)
			}
			tpl, err := Parse(p.Template, d.AllowsRequestHeader)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.URLFor(tpl.Path()); err != nil {
				t.Fatal(err)
			}
			if !tpl.Needs(FieldNumber) {
				t.Fatal("preset does not send the card number")
			}
			if _, err := tpl.Fill(Values{Number: "4242424242424242", ExpMonth: 3, ExpYear: 2031, Name: "Jane", CVC: "123", HasCVC: true}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func destinationsCompile(p Preset) (*destinations.Compiled, error) {
	return destinations.Compile(p.Destination, "")
}
