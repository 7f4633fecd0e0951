// Package destinations is the key service operator's list of places a card
// may be forwarded to. A merchant names a destination by id; where the card
// goes (scheme, host, port, path prefix, method, trust anchors, client
// certificate) is fixed here, by the operator, never by the request.
//
// A destination is either an HTTPS endpoint or, instead of a URL, a
// processor's public key (JWK): the card is then re-encrypted to that key and
// handed back, and the key zone needs no route out.
//
// File form (JSON, mode 0600, replaced atomically by Save):
//
//	{"destinations":[{"id":"adyen-test","url":"https://checkout-test.adyen.com/v71",
//	  "method":"POST","request_headers":["X-API-Key"],"answer_headers":["Psp-Reference"],
//	  "system_roots":true,"timeout_ms":15000,"max_answer_bytes":1048576,
//	  "card_fields":{"card.number":["paymentMethod.number"],"card.cvc":["paymentMethod.cvc"]},
//	  "merchants":["m_shop"]}]}
//
// Like the client allow-list, the list is safe for concurrent use and a
// running service picks up a changed file with ReloadIfChanged; a bad file
// never replaces a good one.
package destinations

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/blindgate/blindgate/internal/atomicfile"

	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// ErrInvalid wraps every reason a destination or file is refused.
var ErrInvalid = errors.New("destinations: invalid")

// ErrUnknown is returned for an id that is not listed.
var ErrUnknown = errors.New("destinations: unknown destination")

// Limits on what a destination may ask for.
const (
	DefaultTimeout   = 15 * time.Second
	MaxTimeout       = 120 * time.Second
	DefaultMaxAnswer = 1 << 20
	MaxMaxAnswer     = 16 << 20
	maxFileSize      = 1 << 20
	maxIDLen         = 64
	maxPEMSize       = 1 << 20
	defaultHTTPSPort = "443"
)

// forbiddenHeaders are set by the sender or govern the connection itself;
// no allow-list may hand them to a merchant.
var forbiddenHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Content-Type": true, "Transfer-Encoding": true,
	"Connection": true, "Upgrade": true, "Te": true, "Trailer": true, "Keep-Alive": true,
	"Proxy-Authorization": true, "Proxy-Connection": true, "Expect": true, "Cookie": true,
	"Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "Location": true,
	"Set-Cookie": true,
}

// forbiddenAnswerHeaders describe the connection or carry the processor's
// session, not the answer.
var forbiddenAnswerHeaders = map[string]bool{
	"Set-Cookie": true, "Connection": true, "Transfer-Encoding": true, "Content-Length": true,
	"Keep-Alive": true, "Trailer": true, "Upgrade": true,
}

// Destination is one entry of the file, as the operator wrote it.
type Destination struct {
	ID     string `json:"id"`
	URL    string `json:"url,omitempty"`
	Method string `json:"method,omitempty"`
	// RequestHeaders are the header names a merchant's template may set.
	RequestHeaders []string `json:"request_headers,omitempty"`
	// AnswerHeaders are the header names of the answer passed back.
	AnswerHeaders []string `json:"answer_headers,omitempty"`
	// Trust: at least one of CAFile (PEM bundle), PinSHA256 (base64 SHA-256
	// of a SubjectPublicKeyInfo, checked on the leaf) or SystemRoots.
	CAFile      string   `json:"ca_file,omitempty"`
	PinSHA256   []string `json:"pin_sha256,omitempty"`
	SystemRoots bool     `json:"system_roots,omitempty"`
	// ClientCertFile and ClientKeyFile (PEM) give mTLS; both or neither.
	ClientCertFile string `json:"client_cert_file,omitempty"`
	ClientKeyFile  string `json:"client_key_file,omitempty"`
	TimeoutMS      int    `json:"timeout_ms,omitempty"`
	MaxAnswerBytes int64  `json:"max_answer_bytes,omitempty"`
	// Merchants may use the destination; nobody else. No wildcard.
	Merchants []string `json:"merchants"`
	// AllowPrivate names the private, loopback or link-local prefixes this
	// destination may resolve to (say a processor reached over a private
	// link); any other such address is refused.
	AllowPrivate []string `json:"allow_private,omitempty"`
	// ProcessorKey, instead of URL: a public JWK (RSA >= 3072 for
	// RSA-OAEP-256, or P-256/P-384 for ECDH-ES+A256KW) with a kid.
	ProcessorKey json.RawMessage `json:"processor_key,omitempty"`
	// CardFields says where in a template's body each card placeholder may
	// sit; without it a template may hold no card placeholder at all, so
	// a merchant cannot put the card into a field the processor stores and
	// shows back (a description, metadata). See CardFields.
	CardFields *CardFields `json:"card_fields,omitempty"`
	// ExactPath: the URL is the whole endpoint; a template's path must be
	// empty, so a merchant cannot reach other endpoints below it.
	ExactPath bool `json:"exact_path,omitempty"`
}

