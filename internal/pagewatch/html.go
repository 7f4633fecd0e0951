package pagewatch

import (
	"html"
	"strings"
)

// scriptTag is a <script> element as written in the page.
type scriptTag struct {
	src, integrity string
	hasSrc         bool
	content        string // inline code (ignored by browsers when src is set)
}

// pageElements are what the comparison needs from a page's HTML: its
// script elements in document order, and every inline event handler
// attribute ("button onclick").
type pageElements struct {
	scripts  []scriptTag
	handlers []string
}

// rawText are the elements whose content is not markup: a "<script" inside
// them is text, and a script's own content runs to its end tag.
var rawText = map[string]bool{"script": true, "style": true, "textarea": true, "title": true, "xmp": true, "iframe": true, "noembed": true, "noframes": true}

// scan reads the tags of an HTML document the way a browser's tokenizer
// finds them, closely enough for server-rendered pages: comments, doctype
// and end tags skipped, attributes quoted or not, entities decoded, raw-text
// elements skipped to their end tag. It has no failure: whatever it cannot
// read as a tag is text.
func scan(doc string) pageElements {
	var out pageElements
	lower := strings.ToLower(doc)
	i := 0
	for {
		lt := strings.IndexByte(doc[i:], '<')
		if lt < 0 {
			return out
		}
		i += lt
		switch {
		case strings.HasPrefix(doc[i:], "<!--"):
			end := strings.Index(doc[i+4:], "-->")
			if end < 0 {
				return out
			}
			i += 4 + end + 3
			continue
		case strings.HasPrefix(doc[i:], "<!"), strings.HasPrefix(doc[i:], "<?"), strings.HasPrefix(doc[i:], "</"):
			end := strings.IndexByte(doc[i:], '>')
			if end < 0 {
				return out
			}
			i += end + 1
			continue
		}
		name, attrs, next, ok := readTag(doc, i+1)
		if !ok {
			i++
			continue
		}
		i = next
		for _, a := range attrs {
			if strings.HasPrefix(a.name, "on") {
				out.handlers = append(out.handlers, name+" "+a.name)
			}
		}
		if !rawText[name] {
			continue
		}
		end := strings.Index(lower[i:], "</"+name)
		if end < 0 {
			end = len(doc) - i
		}
		content := doc[i : i+end]
		i += end
		if name == "script" {
			s := scriptTag{content: content}
			for _, a := range attrs {
				switch a.name {
				case "src":
					if !s.hasSrc { // the first of a repeated attribute counts
						s.src, s.hasSrc = a.value, true
					}
				case "integrity":
					if s.integrity == "" {
						s.integrity = a.value
					}
				}
			}
			out.scripts = append(out.scripts, s)
		}
	}
}

type attr struct{ name, value string }

// readTag reads a start tag's name and attributes from doc[i:] (just past
// the '<') and returns the index past its '>'. ok is false when no tag
// name follows, as for "a < b" in text.
func readTag(doc string, i int) (name string, attrs []attr, next int, ok bool) {
	start := i
	for i < len(doc) && isNameByte(doc[i], i == start) {
		i++
	}
	if i == start {
		return "", nil, 0, false
	}
	name = strings.ToLower(doc[start:i])
	for i < len(doc) {
		for i < len(doc) && (isSpace(doc[i]) || doc[i] == '/') {
			i++
		}
		if i >= len(doc) {
			break
		}
		if doc[i] == '>' {
			return name, attrs, i + 1, true
		}
		ns := i
		for i < len(doc) && !isSpace(doc[i]) && doc[i] != '=' && doc[i] != '>' && (doc[i] != '/' || i == ns) {
			i++
		}
		a := attr{name: strings.ToLower(doc[ns:i])}
		for i < len(doc) && isSpace(doc[i]) {
			i++
		}
		if i < len(doc) && doc[i] == '=' {
			i++
			for i < len(doc) && isSpace(doc[i]) {
				i++
			}
			var raw string
			if i < len(doc) && (doc[i] == '"' || doc[i] == '\'') {
				q := doc[i]
				end := strings.IndexByte(doc[i+1:], q)
				if end < 0 {
					end = len(doc) - i - 1
				}
				raw = doc[i+1 : i+1+end]
				i += end + 2
			} else {
				vs := i
				for i < len(doc) && !isSpace(doc[i]) && doc[i] != '>' {
					i++
				}
				raw = doc[vs:i]
			}
			a.value = html.UnescapeString(raw)
		}
		attrs = append(attrs, a)
	}
	return name, attrs, len(doc), true
}

func isNameByte(b byte, first bool) bool {
	if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' {
		return true
	}
	return !first && (b >= '0' && b <= '9' || b == '-')
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f'
}
