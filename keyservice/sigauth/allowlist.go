package sigauth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/blindgate/blindgate/internal/atomicfile"

	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// maxAllowListSize caps the allow-list file.
const maxAllowListSize = 1 << 20

// AllowList is the key service's list of clients: for each, the operations
// it may call, its public signing keys (several during a rotation: current
// and previous), and the kids it has revoked. A kid belongs to exactly one
// client and is never reused, even after revocation.
//
// The zero value is an empty list. It is safe for concurrent use: Verify
// reads a snapshot while an admin change or a reload swaps in a new one.
//
// File form:
//
//	{"clients":[{"id":"gateway","ops":["inspect","rewrap"],
//	             "keys":[{"kty":"OKP","crv":"Ed25519","x":"...","kid":"gateway-1"}],
//	             "revoked_kids":[]}]}
type AllowList struct {
	doc atomicfile.Doc[*snapshot]
}

type fileDoc struct {
	Clients []fileClient `json:"clients"`
}

type fileClient struct {
	ID          string            `json:"id"`
	Ops         []string          `json:"ops"`
	Keys        []json.RawMessage `json:"keys"`
	RevokedKids []string          `json:"revoked_kids"`
}

// snapshot is an immutable, validated allow-list.
type snapshot struct {
	doc   fileDoc
	byKid map[string]keyEntry
}

type keyEntry struct {
	client string
	ops    []string
	// key is the client's public key, prepared once for jose.VerifyCompact
	// (an Ed25519 key is held expanded, not decoded per request); nil for a
	// tombstone (revoked kid whose key was dropped).
	key     *jose.VerifyKey
	revoked bool
}

// ClientSummary describes one client without key material, for listings.
type ClientSummary struct {
	ID          string   `json:"id"`
	Ops         []string `json:"ops"`
	Kids        []string `json:"kids"`
	RevokedKids []string `json:"revoked_kids"`
}

// LoadAllowList reads and validates an allow-list file. A missing file is
// an error that matches os.ErrNotExist.
func LoadAllowList(path string) (*AllowList, error) {
	data, err := readCapped(path)
	if err != nil {
		return nil, err
	}
	snap, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("sigauth: allow-list %s: %w", path, err)
	}
	a := &AllowList{}
	a.doc.Load(snap, data)
	return a, nil
}

// ReloadIfChanged re-reads path and, if its content differs from what was
// last loaded or saved, validates it and swaps it in. On any error the
// current list stays in force (fail safe: a half-written or bad file never
// empties or widens the list).
func (a *AllowList) ReloadIfChanged(path string) (bool, error) {
	data, err := readCapped(path)
	if err != nil {
		return false, err
	}
	changed, err := a.doc.Reload(data, parse)
	if err != nil {
		return false, fmt.Errorf("sigauth: allow-list %s: %w", path, err)
	}
	return changed, nil
}

// Save writes the list atomically (temporary file, fsync, rename, fsync of
// the directory) with mode 0600.
func (a *AllowList) Save(path string) error {
	data, err := json.MarshalIndent(a.current().doc, "", "  ")
	if err != nil {
		return fmt.Errorf("sigauth: encode allow-list: %w", err)
	}
	data = append(data, '\n')
	if err := a.doc.Save(path, data); err != nil {
		return fmt.Errorf("sigauth: save allow-list: %w", err)
	}
	return nil
}

