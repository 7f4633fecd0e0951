package wire

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
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
		for _, f := range parseNonTestFiles(t, dir) {
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
	if checked < 50 {
		t.Fatalf("only %d fields checked: the test proves nothing", checked)
	}
}

// parseNonTestFiles parses every .go file directly in dir except _test.go
// files, whatever their build constraints, so a file any build could
// compile is checked.
func parseNonTestFiles(t *testing.T, dir string) []*ast.File {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}
