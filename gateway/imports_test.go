package gateway_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/internal/testenv"
)

// forbidden are the packages that parse, decrypt or hold card numbers or
// private keys. Only the key service may import them.
var forbidden = []string{
	"github.com/blindgate/blindgate/keyservice/card",
	"github.com/blindgate/blindgate/keyservice/keyring",
	"github.com/blindgate/blindgate/keyservice/unwrap",
	"github.com/blindgate/blindgate/keyservice/seal",
	"github.com/blindgate/blindgate/keyservice/api",
	"github.com/blindgate/blindgate/keyservice/app",
	// Forwarding: templates are filled and destinations dialled in the key
	// zone only; the gateway speaks keyservice/wire's ForwardRequest.
	"github.com/blindgate/blindgate/keyservice/forward",
	"github.com/blindgate/blindgate/keyservice/destinations",
}

// roots are the gateway's code and what it links of the key service's. A
// root that moved must fail the test, not skip it: the check would then
// prove nothing about the code that moved.
var roots = []string{"github.com/blindgate/blindgate/gateway/...", "github.com/blindgate/blindgate/cmd/gateway", "github.com/blindgate/blindgate/keyservice/client", "github.com/blindgate/blindgate/keyservice/wire"}

func TestGatewayCannotReachCardCode(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "go tool not on PATH")
		return
	}
	for _, root := range roots {
		t.Run(root, func(t *testing.T) {
			// -e would list a missing root as a package with an error; without
			// it go list fails, and so does this test.
			out, err := exec.Command(goBin, "list", "-deps", root).CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps %s: %v (did the package move? update roots)\n%s", root, err, out)
			}
			if strings.Contains(string(out), "matched no packages") {
				t.Fatalf("%s matches no package (did it move? update roots)\n%s", root, out)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 5 {
				t.Fatalf("go list returned too few packages (%d): the check would prove nothing", len(deps))
			}
			for _, d := range deps {
				for _, f := range forbidden {
					if d == f {
						t.Errorf("%s reaches %s: the gateway must never link card or key code", root, f)
					}
				}
			}
		})
	}
}

// cardFieldNames are struct field names and JSON members a type that held
// a card in clear would have.
var cardFieldNames = map[string]bool{"pan": true, "cardnumber": true, "number": true, "cvc": true, "cvv": true}

// TestNoPlaintextCardType: no struct the gateway links (its own packages and
// the key-service wire and client it speaks) has a field for a card number
// or CVC, by name or by JSON member: a reveal comes back as a JWE to the
// operator's browser key, so the gateway has nowhere to put a card in clear.
// (keyservice/wire's Card-like payload lives only in the key service.)
func TestNoPlaintextCardType(t *testing.T) {
	var dirs []string
	for _, root := range []string{".", "../keyservice/wire", "../keyservice/client"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	structs := 0
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				st, ok := n.(*ast.StructType)
				if !ok {
					return true
				}
				structs++
				for _, fl := range st.Fields.List {
					names := []string{}
					for _, id := range fl.Names {
						names = append(names, id.Name)
					}
					if fl.Tag != nil {
						tag := reflect.StructTag(strings.Trim(fl.Tag.Value, "`"))
						if j, _, _ := strings.Cut(tag.Get("json"), ","); j != "" {
							names = append(names, j)
						}
					}
					for _, name := range names {
						if cardFieldNames[strings.ToLower(strings.ReplaceAll(name, "_", ""))] {
							t.Errorf("%s: struct field %q could hold a card in clear", file, name)
						}
					}
				}
				return true
			})
		}
	}
	if structs < 50 {
		t.Fatalf("only %d structs seen: the check would prove nothing", structs)
	}
}
