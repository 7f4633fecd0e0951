package apierr

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"testing"
)

// TestCodesIsCodesGo: Codes lists exactly the declarations of codes.go, in
// order, each code once. A New call anywhere else would show up here.
func TestCodesIsCodesGo(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 3 {
			return true
		}
		if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != "New" {
			return true
		}
		lit, ok := call.Args[1].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			t.Fatalf("a code in codes.go is not a string literal: %#v", call.Args[1])
		}
		code, err := strconv.Unquote(lit.Value)
		if err != nil {
			t.Fatal(err)
		}
		declared = append(declared, code)
		return true
	})
	var listed []string
	seen := map[string]bool{}
	for _, e := range Codes() {
		listed = append(listed, e.Code)
		if seen[e.Code] {
			t.Errorf("code %q declared twice", e.Code)
		}
		seen[e.Code] = true
		if e.Status < 400 || e.Status > 599 || e.Message == "" {
			t.Errorf("code %q: status %d, message %q", e.Code, e.Status, e.Message)
		}
	}
	if len(declared) < 30 || !slices.Equal(declared, listed) {
		t.Fatalf("Codes() = %v\ncodes.go declares %v", listed, declared)
	}
}
