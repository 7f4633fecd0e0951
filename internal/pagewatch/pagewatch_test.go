package pagewatch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/checkout"
)

func TestScan(t *testing.T) {
	tests := []struct {
		name, doc    string
		wantScripts  []scriptTag
		wantHandlers []string
	}{
		{"src-and-integrity", `<head><script src="/a.js" integrity="sha384-x" defer></script></head>`,
			[]scriptTag{{src: "/a.js", integrity: "sha384-x", hasSrc: true}}, nil},
		{"unquoted-upper-case-entities", `<SCRIPT SRC=/a.js?x=1&amp;y=2 Integrity='sha384-y'></SCRIPT>`,
			[]scriptTag{{src: "/a.js?x=1&y=2", integrity: "sha384-y", hasSrc: true}}, nil},
		{"inline", "<p>x</p><script>\nalert(1)\n</script >",
			[]scriptTag{{content: "\nalert(1)\n"}}, nil},
		{"in-a-comment-is-nothing", `<!-- <script src="/c.js"></script> --><p onclick>`,
			nil, []string{"p onclick"}},
		{"in-a-textarea-is-text", `<textarea><script src="/t.js"></script></textarea>`, nil, nil},
		{"script-text-is-not-markup", `<script>var s = "<img src=x onerror=go()>";</script>`,
			[]scriptTag{{content: `var s = "<img src=x onerror=go()>";`}}, nil},
		{"first-src-counts", `<script src="/a.js" src="/b.js"></script>`,
			[]scriptTag{{src: "/a.js", hasSrc: true}}, nil},
		{"handler-any-case", `<body ONLOAD="x()"><img src=a.png onError=y()>`,
			nil, []string{"body onload", "img onerror"}},
		{"text-lt-is-not-a-tag", `<p>1 < 2 and a<b</p><script src=/s.js></script>`,
			[]scriptTag{{src: "/s.js", hasSrc: true}}, nil},
		{"self-closing-slash", `<script src="/a.js"/></script>`,
			[]scriptTag{{src: "/a.js", hasSrc: true}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := scan(tc.doc)
			if !slices.Equal(got.scripts, tc.wantScripts) {
				t.Errorf("scripts %+v, want %+v", got.scripts, tc.wantScripts)
			}
			if !slices.Equal(got.handlers, tc.wantHandlers) {
				t.Errorf("handlers %q, want %q", got.handlers, tc.wantHandlers)
			}
		})
	}
}

func TestCompareCSP(t *testing.T) {
	want := "default-src 'none'; script-src 'self'; frame-ancestors " + checkout.SessionOrigins + "; require-trusted-types-for 'script'"
	tests := []struct {
		name, got string
		origins   []string
		want      []string // a substring of each difference, in order
	}{
		{"same", "default-src 'none'; script-src 'self'; frame-ancestors https://shop.example; require-trusted-types-for 'script'", nil, nil},
		{"same/sources-reordered-spacing", "script-src  'self' ;default-src 'none';frame-ancestors https://a.example https://b.example; require-trusted-types-for 'script'", []string{"https://b.example", "https://a.example"}, nil},
		{"weakened/unsafe-inline", "default-src 'none'; script-src 'self' 'unsafe-inline'; frame-ancestors https://shop.example; require-trusted-types-for 'script'", nil,
			[]string{`script-src is "'self' 'unsafe-inline'", inventory "'self'"`}},
		{"weakened/trusted-types-removed", "default-src 'none'; script-src 'self'; frame-ancestors https://shop.example", nil,
			[]string{`directive require-trusted-types-for removed (inventory: "'script'")`}},
		{"weakened/frame-ancestors-wildcard", "default-src 'none'; script-src 'self'; frame-ancestors *; require-trusted-types-for 'script'", nil,
			[]string{`frame-ancestors allows "*", which is not an origin`}},
		{"weakened/frame-ancestors-other-origin", "default-src 'none'; script-src 'self'; frame-ancestors https://evil.example; require-trusted-types-for 'script'", []string{"https://shop.example"},
			[]string{`frame-ancestors is "https://evil.example", the session's origins are "https://shop.example"`}},
		{"directive-added", "default-src 'none'; script-src 'self'; frame-ancestors https://shop.example; require-trusted-types-for 'script'; report-uri https://x.example/r", nil,
			[]string{`directive report-uri added: "https://x.example/r"`}},
		{"repeated-directive", "default-src 'none'; script-src 'self'; script-src *; frame-ancestors https://shop.example; require-trusted-types-for 'script'", nil,
			[]string{"directive script-src repeated"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := compareCSP(want, tc.got, tc.origins)
			if len(got) != len(tc.want) {
				t.Fatalf("differences %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("difference %q, want it to say %q", got[i], tc.want[i])
				}
			}
		})
	}
}

// fakeGateway serves a page with two scripts and its headers; each test
// changes one thing, as an attacker or a careless deploy would.
type fakeGateway struct {
	page    string
	headers map[string]string
	scripts map[string]string // path -> body
	moved   string            // the page redirects here
}

func (f *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if body, ok := f.scripts[r.URL.Path]; ok {
		w.Write([]byte(body))
		return
	}
	if r.URL.Path != "/pay" {
		http.NotFound(w, r)
		return
	}
	if f.moved != "" {
		http.Redirect(w, r, f.moved, http.StatusFound)
		return
	}
	for k, v := range f.headers {
		w.Header().Set(k, v)
	}
	w.Write([]byte(f.page))
}

