package docs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pciRequirements are the PCI DSS v4.0.1 requirements PCI-DSS.md answers,
// each in a section headed "### <id> ...". Removing one from the page (or
// renaming its heading) fails TestPCIDSSCoversRequirements.
var pciRequirements = []string{
	"3.2.1", "3.3.1", "3.4.1", "3.5.1.1",
	"3.6.1", "3.6.1.1", "3.6.1.2", "3.6.1.3", "3.6.1.4",
	"3.7.1", "3.7.2", "3.7.3", "3.7.4", "3.7.5", "3.7.6", "3.7.7",
	"4.2.1", "6.4.3", "7.2.1", "7.2.2",
	"8.2.8", "8.3.4", "8.3.6", "8.4.2",
	"10.2.1", "10.2.2", "10.3.2", "10.5.1", "10.7.2",
	"11.6.1", "12.3.3",
}

// TestPCIDSSCitesRealTests: every test PCI-DSS.md cites as evidence is a
// `func TestName` in the cited file, and a cited subtest is named there, as
// for SECURITY.md: the evidence cannot be a test that was renamed or removed.
func TestPCIDSSCitesRealTests(t *testing.T) {
	checkCitations(t, "PCI-DSS.md", 100)
}

// TestPCIDSSCoversRequirements: each requirement keeps its section, and
// each section says what the product does, cites at least one test, and
// says what stays the deploying organisation's.
func TestPCIDSSCoversRequirements(t *testing.T) {
	b, err := os.ReadFile("PCI-DSS.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	for _, part := range strings.Split(string(b), "\n### ")[1:] {
		id, _, _ := strings.Cut(part, " ")
		body, _, _ := strings.Cut(part, "\n## ")
		if _, dup := sections[id]; dup {
			t.Errorf("PCI-DSS.md: two sections for %s", id)
		}
		sections[id] = body
	}
	for _, id := range pciRequirements {
		body, ok := sections[id]
		if !ok {
			t.Errorf("PCI-DSS.md has no section \"### %s ...\"", id)
			continue
		}
		for _, part := range []string{"**Blindgate.**", "**Check.**", "**Tests.**", "**Yours.**"} {
			if !strings.Contains(body, part) {
				t.Errorf("PCI-DSS.md %s: no %s paragraph", id, part)
			}
		}
		if !citation.MatchString(body) {
			t.Errorf("PCI-DSS.md %s: cites no test", id)
		}
	}
}

// TestCitationCheckCatchesMissingTests: the check the two documents rely on
// fails a citation of a test, subtest or file that no longer exists, and a
// code span that names a test file outside the citation form.
func TestCitationCheckCatchesMissingTests(t *testing.T) {
	files := map[string]string{
		"x/a_test.go": "package x\n\nfunc TestKept(t *testing.T) {\n\tt.Run(\"ok/sub\", func(t *testing.T) {})\n}\n",
	}
	read := func(p string) ([]byte, error) {
		rel, err := filepath.Rel("..", p)
		if err != nil {
			return nil, err
		}
		if s, ok := files[filepath.ToSlash(rel)]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	tests := []struct {
		name, doc, want string // want: "" for no problem
	}{
		{"ok/test", "`x/a_test.go: TestKept`", ""},
		{"ok/subtest", "`x/a_test.go: TestKept/ok/sub`", ""},
		{"fails/test-removed", "`x/a_test.go: TestGone`", "TestGone, which is not a test function there"},
		{"fails/prefix-of-a-test", "`x/a_test.go: TestKep`", "TestKep, which is not a test function there"},
		{"fails/subtest-removed", "`x/a_test.go: TestKept/ok/gone`", `names no subtest "ok/gone"`},
		{"fails/file-removed", "`x/b_test.go: TestKept`", "x/b_test.go"},
		{"fails/outside-the-repository", "`../x/a_test.go: TestKept`", "not a path inside the repository"},
		{"fails/not-a-citation", "see `x/a_test.go`", "names a test file but is not"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := citationProblems("doc.md", tc.doc, read)
			switch {
			case tc.want == "" && len(got) != 0:
				t.Fatalf("problems %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Fatalf("problems %q, want one saying %q", got, tc.want)
			}
		})
	}
}
