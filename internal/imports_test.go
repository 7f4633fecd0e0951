// Package internal_test holds the rule of the internal/ tree: it holds
// libraries only. A package that wires the key service or the gateway belongs
// to the command that runs it (the load harness lives in cmd/blindgate), so
// that a library never drags an application, and its card or key code, into
// whatever imports it.
package internal_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/blindgate/blindgate/"

// applications are the import-path prefixes of application packages. The
// checkout package is not one: it is the embedded browser assets and their
// hashes, imports only the standard library (checked below), and the demo
// shop needs it for the embed script's SRI hash.
var applications = []string{"gateway", "keyservice", "cmd", "deploy", "e2e", "templates"}

func isApplication(path string) bool {
	rest, ok := strings.CutPrefix(path, module)
	if !ok {
		return false
	}
	for _, a := range applications {
		if rest == a || strings.HasPrefix(rest, a+"/") {
			return true
		}
	}
	return false
}

// TestInternalImportsNoApplication lists every package under internal/, with
// its tests' imports too, and fails on any import of an application package.
func TestInternalImportsNoApplication(t *testing.T) {
	lines := goList(t, `{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, "./...")
	if len(lines) < 10 {
		t.Fatalf("go list returned %d packages: the check would prove nothing", len(lines))
	}
	for _, fields := range lines {
		for _, imp := range fields[1:] {
			if isApplication(imp) {
				t.Errorf("%s imports application package %s: internal/ holds libraries only", fields[0], imp)
			}
		}
	}
}

// TestCheckoutIsALibrary: the one package outside internal/ that internal/
// may import stays free of the rest of the module (its tests may use the
// page templates).
func TestCheckoutIsALibrary(t *testing.T) {
	for _, fields := range goList(t, `{{.ImportPath}} {{join .Imports " "}}`, module+"checkout") {
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, module) {
				t.Errorf("checkout imports %s: it must stay a standard-library-only asset library", imp)
			}
		}
	}
}

// httpLayers are the packages under internal/ that exist to serve HTTP with
// Fiber. Every other one is a domain helper (error codes, audit, limits,
// keys, storage) and must not link Fiber, even through another package, so
// that a rule it holds can be used without a web server and no HTTP type
// leaks into a domain package's API.
var httpLayers = map[string]bool{
	module + "internal/httpapi":     true,
	module + "internal/httpmetrics": true,
}

// TestDomainHelpersDoNotImportFiber: apierr keeps the error type and codes;
// rendering and binding them is internal/httpapi's job.
func TestDomainHelpersDoNotImportFiber(t *testing.T) {
	lines := goList(t, `{{.ImportPath}} {{join .Deps " "}}`, "./...")
	checked := false
	for _, fields := range lines {
		if httpLayers[fields[0]] {
			continue
		}
		checked = checked || fields[0] == module+"internal/apierr"
		for _, dep := range fields[1:] {
			if strings.HasPrefix(dep, "github.com/gofiber/") {
				t.Errorf("%s links %s: a domain helper under internal/ knows nothing of HTTP servers", fields[0], dep)
				break
			}
		}
	}
	if !checked {
		t.Fatal("internal/apierr was not listed: the check would prove nothing")
	}
}

// confined are the third-party libraries that stay behind one package of
// ours, so that replacing one, or moving it a major version, touches that
// package alone and no library type becomes part of a store or a wire
// format: jwx (JOSE) and curve25519-voi (the Ed25519 check) behind
// internal/jose, go-webauthn behind internal/passkey.
var confined = map[string]string{
	"github.com/lestrrat-go/jwx/":              module + "internal/jose",
	"github.com/oasisprotocol/curve25519-voi/": module + "internal/jose",
	"github.com/go-webauthn/":                  module + "internal/passkey",
}

// TestLibrariesStayBehindTheirPackage lists every package of the module,
// its tests' imports too, and fails on an import of a confined library
// from any package but its own.
func TestLibrariesStayBehindTheirPackage(t *testing.T) {
	lines := goList(t, `{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, module+"...")
	if len(lines) < 30 {
		t.Fatalf("go list returned %d packages: the check would prove nothing", len(lines))
	}
	seen := map[string]bool{}
	for _, fields := range lines {
		for _, imp := range fields[1:] {
			for lib, owner := range confined {
				if !strings.HasPrefix(imp, lib) {
					continue
				}
				seen[lib] = true
				if fields[0] != owner {
					t.Errorf("%s imports %s: only %s may", fields[0], imp, strings.TrimPrefix(owner, module))
				}
			}
		}
	}
	for lib, owner := range confined {
		if !seen[lib] {
			t.Errorf("%s does not import %s: the check would prove nothing", strings.TrimPrefix(owner, module), lib)
		}
	}
}

func goList(t *testing.T, format, pattern string) [][]string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command(goBin, "list", "-f", format, pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var lines [][]string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		lines = append(lines, strings.Fields(l))
	}
	return lines
}

func TestIsApplication(t *testing.T) {
	for path, want := range map[string]bool{
		module + "gateway/web":        true,
		module + "keyservice/client":  true,
		module + "cmd/blindgate":      true,
		module + "templates":          true,
		module + "gatewayx":           false,
		module + "checkout":           false,
		module + "internal/apierr":    false,
		"github.com/gofiber/fiber/v2": false,
	} {
		if got := isApplication(path); got != want {
			t.Errorf("isApplication(%s) = %v", path, got)
		}
	}
}