// AddClient enrols a signing key (Ed25519 or P-256) under kid for client
// id, creating the client with ops if it is new. Adding a key to an existing
// client is how keys rotate; ops must then be empty or equal to the
// client's current ops, so a rotation can never silently change what a
// client may do (use SetOps for that). The kid must be new to the whole list.
func (a *AllowList) AddClient(id string, ops []string, kid string, pub crypto.PublicKey) error {
	if !validClientID(id) {
		return fmt.Errorf("%w: client id %q", ErrInvalidList, id)
	}
	if err := checkSigningKey(pub); err != nil {
		return err
	}
	jwk, err := jose.MarshalPublicJWK(pub, kid)
	if err != nil {
		return fmt.Errorf("sigauth: encode key: %w", err)
	}
	return a.update(func(doc *fileDoc) error {
		_, used := a.current().byKid[kid]
		if used {
			// Revoked kids and tombstones included: a kid names one key forever.
			return fmt.Errorf("%w: kid %q already used", ErrInvalidList, kid)
		}
		i := slices.IndexFunc(doc.Clients, func(c fileClient) bool { return c.ID == id })
		if i < 0 {
			doc.Clients = append(doc.Clients, fileClient{ID: id, Ops: slices.Clone(ops), Keys: []json.RawMessage{jwk}, RevokedKids: []string{}})
			return nil
		}
		c := &doc.Clients[i]
		if len(ops) > 0 && !sameSet(ops, c.Ops) {
			return fmt.Errorf("%w: client %q exists with ops %v; use SetOps to change them", ErrInvalidList, id, c.Ops)
		}
		c.Keys = append(c.Keys, jwk)
		return nil
	})
}

// SetOps replaces the operations of an existing client.
func (a *AllowList) SetOps(id string, ops []string) error {
	return a.update(func(doc *fileDoc) error {
		i := slices.IndexFunc(doc.Clients, func(c fileClient) bool { return c.ID == id })
		if i < 0 {
			return fmt.Errorf("%w: %q", ErrUnknownClient, id)
		}
		doc.Clients[i].Ops = slices.Clone(ops)
		return nil
	})
}

// Revoke marks kid revoked: requests signed with it fail with ErrRevoked.
// The key stays listed so the refusal is specific and the kid is never
// reused. Revoking an already revoked kid is not an error.
func (a *AllowList) Revoke(kid string) error {
	return a.update(func(doc *fileDoc) error {
		e, ok := a.current().byKid[kid]
		if !ok {
			return fmt.Errorf("%w: kid %q", ErrUnknownClient, kid)
		}
		if e.revoked {
			return nil
		}
		for i := range doc.Clients {
			if doc.Clients[i].ID == e.client {
				doc.Clients[i].RevokedKids = append(doc.Clients[i].RevokedKids, kid)
			}
		}
		return nil
	})
}

// Summary lists the clients, their ops and kids, without key material.
func (a *AllowList) Summary() []ClientSummary {
	snap := a.current()
	out := make([]ClientSummary, 0, len(snap.doc.Clients))
	for _, c := range snap.doc.Clients {
		s := ClientSummary{ID: c.ID, Ops: slices.Clone(c.Ops), Kids: []string{}, RevokedKids: slices.Clone(c.RevokedKids)}
		for kid, e := range snap.byKid {
			if e.client == c.ID && e.key != nil {
				s.Kids = append(s.Kids, kid)
			}
		}
		slices.Sort(s.Kids)
		if s.Ops == nil {
			s.Ops = []string{}
		}
		if s.RevokedKids == nil {
			s.RevokedKids = []string{}
		}
		out = append(out, s)
	}
	return out
}

// lookup returns the entry for kid: ErrUnknownClient if none, ErrRevoked if
// revoked (the entry is still returned so the caller can name the client).
func (a *AllowList) lookup(kid string) (keyEntry, error) {
	if a == nil {
		return keyEntry{}, ErrUnknownClient
	}
	e, ok := a.current().byKid[kid]
	switch {
	case !ok:
		return keyEntry{}, ErrUnknownClient
	case e.revoked:
		return e, ErrRevoked
	}
	return e, nil
}

// current is the snapshot in force (an empty list for the zero value).
func (a *AllowList) current() *snapshot {
	if s := a.doc.Get(); s != nil {
		return s
	}
	return &snapshot{doc: fileDoc{Clients: []fileClient{}}, byKid: map[string]keyEntry{}}
}

// update applies f to a copy of the document, validates the result, and
// swaps it in only if valid.
func (a *AllowList) update(f func(doc *fileDoc) error) error {
	return a.doc.Update(func(*snapshot) (*snapshot, error) {
		doc := cloneDoc(a.current().doc)
		if err := f(&doc); err != nil {
			return nil, err
		}
		return build(doc)
	})
}