// CardPlaceholders are the names card_fields may list, as in a template's
// placeholders without the braces.
var CardPlaceholders = []string{"card.number", "card.exp_month", "card.exp_year", "card.name", "card.cvc"}

// maxCardFieldLen bounds one path or form key.
const maxCardFieldLen = 256

// CardFields is card_fields: either the string "any" (the operator's
// explicit opt-out: a placeholder may sit anywhere the template grammar
// allows) or an object mapping a placeholder name to the places it may
// fill. A place is, for a JSON body, a path of object member names joined
// by "." from the top-level object ("paymentMethod.number"; no arrays, and
// a member name holding "." cannot be named); for a form body, a form key
// as it is once decoded ("card[number]"). The placeholder must then be the
// whole value there: the whole JSON string (or, for the expiry, the whole
// JSON number) or the whole form value.
type CardFields struct {
	Any    bool
	Places map[string][]string
}

// MarshalJSON writes "any" or the object.
func (f CardFields) MarshalJSON() ([]byte, error) {
	if f.Any {
		return []byte(`"any"`), nil
	}
	return json.Marshal(f.Places)
}

// UnmarshalJSON reads "any" or the object; Compile validates it.
func (f *CardFields) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s != "any" {
			return fmt.Errorf("card_fields: the only string form is \"any\"")
		}
		*f = CardFields{Any: true}
		return nil
	}
	var m map[string][]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("card_fields: want \"any\" or an object of placeholder to places: %w", err)
	}
	*f = CardFields{Places: m}
	return nil
}

func (f *CardFields) validate() error {
	if f.Any {
		if len(f.Places) > 0 {
			return errors.New("card_fields: \"any\" or places, not both")
		}
		return nil
	}
	if len(f.Places) == 0 {
		return errors.New("card_fields: list at least one placeholder (or leave card_fields out: no card field)")
	}
	for name, places := range f.Places {
		if !slices.Contains(CardPlaceholders, name) {
			return fmt.Errorf("card_fields: unknown placeholder %q (want one of %s)", name, strings.Join(CardPlaceholders, ", "))
		}
		if len(places) == 0 {
			return fmt.Errorf("card_fields: %s: at least one place (or leave the placeholder out)", name)
		}
		for _, p := range places {
			if p == "" || len(p) > maxCardFieldLen || !utf8.ValidString(p) || strings.ContainsFunc(p, unicode.IsControl) {
				return fmt.Errorf("card_fields: %s: a place is 1-%d printable characters", name, maxCardFieldLen)
			}
			if strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..") {
				return fmt.Errorf("card_fields: %s: %q has an empty path segment", name, p)
			}
		}
	}
	return nil
}

// AllowsCardField reports whether placeholder (say "card.number") may fill
// place (a dotted JSON path or a form key, see CardFields).
func (c *Compiled) AllowsCardField(placeholder, place string) bool {
	if c.CardFields == nil {
		return false
	}
	return c.CardFields.Any || slices.Contains(c.CardFields.Places[placeholder], place)
}

// AnyCardField reports whether the operator opted out of card_fields.
func (c *Compiled) AnyCardField() bool { return c.CardFields != nil && c.CardFields.Any }

// Compiled is a validated destination with its files read and parsed.
// It is immutable.
type Compiled struct {
	Destination
	// HTTPS endpoint.
	Scheme, Host, Port, PathPrefix string
	Roots                          *x509.CertPool // nil: system roots (only with SystemRoots)
	Pins                           [][sha256.Size]byte
	ClientCert                     *tls.Certificate
	Private                        []netip.Prefix
	Timeout                        time.Duration
	MaxAnswer                      int64
	requestHeaders, answerHeaders  map[string]bool
	merchants                      map[string]bool
	// Processor-key mode.
	Key    crypto.PublicKey
	KeyKid string
}

// Encrypts reports whether the destination is a processor key, not a URL.
func (c *Compiled) Encrypts() bool { return c.Key != nil }

// AllowsMerchant reports whether merchant may forward to c.
func (c *Compiled) AllowsMerchant(merchant string) bool { return c.merchants[merchant] }

