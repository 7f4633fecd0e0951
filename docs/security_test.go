package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// citation is a test cited in SECURITY.md: `path/x_test.go: TestName` or
// `path/x_test.go: TestName/sub-test`.
var citation = regexp.MustCompile("`([A-Za-z0-9_./-]+_test\\.go): (Test[A-Za-z0-9_]*)(/[^`]+)?`")

// anyTestFile is any code span naming a test file, cited well or not.
var anyTestFile = regexp.MustCompile("`[^`]*_test\\.go[^`]*`")

// TestSecurityCitesRealTests: every test SECURITY.md cites as showing a
// refusal is a `func TestName` in the cited file, and a cited subtest is
// named there, so the threat model cannot lean on a test that was renamed,
// moved or removed.
func TestSecurityCitesRealTests(t *testing.T) { checkCitations(t, "SECURITY.md", 50) }

// TestReliabilityCitesRealTests: the same for the fault matrix.
func TestReliabilityCitesRealTests(t *testing.T) { checkCitations(t, "RELIABILITY.md", 20) }

// checkCitations checks every test doc cites, and that it cites at least
// min (a doc citing none would pass without proving anything).
func checkCitations(t *testing.T, doc string, min int) {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	cites := citation.FindAllStringSubmatch(text, -1)
	if len(cites) < min {
		t.Fatalf("%s cites %d tests: the check would prove little", doc, len(cites))
	}
	// A code span that names a test file but is not in the citation form
	// would escape the check below.
	for _, span := range anyTestFile.FindAllString(text, -1) {
		if !citation.MatchString(span) {
			t.Errorf("%s: %s names a test file but is not `path_test.go: TestName[/sub-test]`", doc, span)
		}
	}
	sources := map[string]string{}
	for _, m := range cites {
		file, name, sub := m[1], m[2], strings.TrimPrefix(m[3], "/")
		src, ok := sources[file]
		if !ok {
			if strings.Contains(file, "..") || strings.HasPrefix(file, "/") {
				t.Errorf("%s cites %s: not a path inside the repository", doc, file)
				continue
			}
			b, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(file)))
			if err != nil {
				t.Errorf("%s cites %s: %v", doc, file, err)
				continue
			}
			src = string(b)
			sources[file] = src
		}
		if !regexp.MustCompile(`(?m)^func ` + name + `\(t \*testing\.T\) \{`).MatchString(src) {
			t.Errorf("%s cites %s: %s, which is not a test function there", doc, file, name)
			continue
		}
		// Subtest names are the literal first argument of t.Run or the
		// name field of a table row; either way a quoted string in the file.
		if sub != "" && !strings.Contains(src, strconv.Quote(sub)) {
			t.Errorf("%s cites %s: %s/%s, but the file names no subtest %q", doc, file, name, sub, sub)
		}
	}
}
