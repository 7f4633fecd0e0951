package api_test

import (
	"os"
	"strings"
)

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }

func grepLines(s, sub string) string {
	var out string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out += l + "\n"
		}
	}
	return out
}