// AllowsRequestHeader reports whether a template may set the header name.
func (c *Compiled) AllowsRequestHeader(name string) bool {
	return c.requestHeaders[http.CanonicalHeaderKey(name)]
}

// AllowsAnswerHeader reports whether an answer header is passed back.
func (c *Compiled) AllowsAnswerHeader(name string) bool {
	return c.answerHeaders[http.CanonicalHeaderKey(name)]
}

// Trust says how the destination's certificate is checked, for listings.
func (c *Compiled) Trust() string {
	var parts []string
	if c.CAFile != "" {
		parts = append(parts, "ca "+c.CAFile)
	}
	if len(c.Pins) > 0 {
		parts = append(parts, strconv.Itoa(len(c.Pins))+" pin(s)")
	}
	if c.SystemRoots {
		parts = append(parts, "system roots")
	}
	if c.ClientCert != nil {
		parts = append(parts, "mTLS")
	}
	return strings.Join(parts, ", ")
}

// Compile validates d and reads the files it names. Relative file names
// are taken from dir (the destinations file's directory).
func Compile(d Destination, dir string) (*Compiled, error) {
	c := &Compiled{Destination: d}
	if !validID(d.ID) {
		return nil, fmt.Errorf("%w: id %q: 1-%d of [A-Za-z0-9._-]", ErrInvalid, d.ID, maxIDLen)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: destination %q: %s", ErrInvalid, d.ID, fmt.Sprintf(format, args...))
	}
	if len(d.Merchants) == 0 {
		return nil, fail("merchants: at least one")
	}
	c.merchants = map[string]bool{}
	for _, m := range d.Merchants {
		if err := wire.ValidateMerchant(m); err != nil {
			return nil, fail("merchant %q", m)
		}
		c.merchants[m] = true
	}
	if d.CardFields != nil {
		if err := d.CardFields.validate(); err != nil {
			return nil, fail("%v", err)
		}
	}
	switch {
	case d.URL != "" && len(d.ProcessorKey) > 0:
		return nil, fail("give url or processor_key, not both")
	case len(d.ProcessorKey) > 0:
		if d.Method != "" || len(d.RequestHeaders) > 0 || len(d.AnswerHeaders) > 0 || d.CAFile != "" ||
			len(d.PinSHA256) > 0 || d.SystemRoots || d.ClientCertFile != "" || d.ClientKeyFile != "" || len(d.AllowPrivate) > 0 || d.ExactPath {
			return nil, fail("a processor_key destination has no connection settings")
		}
		kid, pub, err := jose.ParsePublicJWK(d.ProcessorKey)
		if err != nil {
			return nil, fail("processor_key: %v", err)
		}
		switch pub.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
		default:
			return nil, fail("processor_key: want an RSA (RSA-OAEP-256) or EC (ECDH-ES+A256KW) key")
		}
		c.Key, c.KeyKid = pub, kid
		return c, nil
	case d.URL == "":
		return nil, fail("url or processor_key is required")
	}
	if err := c.compileURL(); err != nil {
		return nil, fail("%v", err)
	}
	switch d.Method {
	case "":
		c.Method = http.MethodPost
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return nil, fail("method: POST, PUT or PATCH")
	}
	var err error
	if c.requestHeaders, err = headerSet(d.RequestHeaders, forbiddenHeaders); err != nil {
		return nil, fail("request_headers: %v", err)
	}
	if c.answerHeaders, err = headerSet(d.AnswerHeaders, forbiddenAnswerHeaders); err != nil {
		return nil, fail("answer_headers: %v", err)
	}
	if d.CAFile == "" && len(d.PinSHA256) == 0 && !d.SystemRoots {
		return nil, fail("trust: give ca_file, pin_sha256 or system_roots")
	}
	if d.CAFile != "" {
		pemData, err := readCapped(resolve(dir, d.CAFile), maxPEMSize)
		if err != nil {
			return nil, fail("ca_file: %v", err)
		}
		c.Roots = x509.NewCertPool()
		if !c.Roots.AppendCertsFromPEM(pemData) {
			return nil, fail("ca_file: no PEM certificate")
		}
	}
	for _, p := range d.PinSHA256 {
		b, err := base64.StdEncoding.DecodeString(p)
		if err != nil || len(b) != sha256.Size {
			return nil, fail("pin_sha256: base64 of 32 bytes")
		}
		c.Pins = append(c.Pins, [sha256.Size]byte(b))
	}
	if (d.ClientCertFile == "") != (d.ClientKeyFile == "") {
		return nil, fail("client_cert_file and client_key_file: both or neither")
	}
	if d.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(resolve(dir, d.ClientCertFile), resolve(dir, d.ClientKeyFile))
		if err != nil {
			return nil, fail("client certificate: %v", err)
		}
		c.ClientCert = &cert
	}
	switch {
	case d.TimeoutMS == 0:
		c.Timeout = DefaultTimeout
	case d.TimeoutMS < 0 || time.Duration(d.TimeoutMS)*time.Millisecond > MaxTimeout:
		return nil, fail("timeout_ms: 1 to %d", MaxTimeout.Milliseconds())
	default:
		c.Timeout = time.Duration(d.TimeoutMS) * time.Millisecond
	}
	switch {
	case d.MaxAnswerBytes == 0:
		c.MaxAnswer = DefaultMaxAnswer
	case d.MaxAnswerBytes < 0 || d.MaxAnswerBytes > MaxMaxAnswer:
		return nil, fail("max_answer_bytes: 1 to %d", MaxMaxAnswer)
	default:
		c.MaxAnswer = d.MaxAnswerBytes
	}
	for _, p := range d.AllowPrivate {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fail("allow_private %q: want a CIDR prefix", p)
		}
		c.Private = append(c.Private, pfx.Masked())
	}
	return c, nil
}

