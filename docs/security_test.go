package docs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// citation is a test cited in a document: `path/x_test.go: TestName` or
// `path/x_test.go: TestName/sub-test`.
var citation = regexp.MustCompile("`([A-Za-z0-9_./-]+_test\\.go): (Test[A-Za-z0-9_]*)(/[^`]+)?`")

// anyTestFile is any code span naming a test file, cited well or not.
var anyTestFile = regexp.MustCompile("`[^`]*_test\\.go[^`]*`")

// TestSecurityCitesRealTests: every test SECURITY.md cites as showing a
// refusal is a `func TestName` in the cited file, and a cited subtest is
// named there, so the threat model cannot lean on a test that was renamed,
// moved or removed.
func TestSecurityCitesRealTests(t *testing.T) {
	checkCitations(t, "SECURITY.md", 50)
}

// checkCitations fails t for every citation of the document in docs/ that
// citationProblems finds, and returns the document's text. minCites guards
// the check itself: a document whose citations stopped matching the pattern
// would otherwise pass with none.
func checkCitations(t *testing.T, doc string, minCites int) string {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if n := len(citation.FindAllString(text, -1)); n < minCites {
		t.Fatalf("%s cites %d tests: the check would prove little", doc, n)
	}
	for _, p := range citationProblems(doc, text, os.ReadFile) {
		t.Error(p)
	}
	return text
}

// citationProblems lists what is wrong with the tests text cites: a file
// that does not exist in the repository, a test function it does not
// declare, a subtest it does not name, or a code span that names a test file
// but is not a citation. read reads a file by its path from docs/.
func citationProblems(doc, text string, read func(string) ([]byte, error)) []string {
	var out []string
	// A code span that names a test file but is not in the citation form
	// would escape the check below.
	for _, span := range anyTestFile.FindAllString(text, -1) {
		if !citation.MatchString(span) {
			out = append(out, fmt.Sprintf("%s: %s names a test file but is not `path_test.go: TestName[/sub-test]`", doc, span))
		}
	}
	sources := map[string]string{}
	for _, m := range citation.FindAllStringSubmatch(text, -1) {
		file, name, sub := m[1], m[2], strings.TrimPrefix(m[3], "/")
		src, ok := sources[file]
		if !ok {
			if strings.Contains(file, "..") || strings.HasPrefix(file, "/") {
				out = append(out, fmt.Sprintf("%s cites %s: not a path inside the repository", doc, file))
				continue
			}
			b, err := read(filepath.Join("..", filepath.FromSlash(file)))
			if err != nil {
				out = append(out, fmt.Sprintf("%s cites %s: %v", doc, file, err))
				continue
			}
			src = string(b)
			sources[file] = src
		}
		if !regexp.MustCompile(`(?m)^func ` + name + `\(t \*testing\.T\) \{`).MatchString(src) {
			out = append(out, fmt.Sprintf("%s cites %s: %s, which is not a test function there", doc, file, name))
			continue
		}
		// Subtest names are the literal first argument of t.Run or the
		// name field of a table row; either way a quoted string in the file.
		if sub != "" && !strings.Contains(src, strconv.Quote(sub)) {
			out = append(out, fmt.Sprintf("%s cites %s: %s/%s, but the file names no subtest %q", doc, file, name, sub, sub))
		}
	}
	return out
}

// TestReliabilityCitesRealTests: the same for the fault matrix.
func TestReliabilityCitesRealTests(t *testing.T) { checkCitations(t, "RELIABILITY.md", 20) }
