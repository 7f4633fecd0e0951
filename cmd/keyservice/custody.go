package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/sharefile"
)

// splitFlags is how an admin command splits a master key: -shares,
// -threshold, -recipients, -share-dir.
type splitFlags struct {
	shares, threshold int
	sharesSet         bool // -shares or -threshold given
	recipients        string
	dir               string
}

// handout is a master key split and ready to be handed out: printed, or
// written to share files encrypted to the custodians' age keys.
type handout struct {
	master []byte            // a whole key to print (no share set); nil otherwise
	set    *keyring.ShareSet // nil for a whole key
	shares [][]byte
	rs     []age.Recipient
	dir    string
	files  []string
}

// prepare splits master as the flags say. One share is the whole key
// (printed, or refused with -recipients: hand a custodian a share, not the
// key). Everything is checked before the keyring changes.
func (f splitFlags) prepare(master []byte) (*handout, error) {
	n, k := f.shares, f.threshold
	if k == 0 {
		k = n
	}
	var rs []age.Recipient
	if f.recipients != "" {
		var err error
		if rs, err = sharefile.ParseRecipients(f.recipients); err != nil {
			return nil, err
		}
		if len(rs) != n {
			return nil, fmt.Errorf("-recipients names %d age keys for %d shares: give one per share, in share order", len(rs), n)
		}
	}
	if n <= 1 {
		if k > 1 {
			return nil, fmt.Errorf("-threshold %d is more than -shares %d", k, n)
		}
		if rs != nil {
			return nil, errors.New("-recipients needs -shares 2 or more: a custodian is handed a share, never the whole master key")
		}
		return &handout{master: append([]byte(nil), master...)}, nil
	}
	set, shares, err := keyring.SplitThreshold(master, n, k)
	if err != nil {
		return nil, err
	}
	return &handout{set: set, shares: shares, rs: rs, dir: f.dir}, nil
}

// writeFiles writes the encrypted share files, when there are recipients.
func (h *handout) writeFiles() error {
	if h.rs == nil {
		return nil
	}
	files, err := sharefile.WriteAll(h.dir, h.set, h.shares, h.rs)
	h.files = files
	return err
}

// removeFiles undoes writeFiles after the keyring change failed: those
// shares open nothing.
func (h *handout) removeFiles() {
	for _, p := range h.files {
		_ = os.Remove(p)
	}
	h.files = nil
}

func (h *handout) wipe() {
	clear(h.master)
	for _, s := range h.shares {
		clear(s)
	}
}

// print shows what to hand out: the share files, or the shares themselves
// (shown once), or the whole master key.
func (h *handout) print(out io.Writer) {
	switch {
	case h.set == nil:
		fmt.Fprintf(out, "master key (shown once; store it offline):\n  %s\n", keyring.EncodeMasterKey(h.master))
	case h.files != nil:
		fmt.Fprintf(out, "master key split into %d shares, any %d of which unseal (share set %s). Each is encrypted to its custodian's age key; hand out the files (the custodian runs `age -d -i KEY FILE | keyservice unseal`):\n",
			h.set.Total, h.set.Threshold, h.set.Set)
		for i, p := range h.files {
			fmt.Fprintf(out, "  %s for %s (share id %s)\n", p, h.rs[i], h.set.ShareID(i+1))
		}
	default:
		fmt.Fprintf(out, "master key split into %d shares, any %d of which unseal (share set %s). Give each to a different custodian (shown once):\n",
			h.set.Total, h.set.Threshold, h.set.Set)
		for i, p := range h.shares {
			fmt.Fprintf(out, "  share %d: %s\n", i+1, keyring.EncodeMasterKey(p))
		}
	}
}

// rekeyCmd is `keys rekey` (a new share set for the same master key) and
// `keys rotate-master` (a new master key, the keyring re-sealed under it,
// and its share set). Both need the current master key: threshold shares
// on standard input, from the custodians present (or -master-key).
//
// Rekey leaves the keyring's keys, and so every stored card, as they are;
// only the header's share set changes, and a running key service picks it
// up by itself (it holds the same master key). A master rotation changes
// the key a running service holds: it keeps serving what it loaded and
// re-opens the file when threshold of the new shares are submitted to it
// (`keyservice unseal`), without a restart.
func rekeyCmd(ctx context.Context, rotate bool, path, masterRef, auditPath string, f splitFlags, out io.Writer) error {
	name := "keys rekey"
	if rotate {
		name = "keys rotate-master"
	}
	master, ids, err := readMaster(masterRef, path)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer clear(master)
	kr, err := keyring.Load(path, master)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	old := kr.Custody()
	if rotate && old.HSM != nil {
		return fmt.Errorf("%s: this keyring's master key is also wrapped by an HSM key; rotate it with the HSM at hand (keys rotate-master -hsm-module ...)", name)
	}
	if !f.sharesSet {
		if old.Shares == nil {
			return fmt.Errorf("%s: -shares is required (this keyring records no share set yet)", name)
		}
		f.shares, f.threshold = old.Shares.Total, old.Shares.Threshold
	}
	if !rotate && f.shares < 2 {
		return errors.New("keys rekey: -shares must be 2 or more (rekey makes a new share set; a whole master key would only be a copy of the one in use)")
	}
	if added, err := kr.EnsureAuditKey(); err != nil {
		return err
	} else if added {
		fmt.Fprintln(out, "this keyring had no audit signing key; one is added with this change")
		printAuditKey(out, kr)
	}
	newMaster := master
	if rotate {
		if newMaster, err = keyring.GenerateMasterKey(); err != nil {
			return err
		}
		defer clear(newMaster)
	}
	h, err := f.prepare(newMaster)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer h.wipe()
	c := old
	c.Shares = h.set
	kr.SetCustody(c)
	if err := h.writeFiles(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ev := audit.Event{Event: audit.EventKeyRekey, Resource: givenBy(ids), Reason: describe(old.Shares) + " -> " + describe(h.set)}
	save := func() error { return keyring.Save(path, kr, master) }
	if rotate {
		ev.Event = audit.EventKeyRotateMaster
		save = func() error { return keyring.Reseal(path, kr, master, newMaster) }
	}
	if err := audit.AdminChange(ctx, auditPath, ev, out, save); err != nil {
		h.removeFiles()
		return err
	}
	if rotate {
		fmt.Fprintf(out, "keyring %s re-sealed under a new master key; the old shares open nothing now: have them destroyed\n", path)
	} else {
		fmt.Fprintf(out, "keyring %s rekeyed: same master key, new share set; the old shares no longer unseal: have them destroyed\n", path)
	}
	h.print(out)
	if rotate {
		fmt.Fprintln(out, "a running key service keeps serving the keyring it holds; submit the new shares to it (keyservice unseal) to re-open the file under the new master key, until then it cannot pick up key rotations")
	} else {
		fmt.Fprintln(out, "a running key service picks the new share set up by itself; stored cards are untouched")
	}
	return nil
}

// givenBy names, for the audit trail, what proved the master key: the
// custodians' share ids, never the shares.
func givenBy(ids []string) string {
	if len(ids) == 0 {
		return "master key"
	}
	return "shares " + strings.Join(ids, ",")
}

func describe(s *keyring.ShareSet) string {
	if s == nil {
		return "no share set (whole master key or n-of-n shares)"
	}
	return s.String()
}
