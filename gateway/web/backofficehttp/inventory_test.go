package backofficehttp

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeBackofficeInventory keeps the README's back-office script
// inventory true: every script the pages load, with the SRI hash the pages
// carry, and nothing else. A changed script must change the table, so the
// hashes an operator compares against from outside the gateway (change
// detection) are the released ones.
func TestReadmeBackofficeInventory(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Skipf("no README beside the module: %v", err)
	}
	_, section, ok := strings.Cut(string(readme), "### Back-office script inventory")
	if !ok {
		t.Fatal("README has no back-office script inventory")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var rows []string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "| `") && strings.Contains(line, "sha384-") {
			rows = append(rows, line)
		}
	}
	if len(rows) != len(scriptFiles) {
		t.Fatalf("README lists %d back-office scripts, the pages load %d", len(rows), len(scriptFiles))
	}
	assets := loadAssets()
	for i, name := range scriptFiles {
		want := "| `" + name + "` (`" + Prefix + "/assets/" + name + "`) | `" + assets.sri(name) + "` |"
		if !strings.HasPrefix(rows[i], want) {
			t.Errorf("README row %d: %q\nwant it to start %q", i+1, rows[i], want)
		}
	}
}
