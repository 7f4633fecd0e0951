package tokens

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoCardCodeInImportGraph: the gateway stores never see a card number, so
// nothing that parses one (or holds keys, or serves HTTP) may be linked in.
func TestNoCardCodeInImportGraph(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	pkgs := []string{
		"github.com/blindgate/blindgate/gateway/tokens",
		"github.com/blindgate/blindgate/gateway/sessions",
		"github.com/blindgate/blindgate/gateway/merchants",
	}
	out, err := exec.Command(goBin, append([]string{"list", "-deps"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/blindgate/blindgate/keyservice/card",
		"github.com/blindgate/blindgate/keyservice/keyring",
		"github.com/blindgate/blindgate/keyservice/unwrap",
		"github.com/gofiber/fiber",
		"github.com/lestrrat-go/jwx",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("gateway store imports %s", dep)
			}
		}
	}
}