// compileURL fixes scheme https, host, port and path prefix; userinfo,
// query and fragment are refused (nothing the request cannot see).
func (c *Compiled) compileURL() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return errors.New("url: not a URL")
	}
	if u.Scheme != "https" {
		return errors.New("url: scheme must be https")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.ForceQuery {
		return errors.New("url: no userinfo, query or fragment")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("url: host is required")
	}
	if strings.ContainsAny(host, "%") {
		return errors.New("url: no zone in the host")
	}
	port := u.Port()
	if port == "" {
		port = defaultHTTPSPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("url: port")
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if path.Clean(p) != strings.TrimSuffix(p, "/") && p != "/" || strings.Contains(p, "..") {
		return errors.New("url: path must be clean (no .., no //)")
	}
	c.Scheme, c.Host, c.Port, c.PathPrefix = "https", strings.ToLower(host), port, strings.TrimSuffix(p, "/")
	return nil
}

// URLFor joins the fixed prefix and a merchant's path suffix (none with
// ExactPath). The suffix
// may only add path segments of unreserved characters: it cannot climb out
// of the prefix, add a query, or change anything before the path.
func (c *Compiled) URLFor(suffix string) (string, error) {
	if suffix != "" && c.ExactPath {
		return "", fmt.Errorf("%w: this destination's URL is the whole endpoint: give no path", ErrInvalid)
	}
	if suffix != "" {
		if suffix[0] != '/' || strings.Contains(suffix, "//") || len(suffix) > wire.MaxTemplatePathLen {
			return "", fmt.Errorf("%w: path must start with one / and have no empty segment", ErrInvalid)
		}
		for _, seg := range strings.Split(suffix[1:], "/") {
			if seg == "." || seg == ".." {
				return "", fmt.Errorf("%w: path has a . or .. segment", ErrInvalid)
			}
			for i := 0; i < len(seg); i++ {
				if ch := seg[i]; !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
					return "", fmt.Errorf("%w: path characters: letters, digits, - . _ ~ and /", ErrInvalid)
				}
			}
		}
	}
	p := c.PathPrefix + suffix
	if p == "" {
		p = "/"
	}
	return c.Scheme + "://" + net.JoinHostPort(c.Host, c.Port) + p, nil
}

func headerSet(names []string, forbidden map[string]bool) (map[string]bool, error) {
	set := map[string]bool{}
	for _, n := range names {
		if n == "" || len(n) > 64 || strings.ContainsFunc(n, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) {
			return nil, fmt.Errorf("header name %q", n)
		}
		k := http.CanonicalHeaderKey(n)
		if forbidden[k] || strings.HasPrefix(k, "Proxy-") {
			return nil, fmt.Errorf("header %q is set by the key service or governs the connection", k)
		}
		set[k] = true
	}
	return set, nil
}

func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func resolve(dir, name string) string {
	if filepath.IsAbs(name) || dir == "" {
		return name
	}
	return filepath.Join(dir, name)
}

// List is the set of destinations. The zero value is empty and usable.
type List struct {
	doc atomicfile.Doc[*snapshot]
	dir string
}

type fileDoc struct {
	Destinations []Destination `json:"destinations"`
}

type snapshot struct {
	doc  fileDoc
	byID map[string]*Compiled
}

