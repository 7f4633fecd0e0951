package gateway_test

import (
	"os/exec"
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
