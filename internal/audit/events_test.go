package audit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var eventName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// TestEventNamesUnique proves every event name is distinct and well formed,
// and that All lists exactly the Event* constants of events.go (so a new
// constant cannot dodge the duplicate check by missing the list).
func TestEventNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range All() {
		if !eventName.MatchString(n) {
			t.Errorf("event name %q: want lowercase words joined by dots", n)
		}
		if seen[n] {
			t.Errorf("event name %q defined twice", n)
		}
		seen[n] = true
	}

	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "events.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	byValue := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, id := range vs.Names {
				if !strings.HasPrefix(id.Name, "Event") {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s: value must be a string literal", id.Name)
				}
				v, _ := strconv.Unquote(lit.Value)
				if other, dup := byValue[v]; dup {
					t.Errorf("%s and %s share the value %q", other, id.Name, v)
				}
				byValue[v] = id.Name
				declared = append(declared, v)
			}
		}
	}
	if !slices.Equal(declared, All()) {
		t.Errorf("All() does not list exactly the Event constants of events.go in order:\n got  %v\n want %v", All(), declared)
	}
}
