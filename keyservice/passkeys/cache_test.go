package passkeys

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/atomicfile"
	"github.com/blindgate/blindgate/internal/passkey"
	"github.com/blindgate/blindgate/internal/passkey/passkeytest"
	"github.com/blindgate/blindgate/keyservice/nonce"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// settled makes r take every file it loads as written long ago (past
// racyWindow), so its checks are the stat alone: what a change must get
// through.
func settled(r *Registry) { r.now = func() time.Time { return time.Now().Add(time.Hour) } }

// approvalFixture is a passkey service whose registry the tests change as
// the admin command does, from a second Registry on the same file.
type approvalFixture struct {
	svc  *Service
	reg  *Registry // the service's
	cli  *Registry // the admin command's
	auth *passkeytest.Authenticator
	e    Entry
}

func newApprovalFixture(t *testing.T) *approvalFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "passkeys.json")
	f := &approvalFixture{reg: openRegistry(t, path), cli: openRegistry(t, path)}
	settled(f.reg)
	f.auth, f.e = newCred(t, "op_1")
	if err := f.cli.AddPending(f.e); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cli.Approve(f.e.ID(), "admin", t0); err != nil {
		t.Fatal(err)
	}
	v, err := passkey.New(passkey.RP{ID: testRPID, Origins: []string{testOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	f.svc, err = New(Config{Registry: f.reg, Nonces: nonce.NewMemory(nil, 0), Verifier: v, Audit: nopAudit{}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// reveal asks for a challenge and approves it with the passkey.
func (f *approvalFixture) reveal(t *testing.T) error {
	t.Helper()
	ch, err := f.svc.RevealChallenge(context.Background(), "backoffice", "", "op_1", "tok_1")
	if err != nil {
		return err
	}
	return f.approve(t, ch.Nonce)
}

func (f *approvalFixture) approve(t *testing.T, n string) error {
	t.Helper()
	const jkt = "thumbprint-of-the-browser-key"
	as, err := f.auth.Get(wire.RevealChallenge(n, "tok_1", "ticket 1", jkt))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Approve(context.Background(), "backoffice", Approval{Actor: "op_1", Token: "tok_1", Reason: "ticket 1", Nonce: n, JKT: jkt, Assertion: as})
	return err
}

// TestRevocationSeenByTheNextReveal: a passkey the admin command revokes
// between two reveals approves the first and not the second, though the
// service's registry answers unchanged files from its cache (settled: the
// stat alone decides). A cache that missed the change would approve both.
func TestRevocationSeenByTheNextReveal(t *testing.T) {
	f := newApprovalFixture(t)
	if err := f.reveal(t); err != nil {
		t.Fatalf("first reveal: %v", err)
	}
	// The second reveal's challenge is issued before the revocation.
	ch, err := f.svc.RevealChallenge(context.Background(), "backoffice", "", "op_1", "tok_1")
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := f.reg.ReloadIfChanged(); changed || err != nil {
		t.Fatalf("an unchanged registry reloads: %v, %v", changed, err)
	}
	if _, err := f.cli.Revoke(f.e.ID(), "admin", t0); err != nil {
		t.Fatal(err)
	}
	if err := f.approve(t, ch.Nonce); !errors.Is(err, ErrUnknown) {
		t.Fatalf("reveal after the revocation: %v, want ErrUnknown (passkey_unknown)", err)
	}
	if _, err := f.svc.RevealChallenge(context.Background(), "backoffice", "", "op_1", "tok_1"); !errors.Is(err, ErrRequired) {
		t.Fatalf("challenge after the revocation: %v, want ErrRequired (passkey_required)", err)
	}
}

// TestRegistrySeesEveryChange: each way the file can change is seen by
// the next check, also those a stat of size and modification time alone
// would miss.
func TestRegistrySeesEveryChange(t *testing.T) {
	_, e1 := newCred(t, "op_1")
	_, e2 := newCred(t, "op_1")
	// Two registry files of the same size: the same passkeys, one of them
	// approved in each.
	files := func(t *testing.T) (a, b []byte) {
		t.Helper()
		enc := func(approved Entry, pending Entry) []byte {
			approved.Status, approved.ApprovedAt, approved.ApprovedBy = wire.PasskeyApproved, t0, "admin"
			pending.Status = wire.PasskeyPending
			out, err := encodeFile([]Entry{approved, pending})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		a, b = enc(e1, e2), enc(e2, e1)
		if len(a) != len(b) {
			t.Fatalf("fixture: files of %d and %d bytes", len(a), len(b))
		}
		return a, b
	}
	approvedIs := func(t *testing.T, r *Registry, want Entry) {
		t.Helper()
		got := r.Approved("op_1")
		if len(got) != 1 || !bytes.Equal(got[0].Credential.ID, want.Credential.ID) {
			t.Fatalf("approved in force: %d, not the one the file approves", len(got))
		}
	}
	for _, tc := range []struct {
		name    string
		settled bool // the registry trusts the stat (the file is old)
		write   func(t *testing.T, path string, data []byte)
	}{
		// A new inode: the registry holds the old file open, so its inode
		// number is not free for the new file, whatever the times.
		{"atomic-replace/same-size-same-mtime", true, func(t *testing.T, path string, data []byte) {
			keepMtime(t, path, func() error { return atomicfile.Write(path, data) })
		}},
		// The same inode, rewritten at once: the times may not have moved
		// (one clock tick), so a file this fresh is read at every check.
		{"in-place/same-size-same-mtime-fresh", false, func(t *testing.T, path string, data []byte) {
			keepMtime(t, path, func() error { return os.WriteFile(path, data, 0o600) })
		}},
		{"removed/empty-registry", true, func(t *testing.T, path string, _ []byte) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "passkeys.json")
			a, b := files(t)
			if err := atomicfile.Write(path, a); err != nil {
				t.Fatal(err)
			}
			r := openRegistry(t, path)
			if tc.settled {
				settled(r)
				if _, err := r.reload(); err != nil {
					t.Fatal(err)
				}
			}
			approvedIs(t, r, e1)
			if changed, err := r.ReloadIfChanged(); changed || err != nil {
				t.Fatalf("unchanged file: %v, %v", changed, err)
			}
			tc.write(t, path, b)
			changed, err := r.ReloadIfChanged()
			if err != nil || !changed {
				t.Fatalf("after the change: changed %v, %v", changed, err)
			}
			if tc.name == "removed/empty-registry" {
				if n := len(r.All()); n != 0 {
					t.Fatalf("a removed registry leaves %d passkeys in force", n)
				}
				return
			}
			approvedIs(t, r, e2)
		})
	}
}

// keepMtime runs write and sets the file's modification time back to what
// it was, as a write within the same clock tick would leave it.
func keepMtime(t *testing.T, path string, write func() error) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// TestFileIDSame: a file is the one loaded only if every part of its id
// is; a missing file is only the same as a missing file.
func TestFileIDSame(t *testing.T) {
	base := fileID{dev: 1, ino: 2, size: 3, mtime: 4, ctime: 5, known: true, trusted: true}
	for _, tc := range []struct {
		name string
		cur  func(fileID) fileID
		same bool
	}{
		{"same/all-equal", func(id fileID) fileID { return id }, true},
		{"changed/inode", func(id fileID) fileID { id.ino++; return id }, false},
		{"changed/device", func(id fileID) fileID { id.dev++; return id }, false},
		{"changed/size", func(id fileID) fileID { id.size++; return id }, false},
		{"changed/mtime", func(id fileID) fileID { id.mtime++; return id }, false},
		{"changed/ctime", func(id fileID) fileID { id.ctime++; return id }, false},
		{"changed/removed", func(fileID) fileID { return fileID{missing: true} }, false},
		{"changed/unknown-identity", func(id fileID) fileID { id.known = false; return id }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := base.same(tc.cur(base)); got != tc.same {
				t.Fatalf("same = %v, want %v", got, tc.same)
			}
		})
	}
	missing := fileID{missing: true, trusted: true}
	if !missing.same(fileID{missing: true}) || missing.same(base) {
		t.Fatal("a missing file")
	}
}

// TestRacyFileNotTrusted: a file loaded within racyWindow of its last
// change is not trusted (every check reads it); one loaded later is.
func TestRacyFileNotTrusted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passkeys.json")
	if err := os.WriteFile(path, []byte(`{"version":1,"passkeys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	last := fi.ModTime()
	for _, tc := range []struct {
		name    string
		at      time.Time
		trusted bool
	}{
		{"racy/just-written", last, false},
		{"racy/within-the-window", last.Add(racyWindow - time.Millisecond), false},
		{"racy/clock-behind-the-file", last.Add(-time.Hour), false},
		{"trusted/past-the-window", last.Add(racyWindow + time.Second), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := statID(fi, tc.at)
			if id.known && id.trusted != tc.trusted {
				t.Fatalf("trusted = %v, want %v", id.trusted, tc.trusted)
			}
			if !id.known && id.trusted {
				t.Fatal("a file without inode and change time is trusted")
			}
		})
	}
}

// TestConcurrentChecksDuringRewrites: reveals check the registry while the
// admin command rewrites it (run with -race); every check sees a whole
// registry, and once the writes end the next check sees the last one.
func TestConcurrentChecksDuringRewrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passkeys.json")
	server, cli := openRegistry(t, path), openRegistry(t, path)
	settled(server)
	var entries []Entry
	for range 4 {
		_, e := newCred(t, "op_1")
		if err := cli.AddPending(e); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := server.ReloadIfChanged(); err != nil {
					t.Error(err)
					return
				}
				if n := len(server.All()); n != len(entries) {
					t.Errorf("%d passkeys in force, want %d", n, len(entries))
					return
				}
			}
		})
	}
	// The admin approves and revokes, one change after another.
	for i, e := range entries {
		if _, err := cli.Approve(e.ID(), "admin", t0); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			if _, err := cli.Revoke(e.ID(), "admin", t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	if _, err := server.ReloadIfChanged(); err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		got, _ := server.Lookup(e.Credential.ID)
		want := wire.PasskeyApproved
		if i%2 == 1 {
			want = wire.PasskeyRevoked
		}
		if got.Status != want {
			t.Fatalf("passkey %d is %s in force after the writes, the file says %s", i, got.Status, want)
		}
	}
}

// TestUnreadableRegistry: a registry file that cannot be read or parsed
// never replaces the registry in force, and is tried again at every check
// (the error each time, as before the cache), until a good file is back;
// a removed file is an empty registry, which approves nothing. While the
// file is broken a synced passkey (no counter) is approved by the registry
// in force, and one whose counter moved is refused, its new count not
// stored (503): as before the cache.
func TestUnreadableRegistry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, path string)
	}{
		{"unparsable", func(t *testing.T, path string) {
			if err := atomicfile.Write(path, []byte(`{"version":1,"passkeys":[{`)); err != nil {
				t.Fatal(err)
			}
		}},
		{"not-a-file", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"too-large", func(t *testing.T, path string) {
			if err := atomicfile.Write(path, bytes.Repeat([]byte(" "), maxFileSize+1)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		for _, counter := range []bool{false, true} {
			want, name := error(nil), tc.name+"/synced-passkey-in-force"
			if counter {
				want, name = ErrUnavailable, tc.name+"/counter-not-stored"
			}
			t.Run(name, func(t *testing.T) {
				f := newApprovalFixture(t)
				f.auth.NoCounter = !counter
				if err := f.reveal(t); err != nil {
					t.Fatal(err)
				}
				ch, err := f.svc.RevealChallenge(context.Background(), "backoffice", "", "op_1", "tok_1")
				if err != nil {
					t.Fatal(err)
				}
				good, err := os.ReadFile(f.reg.Path())
				if err != nil {
					t.Fatal(err)
				}
				tc.corrupt(t, f.reg.Path())
				for i := range 3 {
					if _, err := f.reg.ReloadIfChanged(); err == nil {
						t.Fatalf("check %d of a broken registry: no error", i)
					}
				}
				if err := f.approve(t, ch.Nonce); !errors.Is(err, want) || (err == nil) != (want == nil) {
					t.Fatalf("reveal while the file is broken: %v, want %v", err, want)
				}
				// A good file again, with the passkey revoked: seen at once.
				_ = os.RemoveAll(f.reg.Path())
				if err := atomicfile.Write(f.reg.Path(), good); err != nil {
					t.Fatal(err)
				}
				if _, err := f.cli.Revoke(f.e.ID(), "admin", t0); err != nil {
					t.Fatal(err)
				}
				if err := f.reveal(t); !errors.Is(err, ErrRequired) {
					t.Fatalf("after the repair and a revocation: %v, want ErrRequired", err)
				}
			})
		}
	}
	t.Run("removed", func(t *testing.T) {
		f := newApprovalFixture(t)
		if err := f.reveal(t); err != nil {
			t.Fatal(err)
		}
		ch, err := f.svc.RevealChallenge(context.Background(), "backoffice", "", "op_1", "tok_1")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(f.reg.Path()); err != nil {
			t.Fatal(err)
		}
		if err := f.approve(t, ch.Nonce); !errors.Is(err, ErrUnknown) {
			t.Fatalf("reveal with the registry removed: %v, want ErrUnknown", err)
		}
	})
}
