package checkout

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrTheme reports a theme value that is not allowed; the value itself is
// named only by its field.
var ErrTheme = errors.New("checkout: invalid theme")

// Theme is a merchant's look for the checkout page. Every value is checked
// against a strict form before it is written into CSS, so a merchant setting
// cannot inject rules (or url() fetches) into the payment page.
type Theme struct {
	Primary    string // "#rgb" or "#rrggbb"; accent (button, focus ring)
	Background string // "#rgb" or "#rrggbb"
	Text       string // "#rgb" or "#rrggbb"
	Radius     string // "0px".."24px"; "" keeps the default
	Font       string // one of Fonts(); "" keeps the default
}

var (
	hexColour = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)
	radiusPx  = regexp.MustCompile(`^(?:[0-9]|1[0-9]|2[0-4])px$`)
)

// fontStack maps the allowed font names to CSS stacks (system fonts only: the
// page loads no third-party resource).
func fontStack(name string) (string, bool) {
	switch name {
	case "system":
		return `system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif`, true
	case "sans":
		return `"Helvetica Neue", Arial, sans-serif`, true
	case "serif":
		return `Georgia, "Times New Roman", serif`, true
	case "mono":
		return `ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace`, true
	}
	return "", false
}

// Fonts lists the font names a Theme may use.
func Fonts() []string { return []string{"system", "sans", "serif", "mono"} }

// Validate names the first bad field.
func (t Theme) Validate() error {
	for _, c := range []struct{ name, v string }{{"primary", t.Primary}, {"background", t.Background}, {"text", t.Text}} {
		if c.v != "" && !hexColour.MatchString(c.v) {
			return fmt.Errorf("%w: %s must be #rgb or #rrggbb", ErrTheme, c.name)
		}
	}
	if t.Radius != "" && !radiusPx.MatchString(t.Radius) {
		return fmt.Errorf("%w: radius must be 0px..24px", ErrTheme)
	}
	if _, ok := fontStack(t.Font); t.Font != "" && !ok {
		return fmt.Errorf("%w: font must be one of %s", ErrTheme, strings.Join(Fonts(), ", "))
	}
	return nil
}

// CSS renders the theme as a stylesheet that sets the --bg-* variables of
// checkout.css. Unset fields are left out, so the defaults apply.
func (t Theme) CSS() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(":root {\n")
	decl := func(name, v string) {
		if v != "" {
			fmt.Fprintf(&b, "  %s: %s;\n", name, v)
		}
	}
	decl("--bg-primary", t.Primary)
	decl("--bg-background", t.Background)
	decl("--bg-text", t.Text)
	decl("--bg-radius", t.Radius)
	if s, ok := fontStack(t.Font); ok {
		decl("--bg-font", s)
	}
	b.WriteString("}\n")
	return []byte(b.String()), nil
}
