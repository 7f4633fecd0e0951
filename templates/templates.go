// Package templates holds the server-rendered HTML pages (the hosted checkout,
// the back office) as an embedded file system, parsed with html/template so
// every value is escaped for its context.
package templates

import (
	"embed"
	"fmt"
	"html/template"
)

// FS holds every *.html page of this directory.
//
//go:embed *.html
var FS embed.FS

// Parse parses all pages into one set; execute a page by its file name, e.g.
// "checkout.html". Call it once at start-up: the result is safe for concurrent
// Execute calls.
func Parse() (*template.Template, error) {
	t, err := template.New("pages").Funcs(Funcs()).ParseFS(FS, "*.html")
	if err != nil {
		return nil, fmt.Errorf("templates: parse: %w", err)
	}
	return t, nil
}

// Funcs are the helpers available to every page.
//
//	{{t .Strings "label_number"}}  the string, or an execution error when the key
//	                               is missing (so a missing translation fails the
//	                               render and its test instead of showing a blank).
func Funcs() template.FuncMap {
	return template.FuncMap{
		"t": func(strings map[string]string, key string) (string, error) {
			s, ok := strings[key]
			if !ok {
				return "", fmt.Errorf("templates: no string %q", key)
			}
			return s, nil
		},
	}
}
