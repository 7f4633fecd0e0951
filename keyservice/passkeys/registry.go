// Package passkeys is the key service's register of operators' passkeys
// and the approval of reveals with them.
//
// The registry is a file in the key zone. The running service adds
// pending registrations (what the gateway forwards) and sign counters;
// only an admin in the key zone (`keyservice passkeys approve`) makes a
// passkey approved, and only an approved passkey of the operator named
// approves that operator's reveals. A compromised gateway can therefore
// register nothing usable on its own. The service and the admin command
// change the file under one lock file (flock) with read-modify-write, so
// neither loses the other's change, and the service re-reads the file when
// it changed: checked on every reveal and challenge (a stat, see fileID),
// and by the watcher.
package passkeys

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindgate/blindgate/internal/atomicfile"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// Registry errors.
var (
	// ErrNotFound: no passkey matches the id or fingerprint given.
	ErrNotFound = errors.New("passkeys: no such passkey")
	// ErrAmbiguous: a fingerprint names more than one passkey; use the id.
	ErrAmbiguous = errors.New("passkeys: several passkeys match; give the credential id")
	// ErrState: the change does not apply to the passkey's status
	// (approving a revoked one, revoking one twice).
	ErrState = errors.New("passkeys: not possible in this status")
	// ErrDuplicate: a passkey with this credential id is registered already.
	ErrDuplicate = errors.New("passkeys: credential already registered")
	// ErrTooMany: the operator has MaxPerActor passkeys that are not revoked.
	ErrTooMany = errors.New("passkeys: too many passkeys for this operator")
	// ErrBusy: the registry's lock could not be taken in time.
	ErrBusy = errors.New("passkeys: registry busy")
	// ErrFile: the registry file is not valid.
	ErrFile = errors.New("passkeys: invalid registry file")
)

// Limits of the registry.
const (
	// MaxPerActor bounds an operator's pending and approved passkeys: a
	// compromised gateway cannot fill the file with registrations.
	MaxPerActor = 10
	maxFileSize = 4 << 20
	lockWait    = 5 * time.Second
	fileVersion = 1
)

// Entry is one passkey in the registry.
type Entry struct {
	Actor      string             `json:"actor"`
	Username   string             `json:"username"`
	Status     string             `json:"status"` // wire.PasskeyPending, PasskeyApproved, PasskeyRevoked
	Client     string             `json:"client"` // the signing client that registered it
	Credential passkey.Credential `json:"credential"`
	ApprovedAt time.Time          `json:"approved_at,omitzero"`
	ApprovedBy string             `json:"approved_by,omitempty"`
	RevokedAt  time.Time          `json:"revoked_at,omitzero"`
	RevokedBy  string             `json:"revoked_by,omitempty"`
}

// ID is the credential id in unpadded base64url.
func (e Entry) ID() string { return e.Credential.IDString() }

// Fingerprint is the passkey's fingerprint (passkey.Fingerprint).
func (e Entry) Fingerprint() string { return passkey.Fingerprint(e.Credential) }

// AAGUID is the authenticator model's id as hex ("" when it sent zeros).
func (e Entry) AAGUID() string {
	if len(e.Credential.AAGUID) == 0 || bytes.Equal(e.Credential.AAGUID, make([]byte, len(e.Credential.AAGUID))) {
		return ""
	}
	return hex.EncodeToString(e.Credential.AAGUID)
}

// Info is the entry as the wire lists it.
func (e Entry) Info() wire.PasskeyInfo {
	i := wire.PasskeyInfo{ID: e.ID(), Fingerprint: e.Fingerprint(), Status: e.Status, CreatedAt: e.Credential.CreatedAt.Unix()}
	if !e.ApprovedAt.IsZero() {
		i.ApprovedAt = e.ApprovedAt.Unix()
	}
	return i
}

// file is the registry's on-disk form.
type file struct {
	Version  int     `json:"version"`
	Passkeys []Entry `json:"passkeys"`
}

// Registry is the passkey file and its snapshot in force. Safe for
// concurrent use.
type Registry struct {
	path string
	doc  atomicfile.Doc[[]Entry]
	rmw  sync.Mutex // this process's read-modify-writes, beside the flock
	// load serializes putting a file's entries in force with recording
	// which file that was: seen always names the file whose entries are
	// in force (or is nil: read the file at the next check).
	load sync.Mutex
	seen atomic.Pointer[fileID]
	held *os.File // the file seen names, kept open (fileID); under load
	now  func() time.Time
}

