package wire

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestNoTypeHoldsACard: no struct of the wire contract or of its client
// has a field for a card number or expiry, by name or by JSON name, so no
// gateway code can receive a card in clear from the key service (a
// reveal's card travels only inside the JWE to the operator's browser).
func TestNoTypeHoldsACard(t *testing.T) {
	forbidden := map[string]bool{"pan": true, "number": true, "cardnumber": true, "card_number": true, "exp_month": true, "exp_year": true, "expmonth": true, "expyear": true}
	// InspectResponse carries the masked card's expiry on purpose.
	allowed := map[string]bool{"InspectResponse.ExpMonth": true, "InspectResponse.ExpYear": true}
	checked := 0
	for _, dir := range []string{".", filepath.Join("..", "client")} {
		pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkgs {
			for _, f := range p.Files {
				ast.Inspect(f, func(n ast.Node) bool {
					ts, ok := n.(*ast.TypeSpec)
					if !ok {
						return true
					}
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						return true
					}
					for _, fld := range st.Fields.List {
						var tag string
						if fld.Tag != nil {
							tag = reflect.StructTag(strings.Trim(fld.Tag.Value, "`")).Get("json")
							tag, _, _ = strings.Cut(tag, ",")
						}
						for _, name := range fld.Names {
							checked++
							key := ts.Name.Name + "." + name.Name
							if allowed[key] {
								continue
							}
							if forbidden[strings.ToLower(name.Name)] || forbidden[strings.ToLower(tag)] {
								t.Errorf("%s %s has a card field %q (json %q)", dir, ts.Name.Name, name.Name, tag)
							}
						}
					}
					return true
				})
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d fields checked: the test proves nothing", checked)
	}
}
