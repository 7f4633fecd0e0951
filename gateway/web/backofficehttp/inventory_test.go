package backofficehttp

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeBackofficeInventory (named when the table was in the README) keeps the back-office script inventory
// (docs/script-inventory.md) true: every script the pages load, with the SRI hash the pages
// carry, and nothing else. A changed script must change the table, so the
// hashes an operator compares against from outside the gateway (change
// detection) are the released ones.
func TestReadmeBackofficeInventory(t *testing.T) {
	readme, err := os.ReadFile("../../../docs/script-inventory.md")
	if err != nil {
		t.Skipf("no docs/script-inventory.md beside the module: %v", err)
	}
	_, section, ok := strings.Cut(string(readme), "## Back-office scripts")
	if !ok {
		t.Fatal("docs/script-inventory.md has no section \"Back-office scripts\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var rows []string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "| `") && strings.Contains(line, "sha384-") {
			rows = append(rows, line)
		}
	}
	if len(rows) != len(scriptFiles) {
		t.Fatalf("docs/script-inventory.md lists %d back-office scripts, the pages load %d", len(rows), len(scriptFiles))
	}
	assets := loadAssets()
	for i, name := range scriptFiles {
		want := "| `" + name + "` (`" + Prefix + "/assets/" + name + "`) | `" + assets.sri(name) + "` |"
		if !strings.HasPrefix(rows[i], want) {
			t.Errorf("docs/script-inventory.md row %d: %q\nwant it to start %q", i+1, rows[i], want)
		}
	}
}
