package docs_test

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/internal/testenv"
)

// trackedFiles lists the repository's tracked files, relative to its root
// (one level up from docs/).
func trackedFiles(t *testing.T) []string {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		testenv.Missing(t, "git is not on PATH")
	}
	out, err := exec.Command(gitBin, "-C", "..", "ls-files", "-z").Output()
	if err != nil {
		testenv.Missing(t, "not a git checkout: %v", err)
	}
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	if len(files) < 100 {
		t.Fatalf("git ls-files listed %d files: the check would prove nothing", len(files))
	}
	return files
}

// Patterns that name a place outside the repository: a development machine's
// home or work folder, or the sibling folder the first specification lived in.
// They are spelled in pieces so that this file does not match itself.
var outsidePatterns = []string{
	"/" + "work/", "/" + "home/", "/" + "Users/", "/" + "root/", "/" + "tmp/",
	".." + "/shared", "DESIGN" + ".md", "DESIGN" + " Contract",
}

// allowedOutside are the precise occurrences that are paths used at run time,
// not paths of a development machine: file -> the allowed text around each.
var allowedOutside = map[string][]string{
	// The CI script's own log files on the fresh CI machine.
	".ci/run": {"/" + "tmp/bg-ci-redis.log", "/" + "tmp/bg-ci-dockerd.log"},
	// A file written inside a key-service admin container, not on the host.
	"e2e/topology_test.go": {`"/` + `tmp/" + kid + ".jwk"`},
}

// TestNoPathsOutsideTheRepository scans every tracked text file for absolute
// paths of a development machine and for references to documents outside
// the repository.
func TestNoPathsOutsideTheRepository(t *testing.T) {
	for _, f := range trackedFiles(t) {
		b, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(f)))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if bytes.IndexByte(b[:min(len(b), 8000)], 0) >= 0 {
			continue // binary (images)
		}
		text := string(b)
		for _, ok := range allowedOutside[f] {
			text = strings.ReplaceAll(text, ok, "")
		}
		for i, line := range strings.Split(text, "\n") {
			for _, p := range outsidePatterns {
				if strings.Contains(line, p) {
					t.Errorf("%s:%d: %q points outside the repository: %s", f, i+1, p, strings.TrimSpace(line))
				}
			}
		}
	}
}

// markdownLink is an inline link or image target: [text](target).
var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestMarkdownLinksStayInside: every relative link of a tracked Markdown file
// names a tracked file or folder of the repository; links to the web are
// allowed, links that climb out of it are not.
func TestMarkdownLinksStayInside(t *testing.T) {
	files := trackedFiles(t)
	tracked := map[string]bool{}
	for _, f := range files {
		tracked[f] = true
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			tracked[d] = true
		}
	}
	for _, f := range files {
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range markdownLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "#") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			if strings.HasPrefix(target, "/") {
				t.Errorf("%s: link %q is absolute", f, m[1])
				continue
			}
			resolved := path.Clean(path.Join(path.Dir(f), target))
			if strings.HasPrefix(resolved, "..") || !tracked[resolved] {
				t.Errorf("%s: link %q is not a file of the repository", f, m[1])
			}
		}
	}
}
