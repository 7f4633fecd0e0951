// Package docs_test keeps docs/contracts.md true to the code: the error table
// is internal/apierr/codes.go, the routes are the ones the servers register,
// the operations are wire.Ops(), and nothing is documented that is not.
package docs_test

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	gwweb "github.com/blindgate/blindgate/gateway/web"
	"github.com/blindgate/blindgate/internal/apierr"
	"github.com/blindgate/blindgate/internal/audit"
	ksapi "github.com/blindgate/blindgate/keyservice/api"
	"github.com/blindgate/blindgate/keyservice/wire"
)

func readContracts(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("contracts.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// codeRow is a row of the error table: | `code` | status | meaning |.
var codeRow = regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\| ([0-9]{3}) \\|")

// TestContractsListEveryErrorCode: every declared code has its row with its
// status, and every row is a declared code.
func TestContractsListEveryErrorCode(t *testing.T) {
	doc := readContracts(t)
	rows := map[string]int{}
	for _, m := range codeRow.FindAllStringSubmatch(doc, -1) {
		status, _ := strconv.Atoi(m[2])
		if _, dup := rows[m[1]]; dup {
			t.Errorf("code %q is listed twice", m[1])
		}
		rows[m[1]] = status
	}
	codes := apierr.Codes()
	if len(codes) < 30 {
		t.Fatalf("apierr.Codes() has %d codes", len(codes))
	}
	declared := map[string]bool{}
	for _, e := range codes {
		declared[e.Code] = true
		status, ok := rows[e.Code]
		switch {
		case !ok:
			t.Errorf("docs/contracts.md has no row for code %q (%d)", e.Code, e.Status)
		case status != e.Status:
			t.Errorf("docs/contracts.md gives %q status %d, codes.go %d", e.Code, status, e.Status)
		}
	}
	for code := range rows {
		if !declared[code] {
			t.Errorf("docs/contracts.md lists code %q, which codes.go does not declare", code)
		}
	}
}

// documentedRoute is a route in the text: `GET /path`.
var documentedRoute = regexp.MustCompile("`(GET|POST|PUT|PATCH|DELETE|ALL) (/[^` ]*)`")

// routes lists an app's routes as "METHOD /path". Fiber adds HEAD to every
// GET; a path registered for every method (app.All) is one "ALL" route.
func routes(app *fiber.App) []string {
	methods := map[string][]string{}
	for _, r := range app.GetRoutes(true) {
		if r.Method != fiber.MethodHead && !slices.Contains(methods[r.Path], r.Method) {
			methods[r.Path] = append(methods[r.Path], r.Method)
		}
	}
	var out []string
	for path, ms := range methods {
		if len(ms) == len(fiber.DefaultMethods)-1 {
			out = append(out, "ALL "+path)
			continue
		}
		for _, m := range ms {
			out = append(out, m+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// TestContractsListEveryRoute: every route of the key service and of the
// gateway is documented, and every documented route exists.
func TestContractsListEveryRoute(t *testing.T) {
	doc := readContracts(t)
	documented := map[string]bool{}
	for _, m := range documentedRoute.FindAllStringSubmatch(doc, -1) {
		documented[m[1]+" "+m[2]] = true
	}
	servers := map[string][]string{
		"key service": routes(ksapi.New(ksapi.Deps{}).App()),
		"gateway":     routes(gwweb.New(gwweb.Deps{}).App()),
	}
	registered := map[string]bool{}
	for name, rs := range servers {
		if len(rs) < 8 {
			t.Fatalf("%s registers only %v", name, rs)
		}
		for _, r := range rs {
			registered[r] = true
			if !documented[r] {
				t.Errorf("docs/contracts.md does not document the %s's `%s`", name, r)
			}
		}
	}
	for r := range documented {
		if !registered[r] {
			t.Errorf("docs/contracts.md documents `%s`, which no server registers", r)
		}
	}
}

// TestContractsListEveryOperation: each operation a client can be granted
// has its row in Contract 2.
func TestContractsListEveryOperation(t *testing.T) {
	doc := readContracts(t)
	for _, op := range wire.Ops() {
		if !strings.Contains(doc, "| `"+op+"` | `") {
			t.Errorf("docs/contracts.md has no row for operation %q", op)
		}
	}
}

// TestContractsListEveryAuditEvent: every event name of internal/audit has a
// row in the audit-events table (a row may name several), and every name in
// the table is one.
func TestContractsListEveryAuditEvent(t *testing.T) {
	doc := readContracts(t)
	start := strings.Index(doc, "## Audit events")
	end := strings.Index(doc, "## Errors")
	if start < 0 || end < start {
		t.Fatal("docs/contracts.md has no \"## Audit events\" section before \"## Errors\"")
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(doc[start:end], "\n") {
		cell, ok := strings.CutPrefix(line, "| ")
		if !ok {
			continue
		}
		cell, _, _ = strings.Cut(cell, " |")
		for _, name := range strings.Split(cell, ", ") {
			if n, ok := strings.CutPrefix(name, "`"); ok {
				documented[strings.TrimSuffix(n, "`")] = true
			}
		}
	}
	known := map[string]bool{}
	for _, name := range audit.All() {
		known[name] = true
		if !documented[name] {
			t.Errorf("docs/contracts.md has no audit-event row for %q", name)
		}
	}
	for name := range documented {
		if !known[name] {
			t.Errorf("docs/contracts.md lists audit event %q, which internal/audit does not define", name)
		}
	}
}
