package backoffice_test

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestNoHTTP: the policy knows nothing of HTTP; the pages call it.
func TestNoHTTP(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), e.Name(), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(p, "gofiber") || p == "net/http" || strings.Contains(p, "fasthttp") || p == "github.com/blindgate/blindgate/gateway/web" || strings.HasPrefix(p, "github.com/blindgate/blindgate/gateway/web/") {
				t.Errorf("%s imports %s", e.Name(), p)
			}
		}
	}
}
