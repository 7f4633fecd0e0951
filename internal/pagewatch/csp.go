package pagewatch

import (
	"fmt"
	"slices"
	"strings"

	"github.com/blindgate/blindgate/checkout"
)

// directive is one directive of a policy: its name and source list.
type directive struct {
	name    string
	sources []string
}

// parseCSP splits a policy into its directives in order. A browser uses the
// first of a repeated directive and ignores the rest, so repeats are
// returned apart, to be reported.
func parseCSP(policy string) (ds []directive, repeated []string) {
	seen := map[string]bool{}
	for _, part := range strings.Split(policy, ";") {
		f := strings.Fields(part)
		if len(f) == 0 {
			continue
		}
		name := strings.ToLower(f[0])
		if seen[name] {
			repeated = append(repeated, name)
			continue
		}
		seen[name] = true
		ds = append(ds, directive{name: name, sources: f[1:]})
	}
	return ds, repeated
}

func find(ds []directive, name string) (directive, bool) {
	for _, d := range ds {
		if d.name == name {
			return d, true
		}
	}
	return directive{}, false
}

// compareCSP lists how the live policy differs from the expected one,
// directive by directive (the order of sources within one does not matter
// to a browser, so not here either). In the expected policy a source list
// of exactly checkout.SessionOrigins stands for the session's allowed
// origins: origins when known, otherwise any list of plain origins (never a
// wildcard, a scheme or a keyword).
func compareCSP(want, got string, origins []string) []string {
	wd, _ := parseCSP(want)
	gd, repeated := parseCSP(got)
	var out []string
	for _, r := range repeated {
		out = append(out, fmt.Sprintf("directive %s repeated (a browser uses the first)", r))
	}
	for _, w := range wd {
		g, ok := find(gd, w.name)
		if !ok {
			out = append(out, fmt.Sprintf("directive %s removed (inventory: %s)", w.name, quoteSources(w.sources)))
			continue
		}
		if len(w.sources) == 1 && w.sources[0] == checkout.SessionOrigins {
			if msg := checkOrigins(g.sources, origins); msg != "" {
				out = append(out, fmt.Sprintf("%s %s", w.name, msg))
			}
			continue
		}
		if !sameSet(w.sources, g.sources) {
			out = append(out, fmt.Sprintf("%s is %s, inventory %s", w.name, quoteSources(g.sources), quoteSources(w.sources)))
		}
	}
	for _, g := range gd {
		if _, ok := find(wd, g.name); !ok {
			out = append(out, fmt.Sprintf("directive %s added: %s", g.name, quoteSources(g.sources)))
		}
	}
	return out
}

// checkOrigins checks a session-origins source list.
func checkOrigins(got, origins []string) string {
	if len(origins) > 0 {
		if !sameSet(got, origins) {
			return fmt.Sprintf("is %s, the session's origins are %s", quoteSources(got), quoteSources(origins))
		}
		return ""
	}
	if len(got) == 0 {
		return "is empty, inventory: the session's origins"
	}
	for _, s := range got {
		if !checkout.ValidOrigin(s) {
			return fmt.Sprintf("allows %q, which is not an origin (inventory: the session's origins)", s)
		}
	}
	return ""
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

func quoteSources(s []string) string {
	return `"` + strings.Join(s, " ") + `"`
}
