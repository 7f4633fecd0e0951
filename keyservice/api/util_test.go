package api_test

import "strings"

func grepLines(s, sub string) string {
	var out string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out += l + "\n"
		}
	}
	return out
}
