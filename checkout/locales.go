package checkout

import (
	"slices"
	"strings"
	"sync"
)

// stringTable is the string table of the embedded i18n.js, parsed once. It is
// the one list of the checkout's languages: the session API and the page both
// read it, so a language shipped in i18n.js cannot be refused by the API (or
// the reverse).
var stringTable = sync.OnceValues(func() (map[string]map[string]string, error) {
	js, err := FS.ReadFile("assets/" + ScriptI18n)
	if err != nil {
		return nil, err
	}
	return parseStrings(js)
})

// maxLocaleLen bounds a session locale; BCP 47 tags in practical use are far
// shorter.
const maxLocaleLen = 35

// Languages lists the languages the checkout page is translated into, sorted,
// as read from i18n.js. It is empty if the embedded table is broken (NewAssets
// then fails too), so every locale is refused rather than shown untranslated.
func Languages() []string {
	m, err := stringTable()
	if err != nil {
		return nil
	}
	langs := make([]string, 0, len(m))
	for l := range m {
		langs = append(langs, l)
	}
	slices.Sort(langs)
	return langs
}

// LocaleLanguage maps a session locale to the language its page is shown in:
// "de", "DE", "de-DE", "de_AT" and "de-Latn-CH" are German. ok is false when the
// locale is not shaped like a language tag or its language is not shipped;
// the session API refuses those, so a merchant learns at once that its shoppers
// would otherwise see English.
func LocaleLanguage(locale string) (lang string, ok bool) {
	primary, ok := primaryLanguage(locale)
	if !ok {
		return "", false
	}
	m, err := stringTable()
	if err != nil {
		return "", false
	}
	if _, ok := m[primary]; !ok {
		return "", false
	}
	return primary, true
}

// primaryLanguage returns the lower-cased primary subtag of a language tag
// ("fr" of "fr-CA" or "fr_CA"): 2 or 3 ASCII letters, then subtags of 1 to 8
// ASCII letters or digits separated by '-' or '_'.
func primaryLanguage(locale string) (string, bool) {
	if locale == "" || len(locale) > maxLocaleLen {
		return "", false
	}
	parts := strings.FieldsFunc(locale, func(r rune) bool { return r == '-' || r == '_' })
	// FieldsFunc drops empty fields; a tag with "--" or an edge separator has
	// more separators than its parts need.
	if len(parts) == 0 || strings.Count(locale, "-")+strings.Count(locale, "_") != len(parts)-1 {
		return "", false
	}
	if n := len(parts[0]); n < 2 || n > 3 || !isAlnum(parts[0], true) {
		return "", false
	}
	for _, p := range parts[1:] {
		if len(p) > 8 || !isAlnum(p, false) {
			return "", false
		}
	}
	return strings.ToLower(parts[0]), true
}

func isAlnum(s string, lettersOnly bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20 // ASCII lower case; digits are unchanged
		switch {
		case c >= 'a' && c <= 'z':
		case !lettersOnly && s[i] >= '0' && s[i] <= '9':
		default:
			return false
		}
	}
	return true
}
