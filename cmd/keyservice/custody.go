package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/hsm"
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
	hsm               hsm.Config // with a module: the master key is also wrapped by the token
}

// hsmFlags registers the HSM seal's flags of the admin commands.
func hsmFlags(fs *flag.FlagSet) *hsm.Config {
	c := &hsm.Config{}
	fs.StringVar(&c.Module, "hsm-module", envOr("BLINDGATE_KS_HSM_MODULE", ""), "HSM seal: PKCS#11 module; init and rotate-master wrap the master key with the token's AES key, other commands get the master key from it (binary built with -tags hsm)")
	fs.StringVar(&c.TokenLabel, "hsm-token-label", envOr("BLINDGATE_KS_HSM_TOKEN_LABEL", ""), "HSM seal: the token's label")
	fs.StringVar(&c.PIN, "hsm-pin", envOr("BLINDGATE_KS_HSM_PIN", ""), "HSM seal: user PIN reference (env:NAME or file:PATH)")
	fs.StringVar(&c.KeyLabel, "hsm-key-label", "blindgate-master", "HSM seal: label of the token's AES key that wraps the master key (init, rekey, rotate-master)")
	fs.BoolVar(&c.CreateKey, "hsm-create-key", false, "HSM seal: generate that AES key in the token (sensitive, not extractable) when none has the label")
	return c
}

// masterFromHSM unwraps the keyring's master key with the token.
func masterFromHSM(path string, hc hsm.Config) ([]byte, []string, error) {
	c, err := keyring.ReadCustody(path)
	if err != nil {
		return nil, nil, err
	}
	if c.HSM == nil {
		return nil, nil, errors.New("-hsm-module: this keyring's master key is not wrapped by an HSM; give its shares on standard input")
	}
	dep, err := keyring.ReadDeployment(path)
	if err != nil {
		return nil, nil, err
	}
	tok, err := hsm.Open(hc)
	if err != nil {
		return nil, nil, err
	}
	defer tok.Close()
	m, err := tok.Unwrap(c.HSM, hsm.AAD(dep))
	return m, []string{"hsm:" + c.HSM.KeyLabel}, err
}

// custody is the header's record for a new split of master: the share set,
// and with -hsm-module the master key wrapped by the token.
func (f splitFlags) custody(h *handout, master []byte, deployment string) (keyring.Custody, error) {
	c := keyring.Custody{Shares: h.set}
	if !f.hsm.Enabled() {
		return c, nil
	}
	tok, err := hsm.Open(f.hsm)
	if err != nil {
		return c, err
	}
	defer tok.Close()
	if c.HSM, err = tok.Wrap(master, f.hsm.KeyLabel, hsm.AAD(deployment)); err != nil {
		return c, err
	}
	return c, nil
}

func describeCustody(c keyring.Custody) string {
	var parts []string
	if c.Shares != nil {
		parts = append(parts, "master key in shares "+c.Shares.String())
	}
	if c.HSM != nil {
		parts = append(parts, "master key wrapped by the HSM key "+c.HSM.KeyLabel)
	}
	if len(parts) == 0 {
		return "whole master key"
	}
	return strings.Join(parts, "; ")
}

// handout is a master key split and ready to be handed out: printed, or
// written to share files encrypted to the custodians' age keys.
type handout struct {
	hsmOnly bool              // no shares: the HSM alone holds the master key
	master  []byte            // a whole key to print (no share set); nil otherwise
	set     *keyring.ShareSet // nil for a whole key
	shares  [][]byte
	rs      []age.Recipient
	dir     string
	files   []string
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
		if f.hsm.Enabled() {
			return &handout{hsmOnly: true}, nil
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
	case h.hsmOnly:
		fmt.Fprintln(out, "WARNING: the master key exists only wrapped by the HSM key: losing that key (or the token) loses the keyring; -shares N -threshold K adds recovery shares")
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
	master, ids, err := readMaster(masterRef, path, f.hsm)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer clear(master)
	kr, err := keyring.Load(path, master)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	old := kr.Custody()
	if rotate && old.HSM != nil && !f.hsm.Enabled() {
		return fmt.Errorf("%s: this keyring's master key is wrapped by an HSM key; rotate it with the HSM at hand (-hsm-module ...)", name)
	}
	if !f.sharesSet {
		switch {
		case old.Shares != nil:
			f.shares, f.threshold = old.Shares.Total, old.Shares.Threshold
		case old.HSM != nil:
			f.shares, f.threshold = 1, 0 // HSM only, as before
		default:
			return fmt.Errorf("%s: -shares is required (this keyring records no share set yet)", name)
		}
	}
	if !rotate && f.shares < 2 && !(f.hsm.Enabled() && old.HSM == nil) {
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
	// The HSM wrapping: kept for a rekey (same master key), made anew for a
	// master rotation, or added with -hsm-module.
	c := keyring.Custody{Shares: h.set, HSM: old.HSM}
	if rotate || f.hsm.Enabled() && old.HSM == nil {
		if c, err = f.custody(h, newMaster, kr.Deployment()); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	kr.SetCustody(c)
	if err := h.writeFiles(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ev := audit.Event{Event: audit.EventKeyRekey, Resource: givenBy(ids), Reason: describe(old) + " -> " + describe(c)}
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
	if label, ok := strings.CutPrefix(ids[0], "hsm:"); ok {
		return "HSM key " + label
	}
	return "shares " + strings.Join(ids, ",")
}

// describe is a custody for the audit trail: "2-of-3 (set a1b2c3d4)",
// "+ HSM key <label>" when the token wraps it too.
func describe(c keyring.Custody) string {
	s := "no share set (whole master key or n-of-n shares)"
	if c.Shares != nil {
		s = c.Shares.String()
	} else if c.HSM != nil {
		s = "no shares"
	}
	if c.HSM != nil {
		s += " + HSM key " + c.HSM.KeyLabel
	}
	return s
}