// Load reads and validates a destinations file. A missing file is an
// error matching os.ErrNotExist.
func Load(file string) (*List, error) {
	data, err := readCapped(file, maxFileSize)
	if err != nil {
		return nil, err
	}
	l := &List{dir: filepath.Dir(file)}
	snap, err := l.parse(data)
	if err != nil {
		return nil, fmt.Errorf("destinations %s: %w", file, err)
	}
	l.doc.Load(snap, data)
	return l, nil
}

// New returns an empty list whose relative file names resolve from dir.
func New(dir string) *List { return &List{dir: dir} }

// ReloadIfChanged re-reads file and swaps it in if it changed and is valid;
// on any error the list in force stays (a bad file never widens or empties it).
func (l *List) ReloadIfChanged(file string) (bool, error) {
	data, err := readCapped(file, maxFileSize)
	if err != nil {
		return false, err
	}
	changed, err := l.doc.Reload(data, l.parse)
	if err != nil {
		return false, fmt.Errorf("destinations %s: %w", file, err)
	}
	return changed, nil
}

// Save writes the list atomically with mode 0600.
func (l *List) Save(file string) error {
	data, err := json.MarshalIndent(l.current().doc, "", "  ")
	if err != nil {
		return fmt.Errorf("destinations: encode: %w", err)
	}
	data = append(data, '\n')
	if err := l.doc.Save(file, data); err != nil {
		return fmt.Errorf("destinations: save: %w", err)
	}
	return nil
}

// Add adds a new destination; an id already listed is refused (remove it
// first: a change of where cards go is two audited steps, never an edit).
func (l *List) Add(d Destination) error {
	return l.update(func(doc *fileDoc) error {
		if slices.ContainsFunc(doc.Destinations, func(x Destination) bool { return x.ID == d.ID }) {
			return fmt.Errorf("%w: destination %q exists", ErrInvalid, d.ID)
		}
		doc.Destinations = append(doc.Destinations, d)
		return nil
	})
}

// Remove removes a destination.
func (l *List) Remove(id string) error {
	return l.update(func(doc *fileDoc) error {
		i := slices.IndexFunc(doc.Destinations, func(x Destination) bool { return x.ID == id })
		if i < 0 {
			return fmt.Errorf("%w: %q", ErrUnknown, id)
		}
		doc.Destinations = slices.Delete(doc.Destinations, i, i+1)
		return nil
	})
}

// Lookup returns the destination id, or ErrUnknown.
func (l *List) Lookup(id string) (*Compiled, error) {
	if l == nil {
		return nil, ErrUnknown
	}
	c, ok := l.current().byID[id]
	if !ok {
		return nil, ErrUnknown
	}
	return c, nil
}

// All returns the destinations in file order.
func (l *List) All() []*Compiled {
	snap := l.current()
	out := make([]*Compiled, 0, len(snap.doc.Destinations))
	for _, d := range snap.doc.Destinations {
		out = append(out, snap.byID[d.ID])
	}
	return out
}

func (l *List) current() *snapshot {
	if s := l.doc.Get(); s != nil {
		return s
	}
	return &snapshot{doc: fileDoc{Destinations: []Destination{}}, byID: map[string]*Compiled{}}
}

func (l *List) update(f func(doc *fileDoc) error) error {
	return l.doc.Update(func(*snapshot) (*snapshot, error) {
		doc := fileDoc{Destinations: slices.Clone(l.current().doc.Destinations)}
		if err := f(&doc); err != nil {
			return nil, err
		}
		return l.build(doc)
	})
}

func (l *List) parse(data []byte) (*snapshot, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc fileDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrInvalid)
	}
	return l.build(doc)
}

func (l *List) build(doc fileDoc) (*snapshot, error) {
	if doc.Destinations == nil {
		doc.Destinations = []Destination{}
	}
	s := &snapshot{doc: doc, byID: map[string]*Compiled{}}
	for _, d := range doc.Destinations {
		if _, dup := s.byID[d.ID]; dup {
			return nil, fmt.Errorf("%w: destination %q listed twice", ErrInvalid, d.ID)
		}
		c, err := Compile(d, l.dir)
		if err != nil {
			return nil, err
		}
		s.byID[d.ID] = c
	}
	return s, nil
}

func readCapped(file string, limit int64) ([]byte, error) {
	data, err := atomicfile.ReadCapped(file, limit)
	if errors.Is(err, atomicfile.ErrTooLarge) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err != nil {
		return nil, fmt.Errorf("destinations: %w", err)
	}
	return data, nil
}
