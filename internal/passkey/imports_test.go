package passkey_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyThisPackageImportsWebAuthn: the WebAuthn library stays behind
// this package's small API, as jwx stays behind internal/jose, so that a
// major-version move touches one package and no library type becomes part
// of a store or a wire format.
func TestOnlyThisPackageImportsWebAuthn(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command(goBin, "list", "-f", `{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, "github.com/blindgate/blindgate/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 30 {
		t.Fatalf("go list returned %d packages: the check would prove nothing", len(lines))
	}
	seen := false
	for _, l := range lines {
		f := strings.Fields(l)
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, "github.com/go-webauthn/") {
				continue
			}
			if f[0] != "github.com/blindgate/blindgate/internal/passkey" {
				t.Errorf("%s imports %s: only internal/passkey may", f[0], imp)
			}
			seen = true
		}
	}
	if !seen {
		t.Fatal("internal/passkey does not import go-webauthn: the check would prove nothing")
	}
}