func cloneDoc(d fileDoc) fileDoc {
	out := fileDoc{Clients: make([]fileClient, len(d.Clients))}
	for i, c := range d.Clients {
		out.Clients[i] = fileClient{ID: c.ID, Ops: slices.Clone(c.Ops), Keys: slices.Clone(c.Keys), RevokedKids: slices.Clone(c.RevokedKids)}
	}
	return out
}

func parse(data []byte) (*snapshot, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc fileDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidList, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrInvalidList)
	}
	return build(doc)
}

// build validates a document: unique client ids, known ops, signing keys
// only, kids unique across all clients (revoked ones included).
func build(doc fileDoc) (*snapshot, error) {
	if doc.Clients == nil {
		doc.Clients = []fileClient{}
	}
	s := &snapshot{doc: doc, byKid: map[string]keyEntry{}}
	ids := map[string]bool{}
	for _, c := range doc.Clients {
		if !validClientID(c.ID) {
			return nil, fmt.Errorf("%w: client id %q", ErrInvalidList, c.ID)
		}
		if ids[c.ID] {
			return nil, fmt.Errorf("%w: duplicate client %q", ErrInvalidList, c.ID)
		}
		ids[c.ID] = true
		seenOp := map[string]bool{}
		for _, op := range c.Ops {
			if !wire.ValidOp(op) || seenOp[op] {
				return nil, fmt.Errorf("%w: client %q op %q", ErrInvalidList, c.ID, op)
			}
			seenOp[op] = true
		}
		ops := slices.Clone(c.Ops)
		for _, raw := range c.Keys {
			kid, pub, err := jose.ParsePublicJWK(raw)
			if err != nil {
				return nil, fmt.Errorf("%w: client %q key: %w", ErrInvalidList, c.ID, err)
			}
			if err := checkSigningKey(pub); err != nil {
				return nil, fmt.Errorf("client %q key %q: %w", c.ID, kid, err)
			}
			if _, dup := s.byKid[kid]; dup {
				return nil, fmt.Errorf("%w: kid %q listed twice", ErrInvalidList, kid)
			}
			key, err := jose.NewVerifyKey(pub)
			if err != nil {
				return nil, fmt.Errorf("%w: client %q key %q: %w", ErrInvalidList, c.ID, kid, err)
			}
			s.byKid[kid] = keyEntry{client: c.ID, ops: ops, key: key}
		}
		for _, kid := range c.RevokedKids {
			e, ok := s.byKid[kid]
			switch {
			case !ok:
				// A tombstone: the key is gone but its kid stays reserved.
				s.byKid[kid] = keyEntry{client: c.ID, ops: ops, revoked: true}
			case e.client != c.ID:
				return nil, fmt.Errorf("%w: client %q revokes kid %q of client %q", ErrInvalidList, c.ID, kid, e.client)
			case e.revoked:
				return nil, fmt.Errorf("%w: kid %q revoked twice", ErrInvalidList, kid)
			default:
				e.revoked = true
				s.byKid[kid] = e
			}
		}
	}
	return s, nil
}

// checkSigningKey admits only the key types Contract 2 signs with.
func checkSigningKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) == ed25519.PublicKeySize {
			return nil
		}
	case *ecdsa.PublicKey:
		if k != nil && k.Curve == elliptic.P256() {
			return nil
		}
	}
	return fmt.Errorf("%w: client keys must be Ed25519 or P-256", ErrInvalidList)
}

// validClientID keeps ids short and log-safe; kids are derived from them.
func validClientID(id string) bool {
	if id == "" || len(id) > 64 {
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

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

func readCapped(path string) ([]byte, error) {
	data, err := atomicfile.ReadCapped(path, maxAllowListSize)
	if errors.Is(err, atomicfile.ErrTooLarge) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidList, err)
	}
	if err != nil {
		return nil, fmt.Errorf("sigauth: read allow-list: %w", err)
	}
	return data, nil
}