func TestCheckPage(t *testing.T) {
	a, b := "console.log('a')", "console.log('b')"
	inv := checkout.Page{
		Name:    "pay page",
		Scripts: []checkout.Script{{Src: "/a.js", Integrity: SRI([]byte(a))}, {Src: "/b.js", Integrity: SRI([]byte(b))}},
		Headers: map[string]string{
			"Content-Security-Policy": "default-src 'none'; script-src 'self'; frame-ancestors " + checkout.SessionOrigins,
			"Referrer-Policy":         "no-referrer",
		},
	}
	tag := func(s checkout.Script) string {
		return `<script src="` + s.Src + `" integrity="` + s.Integrity + `" crossorigin="anonymous" defer></script>`
	}
	good := func() *fakeGateway {
		return &fakeGateway{
			page: "<!doctype html><head>" + tag(inv.Scripts[0]) + tag(inv.Scripts[1]) + "</head><body><form></form></body>",
			headers: map[string]string{
				"Content-Security-Policy": "default-src 'none'; script-src 'self'; frame-ancestors https://shop.example",
				"Referrer-Policy":         "no-referrer",
			},
			scripts: map[string]string{"/a.js": a, "/b.js": b},
		}
	}
	tests := []struct {
		name   string
		change func(*fakeGateway)
		want   []string
	}{
		{"unchanged", func(*fakeGateway) {}, nil},
		{"script-added", func(f *fakeGateway) {
			f.page = strings.Replace(f.page, "</head>", `<script src="https://cdn.evil.example/x.js"></script></head>`, 1)
		}, []string{"script added: https://cdn.evil.example/x.js (integrity none)"}},
		{"inline-script-added", func(f *fakeGateway) {
			f.page = strings.Replace(f.page, "</body>", `<script>steal()</script></body>`, 1)
		}, []string{"inline script added (7 bytes"}},
		{"inline-handler-added", func(f *fakeGateway) {
			f.page = strings.Replace(f.page, "<form>", `<form onsubmit="steal()">`, 1)
		}, []string{"inline event handler <form onsubmit>"}},
		{"script-removed", func(f *fakeGateway) {
			f.page = strings.Replace(f.page, tag(inv.Scripts[1]), "", 1)
		}, []string{"script missing: /b.js"}},
		{"integrity-and-bytes-changed", func(f *fakeGateway) {
			evil := "console.log('b'); steal()"
			f.scripts["/b.js"] = evil
			f.page = strings.Replace(f.page, inv.Scripts[1].Integrity, SRI([]byte(evil)), 1)
		}, []string{"script /b.js: integrity attribute " + SRI([]byte("console.log('b'); steal()")) + ", inventory " + inv.Scripts[1].Integrity,
			"script /b.js: served bytes are " + SRI([]byte("console.log('b'); steal()"))}},
		{"reordered", func(f *fakeGateway) {
			f.page = "<head>" + tag(inv.Scripts[1]) + tag(inv.Scripts[0]) + "</head>"
		}, []string{"scripts in another order: /b.js, /a.js; inventory /a.js, /b.js"}},
		{"csp-weakened", func(f *fakeGateway) {
			f.headers["Content-Security-Policy"] = "default-src 'none'; script-src 'self' https://cdn.evil.example; frame-ancestors https://shop.example"
		}, []string{`Content-Security-Policy: script-src is "'self' https://cdn.evil.example", inventory "'self'"`}},
		{"header-removed", func(f *fakeGateway) {
			delete(f.headers, "Referrer-Policy")
		}, []string{`header Referrer-Policy removed (inventory "no-referrer")`}},
		{"header-changed", func(f *fakeGateway) {
			f.headers["Referrer-Policy"] = "unsafe-url"
		}, []string{`header Referrer-Policy is "unsafe-url", inventory "no-referrer"`}},
		{"watched-header-added", func(f *fakeGateway) {
			f.headers["Content-Security-Policy-Report-Only"] = "script-src *"
		}, []string{`header Content-Security-Policy-Report-Only added: "script-src *"`}},
		{"page-moved", func(f *fakeGateway) {
			f.moved = "https://evil.example/pay"
		}, []string{"answered 302, not 200 (redirect to https://evil.example/pay)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := good()
			tc.change(f)
			want := tc.want
			srv := httptest.NewServer(f)
			defer srv.Close()
			c := NewChecker(nil, 0)
			got := c.CheckPage(context.Background(), Page{Inventory: inv, URL: srv.URL + "/pay"})
			if len(got) != len(want) {
				t.Fatalf("differences %v, want %d like %q", got, len(want), want)
			}
			for i := range got {
				if !strings.Contains(got[i].What, want[i]) || got[i].Page != "pay page" {
					t.Errorf("difference %v, want it to say %q", got[i], want[i])
				}
			}
		})
	}
}

func TestCheckFile(t *testing.T) {
	body := "window.Blindgate = {}"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/embed.js" {
			w.Write([]byte(body))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	c := NewChecker(nil, 0)
	if d := c.CheckFile(context.Background(), srv.URL+"/embed.js", checkout.Script{Src: "/embed.js", Integrity: SRI([]byte(body))}); d != nil {
		t.Errorf("unchanged file: %v", d)
	}
	d := c.CheckFile(context.Background(), srv.URL+"/embed.js", checkout.Script{Src: "/embed.js", Integrity: SRI([]byte("other"))})
	if len(d) != 1 || !strings.Contains(d[0].What, "served bytes are "+SRI([]byte(body))) {
		t.Errorf("changed file: %v", d)
	}
	d = c.CheckFile(context.Background(), srv.URL+"/gone.js", checkout.Script{Src: "/gone.js", Integrity: SRI([]byte(body))})
	if len(d) != 1 || !strings.Contains(d[0].What, "answered 404") {
		t.Errorf("missing file: %v", d)
	}
}
