package jose

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const voiModule = "github.com/oasisprotocol/curve25519-voi"

// TestVoiStaysInOneFile: curve25519-voi, which checks EdDSA request
// signatures, is imported by ed25519.go only (tests included: they compare
// through verifyEd25519), and by no other package, as jwx stays behind
// this package, so that replacing it touches one file.
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

	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command(goBin, "list", "-f", `{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, "github.com/blindgate/blindgate/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, voiModule) && f[0] != "github.com/blindgate/blindgate/internal/jose" {
				t.Errorf("%s imports %s: only internal/jose may", f[0], imp)
			}
		}
	}
}
