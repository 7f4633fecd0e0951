package checkout

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeInventory (named when the table was in the README) keeps the PCI DSS 6.4.3 script inventory
// (docs/script-inventory.md) true: every script with its current SRI hash,
// and nothing else.
func TestReadmeInventory(t *testing.T) {
	readme, err := os.ReadFile("../docs/script-inventory.md")
	if err != nil {
		t.Skipf("no docs/script-inventory.md beside the module: %v", err)
	}
	a, err := NewAssets()
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `/") && strings.Contains(line, "sha384-") {
			rows = append(rows, line)
		}
	}
	inv := a.Inventory()
	if len(rows) != len(inv) {
		t.Fatalf("docs/script-inventory.md lists %d scripts, the page serves %d", len(rows), len(inv))
	}
	for _, s := range inv {
		found := false
		for _, r := range rows {
			if strings.Contains(r, "/"+s.Name+"`") && strings.Contains(r, "`"+s.Integrity+"`") {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/script-inventory.md lacks %s with %s", s.Name, s.Integrity)
		}
	}
	// The i18n row names the languages the string table ships.
	want := "(" + strings.Join(Languages(), ", ") + ")"
	for _, r := range rows {
		if strings.Contains(r, "/"+ScriptI18n+"`") && !strings.Contains(r, want) {
			t.Errorf("docs/script-inventory.md's %s row does not list the languages %s", ScriptI18n, want)
		}
	}
}
