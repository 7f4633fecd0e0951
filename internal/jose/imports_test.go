package jose

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const voiModule = "github.com/oasisprotocol/curve25519-voi"

// TestVoiStaysInOneFile: curve25519-voi, which checks EdDSA request
// signatures, is imported by ed25519.go only (tests included: they compare
// through verifyEd25519), and by no other package, as jwx stays behind
// this package, so that replacing it touches one file. That no other
// package imports it is internal/imports_test.go's confined table.
func TestVoiStaysInOneFile(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) < 10 {
		t.Fatalf("package files: %v %v", files, err)
	}
	var importers []string
	for _, name := range files {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, voiModule) {
				importers = append(importers, name)
			}
		}
	}
	if len(importers) != 1 || importers[0] != "ed25519.go" {
		t.Fatalf("files importing %s: %v, want only ed25519.go", voiModule, importers)
	}

}
