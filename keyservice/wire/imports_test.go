package wire

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/blindgate/blindgate/"

// goList runs go list with args and returns its output's fields, or skips
// when the go tool is missing.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command(goBin, append([]string{"list"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// TestWireImportsNoCardCode: the gateway imports this package, so its graph
// may reach no card code, no keys and not the audit log's package (whose
// record must never double as a wire type). Only the two rule packages it
// shares with both sides are allowed.
func TestWireImportsNoCardCode(t *testing.T) {
	allowed := map[string]bool{
		module + "keyservice/wire":       true,
		module + "internal/jose/compact": true,
		module + "internal/panshape":     true,
	}
	deps := goList(t, "-deps", module+"keyservice/wire")
	if len(deps) < 5 {
		t.Fatalf("go list returned too few packages (%d): the check would prove nothing", len(deps))
	}
	for _, d := range deps {
		if strings.HasPrefix(d, module) && !allowed[d] {
			t.Errorf("keyservice/wire reaches %s: only internal/jose/compact and internal/panshape are allowed", d)
		}
	}
}

// TestServerImportsWireNotClient: the key service speaks its contract
// through this package; the HTTP client and signer (keyservice/client) are
// for its callers. A server package that imported client could start
// using a caller's helper as the contract, and the two would drift again.
func TestServerImportsWireNotClient(t *testing.T) {
	// Packages that are, in part, callers of the key service.
	callers := map[string]string{
		module + "keyservice/client": "the client itself",
		module + "keyservice/kstest": "test support: builds signers and clients for tests",
		module + "cmd/keyservice":    "`clients add -generate` writes a client's signing key; `unseal` calls the service over HTTP",
	}
	lines := goList(t, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"keyservice/...", module+"cmd/keyservice")
	if len(lines) < 5 {
		t.Fatalf("go list returned too few packages (%d): the check would prove nothing", len(lines))
	}
	sawWire := false
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		pkg, imports := f[0], f[1:]
		for _, imp := range imports {
			if imp == module+"keyservice/wire" {
				sawWire = true
			}
			if imp == module+"keyservice/client" && callers[pkg] == "" {
				t.Errorf("%s imports keyservice/client: server code imports keyservice/wire", pkg)
			}
		}
	}
	if !sawWire {
		t.Fatal("no key service package imports keyservice/wire: the check would prove nothing")
	}
}