// Open loads the registry at path; a missing file is an empty registry
// (the first registration creates it).
func Open(path string) (*Registry, error) {
	r := &Registry{path: path, now: time.Now}
	if _, err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Path is the registry file.
func (r *Registry) Path() string { return r.path }

// ReloadIfChanged puts the file in force if it changed and is valid; a
// bad file never replaces the registry in force. Whether it changed is a
// stat compared with the file in force (fileID): the file is read only
// when that differs or cannot be trusted, so a change an admin command
// made is seen by the next check, and an unchanged file costs one stat.
func (r *Registry) ReloadIfChanged() (bool, error) {
	if seen := r.seen.Load(); seen != nil && seen.trusted {
		if cur, err := pathID(r.path); err == nil && seen.same(cur) {
			return false, nil
		}
	}
	return r.reload()
}

// reload reads the file and puts it in force if its bytes differ from
// those in force, then records which file that was (fileID of the very
// file read, from the open file, not the path, which may have been
// replaced since). A read or parse error leaves seen as it was, so the
// next check tries again.
func (r *Registry) reload() (bool, error) {
	r.load.Lock()
	defer r.load.Unlock()
	var data []byte
	id := fileID{missing: true, trusted: true}
	f, err := os.Open(r.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		f = nil
	case err != nil:
		return false, fmt.Errorf("passkeys: %w", err)
	default:
		fi, err := f.Stat()
		if err == nil {
			id = statID(fi, r.now())
			data, err = atomicfile.ReadOpen(f, maxFileSize)
		}
		if err != nil {
			_ = f.Close()
			return false, fmt.Errorf("passkeys: %w", err)
		}
	}
	changed, err := r.doc.Reload(data, parse)
	if err != nil {
		if f != nil {
			_ = f.Close()
		}
		return false, fmt.Errorf("passkeys %s: %w", r.path, err)
	}
	r.seen.Store(&id)
	if r.held != nil {
		_ = r.held.Close()
	}
	r.held = f
	return changed, nil
}

// All is every passkey, oldest first.
func (r *Registry) All() []Entry { return slices.Clone(r.doc.Get()) }

// List is the actor's passkeys, oldest first.
func (r *Registry) List(actor string) []Entry {
	var out []Entry
	for _, e := range r.doc.Get() {
		if e.Actor == actor {
			out = append(out, e)
		}
	}
	return out
}

// Approved is the actor's approved passkeys.
func (r *Registry) Approved(actor string) []Entry {
	var out []Entry
	for _, e := range r.List(actor) {
		if e.Status == wire.PasskeyApproved {
			out = append(out, e)
		}
	}
	return out
}

// Lookup finds a passkey by credential id.
func (r *Registry) Lookup(id []byte) (Entry, bool) {
	for _, e := range r.doc.Get() {
		if bytes.Equal(e.Credential.ID, id) {
			return e, true
		}
	}
	return Entry{}, false
}

// Resolve finds the passkey an admin names: its fingerprint (any case,
// dashes optional) or its base64url credential id.
func (r *Registry) Resolve(ref string) (Entry, error) {
	return resolve(r.doc.Get(), ref)
}

func resolve(entries []Entry, ref string) (Entry, error) {
	fp := passkey.NormFingerprint(ref)
	var found []Entry
	for _, e := range entries {
		if e.ID() == ref || (fp != "" && e.Fingerprint() == fp) {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 0:
		return Entry{}, ErrNotFound
	case 1:
		return found[0], nil
	}
	return Entry{}, ErrAmbiguous
}

// AddPending records a new passkey as pending.
func (r *Registry) AddPending(e Entry) error {
	e.Status = wire.PasskeyPending
	e.ApprovedAt, e.ApprovedBy, e.RevokedAt, e.RevokedBy = time.Time{}, "", time.Time{}, ""
	if err := check(e); err != nil {
		return err
	}
	return r.change(func(cur []Entry) ([]Entry, error) {
		n := 0
		for _, x := range cur {
			if bytes.Equal(x.Credential.ID, e.Credential.ID) {
				return nil, ErrDuplicate
			}
			if x.Actor == e.Actor && x.Status != wire.PasskeyRevoked {
				n++
			}
		}
		if n >= MaxPerActor {
			return nil, ErrTooMany
		}
		return append(slices.Clone(cur), e), nil
	})
}

// Approve makes the pending passkey ref names approve its operator's
// reveals; by is who approved it (the audit actor).
func (r *Registry) Approve(ref, by string, now time.Time) (Entry, error) {
	return r.transition(ref, func(e *Entry) error {
		if e.Status != wire.PasskeyPending {
			return fmt.Errorf("%w: the passkey is %s, only a pending one can be approved", ErrState, e.Status)
		}
		e.Status, e.ApprovedAt, e.ApprovedBy = wire.PasskeyApproved, now.UTC().Truncate(time.Second), by
		return nil
	})
}

// Revoke revokes the passkey ref names (pending or approved).
func (r *Registry) Revoke(ref, by string, now time.Time) (Entry, error) {
	return r.transition(ref, func(e *Entry) error {
		if e.Status == wire.PasskeyRevoked {
			return fmt.Errorf("%w: the passkey is revoked already", ErrState)
		}
		e.Status, e.RevokedAt, e.RevokedBy = wire.PasskeyRevoked, now.UTC().Truncate(time.Second), by
		return nil
	})
}

func (r *Registry) transition(ref string, apply func(*Entry) error) (Entry, error) {
	var out Entry
	err := r.change(func(cur []Entry) ([]Entry, error) {
		e, err := resolve(cur, ref)
		if err != nil {
			return nil, err
		}
		next := slices.Clone(cur)
		for i := range next {
			if bytes.Equal(next[i].Credential.ID, e.Credential.ID) {
				if err := apply(&next[i]); err != nil {
					return nil, err
				}
				out = next[i]
			}
		}
		return next, nil
	})
	return out, err
}

// SetSignCount stores the counter a verified assertion of id carried, if
// the passkey is still approved and the counter moved forward since the
// snapshot it was verified against (a cloned authenticator racing the
// genuine one loses here).
func (r *Registry) SetSignCount(id []byte, verifiedFrom, count uint32) error {
	return r.change(func(cur []Entry) ([]Entry, error) {
		next := slices.Clone(cur)
		for i := range next {
			e := &next[i]
			if !bytes.Equal(e.Credential.ID, id) {
				continue
			}
			switch {
			case e.Status != wire.PasskeyApproved:
				return nil, fmt.Errorf("%w: the passkey is %s", ErrState, e.Status)
			case e.Credential.SignCount != verifiedFrom && count <= e.Credential.SignCount:
				return nil, fmt.Errorf("%w: sign counter %d is not above %d", passkey.ErrInvalid, count, e.Credential.SignCount)
			}
			e.Credential.SignCount = max(e.Credential.SignCount, count)
			return next, nil
		}
		return nil, ErrNotFound
	})
}

// change applies a read-modify-write under the lock file: the file as it
// is now (another process may have changed it), the change, the atomic
// save, and the new snapshot in force.
func (r *Registry) change(apply func([]Entry) ([]Entry, error)) error {
	r.rmw.Lock()
	defer r.rmw.Unlock()
	unlock, err := lock(r.path)
	if err != nil {
		return err
	}
	defer unlock()
	data, err := atomicfile.ReadCapped(r.path, maxFileSize)
	if errors.Is(err, os.ErrNotExist) {
		data, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("passkeys: %w", err)
	}
	cur, err := parse(data)
	if err != nil {
		return err
	}
	next, err := apply(cur)
	if err != nil {
		return err
	}
	out, err := encodeFile(next)
	if err != nil {
		return err
	}
	r.load.Lock()
	defer r.load.Unlock()
	// The file is replaced: the next check reads it (its bytes are these,
	// so it parses nothing) and records its fileID.
	r.seen.Store(nil)
	if err := r.doc.Save(r.path, out); err != nil {
		return fmt.Errorf("passkeys: save: %w", err)
	}
	r.doc.Load(next, out)
	return nil
}

// encodeFile is the registry file of entries.
func encodeFile(entries []Entry) ([]byte, error) {
	out, err := json.MarshalIndent(file{Version: fileVersion, Passkeys: entries}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("passkeys: encode: %w", err)
	}
	return append(out, '\n'), nil
}

// parse reads and checks a registry file; empty data is an empty registry.
func parse(data []byte) ([]Entry, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFile, err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrFile, f.Version, fileVersion)
	}
	seen := map[string]bool{}
	for i, e := range f.Passkeys {
		if err := check(e); err != nil {
			return nil, fmt.Errorf("%w: passkey %d: %w", ErrFile, i+1, err)
		}
		if seen[e.ID()] {
			return nil, fmt.Errorf("%w: passkey %d: credential listed twice", ErrFile, i+1)
		}
		seen[e.ID()] = true
	}
	return f.Passkeys, nil
}

// check is the rule for one entry, written or read.
func check(e Entry) error {
	switch {
	case wire.ValidateID("actor", e.Actor) != nil:
		return fmt.Errorf("%w: actor", ErrFile)
	case wire.ValidateUsername(e.Username) != nil:
		return fmt.Errorf("%w: username", ErrFile)
	case e.Status != wire.PasskeyPending && e.Status != wire.PasskeyApproved && e.Status != wire.PasskeyRevoked:
		return fmt.Errorf("%w: status %q", ErrFile, e.Status)
	case len(e.Credential.ID) == 0 || len(e.Credential.ID) > wire.MaxCredentialIDLen || len(e.Credential.PublicKey) == 0:
		return fmt.Errorf("%w: credential", ErrFile)
	case !bytes.Equal(e.Credential.UserHandle, wire.UserHandle(e.Actor)):
		// The authenticator stored this handle; it ties the passkey to the
		// operator it was made for.
		return fmt.Errorf("%w: user handle is not the operator's", ErrFile)
	case e.Status == wire.PasskeyApproved && e.ApprovedAt.IsZero():
		return fmt.Errorf("%w: approved without a time", ErrFile)
	}
	return nil
}
