package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/internal/secret"
	"github.com/blindgate/blindgate/keyservice/app"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/hsm"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/sigauth"
	"github.com/blindgate/blindgate/keyservice/wire"
)

type appConfig = app.Config

// composeAudienceEnv is the variable docker-compose.yml hands to the gateway
// as BLINDGATE_GW_KEYSERVICE_AUDIENCE.
const composeAudienceEnv = "BLINDGATE_KEYSERVICE_AUDIENCE"

var newApp = app.New

// keysCmd manages the sealed keyring file. Every subcommand but init needs
// the master key (as a reference, or shares on standard input).
func keysCmd(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("keys: want init, rotate, list, retire, upgrade, rekey or rotate-master")
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	path := fs.String("keyring", envOr("BLINDGATE_KS_KEYRING", "keyring.sealed"), "sealed keyring file")
	masterRef := fs.String("master-key", envOr("BLINDGATE_KS_MASTER_KEY", ""), "master key reference (env:NAME or file:PATH); omit to type shares on standard input")
	shares := fs.Int("shares", 1, "init, rekey, rotate-master: split the master key into this many shares (rekey, rotate-master: default the current count)")
	threshold := fs.Int("threshold", 0, "init, rekey, rotate-master: shares needed to unseal, 2 to -shares (default: all of them)")
	recipients := fs.String("recipients", "", "init, rekey, rotate-master: comma-separated age public keys (age1...), one per share in order: write each share encrypted to its custodian instead of printing it")
	shareDir := fs.String("share-dir", "", "where -recipients writes the share files (default: the keyring's directory)")
	hsmCfg := hsmFlags(fs)
	alg := fs.String("alg", keyring.DefaultAlg, "KEK algorithm: "+strings.Join(keyring.Algs(), ", "))
	kid := fs.String("kid", "", "retire: the key version to retire")
	tokenCounts := fs.String("token-counts", "", "retire: the gateway's token count (blindgate tokens count-by-kid -out); it must show no token under -kid")
	force := fs.String("force", "", "retire: retire without a token count, or despite it, for this reason (audited), e.g. a compromised key")
	auditPath := fs.String("audit-log", envOr("BLINDGATE_KS_AUDIT_LOG", "audit.log"), "audit log to record the change in")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	split := splitFlags{shares: *shares, threshold: *threshold, recipients: *recipients, dir: *shareDir, hsm: *hsmCfg}
	fs.Visit(func(f *flag.Flag) { split.sharesSet = split.sharesSet || f.Name == "shares" || f.Name == "threshold" })
	if split.dir == "" {
		split.dir = filepath.Dir(*path)
	}
	switch args[0] {
	case "rekey", "rotate-master":
		return rekeyCmd(context.Background(), args[0] == "rotate-master", *path, *masterRef, *auditPath, split, out)
	case "init":
		if _, err := os.Stat(*path); err == nil {
			return fmt.Errorf("keys init: %s exists; refusing to overwrite a keyring", *path)
		}
		kr, err := keyring.New(*alg)
		if err != nil {
			return err
		}
		master, err := keyring.GenerateMasterKey()
		if err != nil {
			return err
		}
		defer clear(master)
		h, err := split.prepare(master)
		if err != nil {
			return err
		}
		defer h.wipe()
		c, err := split.custody(h, master, kr.Deployment())
		if err != nil {
			return err
		}
		kr.SetCustody(c)
		reason := *alg + "; " + describeCustody(c)
		if err := h.writeFiles(); err != nil {
			return err
		}
		ev := audit.Event{Event: audit.EventKeyInit, Kid: kr.Newest().Kid, Reason: reason}
		if err := audit.AdminChange(context.Background(), *auditPath, ev, out, func() error { return keyring.Save(*path, kr, master) }); err != nil {
			h.removeFiles()
			return err
		}
		fmt.Fprintf(out, "keyring %s created with %s (kid %s)\n", *path, *alg, kr.Newest().Kid)
		fmt.Fprintf(out, "deployment id (the audience of signed requests; give it to the gateway as -keyservice-audience):\n  %s\n", kr.Deployment())
		// The exact line, so the README's Docker Compose step is a paste, not
		// a transcription: the gateway refuses to start without it.
		fmt.Fprintf(out, "for docker compose, keep it in .env beside docker-compose.yml (compose reads it on every run):\n  echo %s=%s >> .env\n", composeAudienceEnv, kr.Deployment())
		printAuditKey(out, kr)
		h.print(out)
		return nil
	case "rotate", "list", "retire", "upgrade":
		master, _, err := readMaster(*masterRef, *path, *hsmCfg)
		if err != nil {
			return err
		}
		defer clear(master)
		kr, err := keyring.Load(*path, master)
		if err != nil {
			return err
		}
		// Keyrings made before audit keys existed get one whenever they are
		// saved with the master key at hand (rotate, retire, upgrade).
		if args[0] != "list" {
			added, err := kr.EnsureAuditKey()
			if err != nil {
				return err
			}
			if added {
				fmt.Fprintln(out, "this keyring had no audit signing key; one is added with this change")
				printAuditKey(out, kr)
			}
		}
		switch args[0] {
		case "upgrade":
			ev := audit.Event{Event: audit.EventKeyUpgrade, Kid: audit.Ed25519KeyID(kr.AuditPublicKey()), Reason: "audit signing key"}
			if err := audit.AdminChange(context.Background(), *auditPath, ev, out, func() error { return keyring.Save(*path, kr, master) }); err != nil {
				return err
			}
			fmt.Fprintf(out, "keyring %s saved with an audit signing key (format version %d or later)\n", *path, keyring.FileVersion)
		case "rotate":
			prev := kr.Newest().Kid
			v, err := kr.Rotate(*alg)
			if err != nil {
				return err
			}
			ev := audit.Event{Event: audit.EventKeyRotate, Kid: v.Kid, Resource: prev, Reason: v.Alg}
			if err := audit.AdminChange(context.Background(), *auditPath, ev, out, func() error { return keyring.Save(*path, kr, master) }); err != nil {
				return err
			}
			fmt.Fprintf(out, "rotated: new active key %s (%s); older versions still decrypt until retired\n", v.Kid, v.Alg)
		case "retire":
			if *kid == "" {
				return errors.New("keys retire: -kid is required")
			}
			why, err := retireAllowed(kr, *kid, *tokenCounts, *force, time.Now())
			if err != nil {
				return err
			}
			if err := kr.Retire(*kid); err != nil {
				return err
			}
			ev := audit.Event{Event: audit.EventKeyRetire, Kid: *kid, Reason: why}
			if err := audit.AdminChange(context.Background(), *auditPath, ev, out, func() error { return keyring.Save(*path, kr, master) }); err != nil {
				return err
			}
			fmt.Fprintf(out, "retired %s: ciphertexts under it no longer decrypt (rewrap them first)\n", *kid)
		}
		if kr.Deployment() != "" {
			fmt.Fprintf(out, "deployment id: %s\n", kr.Deployment())
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED")
		for _, v := range kr.Versions() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Kid, v.Alg, v.State, v.Created.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	default:
		return fmt.Errorf("keys: unknown subcommand %q", args[0])
	}
}

// readMaster gets the master key from a reference, from the HSM (with
// -hsm-module), or as shares typed on standard input, one per line (split knowledge: no custodian needs
// to see another's share): threshold shares of the keyring's share set, or
// all n of an n-of-n split. It returns the ids of the shares given (for the
// audit trail; none for a whole key or n-of-n shares). Whether the key is
// right is for keyring.Load to say.
func readMaster(ref, path string, hc hsm.Config) ([]byte, []string, error) {
	if hc.Enabled() && ref == "" {
		if c, err := keyring.ReadCustody(path); err == nil && c.HSM != nil {
			return masterFromHSM(path, hc)
		}
	}
	if ref != "" {
		raw, err := secret.Resolve(ref)
		if err != nil {
			return nil, nil, err
		}
		defer clear(raw)
		m, err := keyring.ParseMasterKey(string(raw))
		return m, nil, err
	}
	b, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
	if err != nil {
		return nil, nil, err
	}
	defer clear(b)
	var shares [][]byte
	defer func() {
		for _, s := range shares {
			clear(s)
		}
	}()
	for _, line := range strings.Fields(string(b)) {
		s, err := keyring.ParseShare(line)
		if err != nil {
			return nil, nil, err
		}
		shares = append(shares, s)
	}
	if len(shares) == 0 {
		return nil, nil, errors.New("no master key: pass -master-key or type the shares on standard input")
	}
	c, err := keyring.ReadCustody(path)
	if err != nil {
		return nil, nil, err
	}
	if c.Shares != nil {
		return c.Shares.Combine(shares)
	}
	m, err := keyring.CombineShares(shares...)
	return m, nil, err
}

func clientsCmd(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("clients: want add, list or revoke")
	}
	fs := flag.NewFlagSet("clients "+args[0], flag.ContinueOnError)
	path := fs.String("clients", envOr("BLINDGATE_KS_CLIENTS", "clients.json"), "allow-list file")
	id := fs.String("id", "", "add: client id (the iss of its requests)")
	ops := fs.String("ops", "inspect", "add: comma-separated operations: inspect, reveal, rewrap, audit")
	pubPath := fs.String("public-key", "", "add: the client's public JWK file (from `blindgate keygen`); omit to generate a key pair")
	privOut := fs.String("private-key-out", "", "add: where to write a generated private key (JWK, mode 0600)")
	kid := fs.String("kid", "", "revoke: the key id to revoke")
	auditPath := fs.String("audit-log", envOr("BLINDGATE_KS_AUDIT_LOG", "audit.log"), "audit log to record the change in")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	al, err := sigauth.LoadAllowList(*path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if al == nil {
		al = &sigauth.AllowList{}
	}
	switch args[0] {
	case "add":
		if *id == "" {
			return errors.New("clients add: -id is required")
		}
		var pub crypto.PublicKey
		var keyID string
		if *pubPath != "" {
			b, err := os.ReadFile(*pubPath)
			if err != nil {
				return err
			}
			keyID, pub, err = jose.ParsePublicJWK(b)
			if err != nil {
				return err
			}
		} else {
			if *privOut == "" {
				return errors.New("clients add: give -public-key, or -private-key-out to generate a key pair")
			}
			keyID, pub, err = client.GenerateKeyFile(*privOut, *id)
			if err != nil {
				return err
			}
		}
		if err := al.AddClient(*id, splitOps(*ops), keyID, pub); err != nil {
			return err
		}
		ev := audit.Event{Event: audit.EventClientAdd, Client: *id, Kid: keyID, Reason: *ops}
		if err := audit.AdminChange(context.Background(), *auditPath, ev, out, func() error { return al.Save(*path) }); err != nil {
			return err
		}
		fmt.Fprintf(out, "client %s enrolled with key %s for %s\n", *id, keyID, *ops)
		return nil
	case "revoke":
		if *kid == "" {
			return errors.New("clients revoke: -kid is required")
		}
		if err := al.Revoke(*kid); err != nil {
			return err
		}
		ev := audit.Event{Event: audit.EventClientRevoke, Kid: *kid}
		if err := audit.AdminChange(context.Background(), *auditPath, ev, out, func() error { return al.Save(*path) }); err != nil {
			return err
		}
		fmt.Fprintf(out, "key %s revoked\n", *kid)
		return nil
	case "list":
		return json.NewEncoder(out).Encode(al.Summary())
	default:
		return fmt.Errorf("clients: unknown subcommand %q", args[0])
	}
}

func splitOps(s string) []string {
	var ops []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			ops = append(ops, o)
		}
	}
	return ops
}

func auditCmd(args []string, out io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return auditVerify(args[1:], out)
		case "recover":
			return auditRecover(args[1:], out)
		}
	}
	return errors.New("audit: want verify or recover")
}

// auditVerify checks the whole chain, every segment, and the checkpoints.
func auditVerify(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	path := fs.String("audit-log", envOr("BLINDGATE_KS_AUDIT_LOG", "audit.log"), "audit log file (the open segment; its closed segments <audit-log>.seg-* beside it are read too)")
	head := fs.String("head", "", "expected head hash recorded elsewhere (detects a truncated tail)")
	krPath := fs.String("keyring", envOr("BLINDGATE_KS_KEYRING", "keyring.sealed"), "sealed keyring whose header holds the audit public key (no master key needed)")
	pin := fs.String("audit-public-key", "", "the audit public key (base64, as printed by keys init/upgrade) to trust instead of, and to compare with, the keyring's")
	export := fs.String("audit-checkpoints", envOr("BLINDGATE_KS_AUDIT_CHECKPOINTS", ""), `exported checkpoints file (default <audit-log>.checkpoints; "none" to skip)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	pub, err := auditPublicKey(*krPath, *pin)
	if err != nil {
		return err
	}
	if *export == "" {
		*export = *path + ".checkpoints"
	}
	var x io.Reader
	exportMissing := false
	if *export != "none" {
		xf, err := os.Open(*export)
		switch {
		case errors.Is(err, os.ErrNotExist):
			// Fine only if nothing was ever checkpointed: checked below.
			exportMissing = true
		case err != nil:
			return fmt.Errorf("audit checkpoints: %w", err)
		default:
			defer xf.Close()
			x = xf
		}
	}
	var v audit.CheckpointVerifier
	if pub != nil {
		v = audit.Ed25519Verifier{Key: pub}
	}
	rep, cr, err := audit.VerifySegmentsCheckpoints(*path, x, v)
	if err != nil {
		if errors.Is(err, audit.ErrCheckpoint) {
			return fmt.Errorf("audit checkpoints FAILED: %w", err)
		}
		return fmt.Errorf("audit chain BROKEN: %w", err)
	}
	if exportMissing && cr.InChain > 0 {
		return fmt.Errorf("audit checkpoints FAILED: the chain holds %d checkpoints but their exported copy %s is missing (pass -audit-checkpoints none to check the chain's own only)", cr.InChain, *export)
	}
	if *head != "" && rep.Head != *head {
		return fmt.Errorf("audit chain ends at %s, expected head %s: lines were removed from the end", rep.Head, *head)
	}
	fmt.Fprintf(out, "audit chain OK: %d lines in %d segment files, last seq %d, head %s\n", rep.Lines, rep.Files, rep.LastSeq, rep.Head)
	if rep.From > 0 {
		fmt.Fprintf(out, "WARNING: the chain is verified from seq %d: the segments before it are not here (removed after their retention?); check them in the archive\n", rep.From+1)
	}
	if cr.Pruned > 0 {
		fmt.Fprintf(out, "%d checkpoints sign heads in segments no longer here: their signatures verify, their heads were not checked\n", cr.Pruned)
	}
	switch {
	case pub == nil:
		fmt.Fprintln(out, "WARNING: no audit public key (keyring without one: run `keyservice keys upgrade`); nothing but the unkeyed hash chain was checked")
	case cr.Newest.Seq == 0:
		fmt.Fprintln(out, "WARNING: no signed checkpoint yet; nothing but the unkeyed hash chain was checked")
	default:
		fmt.Fprintf(out, "checkpoints OK: %d in the chain, %d exported; newest verified seq %d (%s, %s)\n",
			cr.InChain, cr.Exported, cr.Newest.Seq, cr.Newest.Hash, cr.Newest.Time.Format(time.RFC3339))
		if cr.Uncovered > 0 {
			fmt.Fprintf(out, "%d later events are covered by the hash chain only, not yet by a signature\n", cr.Uncovered)
		}
	}
	return nil
}

// auditRecover does by hand what a start does: a torn last line after a
// prefix that verifies is set aside and the repair recorded and alarmed.
// It needs the log's lock, so the service must be stopped (a running one
// recovers on its own).
func auditRecover(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("audit recover", flag.ContinueOnError)
	path := fs.String("audit-log", envOr("BLINDGATE_KS_AUDIT_LOG", "audit.log"), "audit log file (the open segment)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if files, err := audit.Segments(*path); err != nil {
		return err
	} else if len(files) == 0 {
		return fmt.Errorf("audit recover: no audit log at %s", *path)
	}
	l, err := audit.Open(*path, audit.Options{SpoolInterval: -1})
	switch {
	case errors.Is(err, audit.ErrLocked):
		return fmt.Errorf("audit recover: %s is held by a running process, which recovers the log on its own (see its /readyz and its log); stop it to recover by hand", *path)
	case errors.Is(err, audit.ErrChain), errors.Is(err, audit.ErrSegment):
		return fmt.Errorf("audit recover: the log is broken in a way that is not a torn last line, so nothing was changed; investigate (keyservice audit verify) before anything else: %w", err)
	case err != nil:
		return fmt.Errorf("audit recover: %w", err)
	}
	rep, repaired := l.Repaired()
	seq, head := l.Head()
	if err := l.Close(); err != nil {
		return fmt.Errorf("audit recover: %w", err)
	}
	if !repaired {
		fmt.Fprintf(out, "nothing to recover: the open segment %s verifies (last seq %d, head %s)\n", *path, seq, head)
		return nil
	}
	fmt.Fprintf(out, "torn last line set aside: line %d of %s (%d bytes; %s)\n", rep.Line, *path, rep.Bytes, rep.Reason)
	fmt.Fprintf(out, "  moved to %s (keep it with the log for the investigation)\n", rep.Quarantine)
	fmt.Fprintf(out, "the chain continues from seq %d (head %s)\n", rep.Kept.LastSeq, rep.Kept.Head)
	fmt.Fprintf(out, "recorded as %s at seq %d, with an alarm; the log now ends at seq %d, head %s\n", audit.EventAuditRecovered, rep.Event.Seq, seq, head)
	return nil
}

// auditPublicKey returns the key checkpoints are checked against: the
// keyring header's, or a pinned one (which must then agree with the header
// when the keyring is readable). nil means neither exists.
func auditPublicKey(krPath, pin string) (ed25519.PublicKey, error) {
	fromKeyring, err := keyring.ReadAuditPublicKey(krPath)
	if err != nil && !errors.Is(err, keyring.ErrNoAuditKey) && !(pin != "" && errors.Is(err, os.ErrNotExist)) {
		return nil, fmt.Errorf("audit public key: %w", err)
	}
	if pin == "" {
		return fromKeyring, nil
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(pin))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("audit public key: -audit-public-key is not a base64 Ed25519 public key")
	}
	if fromKeyring != nil && !fromKeyring.Equal(ed25519.PublicKey(b)) {
		return nil, fmt.Errorf("audit public key: the keyring's (%s) is not the pinned one (%s): the keyring header was replaced",
			audit.Ed25519KeyID(fromKeyring), audit.Ed25519KeyID(b))
	}
	return b, nil
}

func printAuditKey(out io.Writer, kr *keyring.Keyring) {
	pub := kr.AuditPublicKey()
	// One line, so that nothing parsing the indented key lines takes it for a share.
	fmt.Fprintf(out, "audit public key %s: %s (record it off this host; `audit verify -audit-public-key` checks against it)\n",
		audit.Ed25519KeyID(pub), base64.StdEncoding.EncodeToString(pub))
}

// unsealCmd sends one share to a running key service. The share comes from a
// reference or standard input, never from a flag value. It reads the seal
// status first: a service already unsealed is not sent the share, and a share
// joins the round in progress with that round's nonce (or starts one).
func unsealCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("unseal", flag.ContinueOnError)
	addr := fs.String("url", envOr("BLINDGATE_KS_URL", "https://127.0.0.1:8443"), "key service base URL")
	ref := fs.String("share", "", "share reference (env:NAME or file:PATH); omit to read it from standard input")
	pin := fs.String("nonce", "", "join only this unseal round (the nonce the first custodian was shown); refuse otherwise")
	reset := fs.Bool("reset", false, "end the round in progress and discard its shares (needs its nonce: -nonce)")
	insecure := fs.Bool("insecure-skip-verify", false, "do not verify the TLS certificate (development only)")
	asJSON := fs.Bool("json", false, "also print the seal status as a JSON line, before the sentence (for scripts)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base := strings.TrimRight(*addr, "/")
	hc := client.HTTPClient(*insecure)
	var st wire.SealStatus
	if err := sysCall(ctx, hc, http.MethodGet, base+"/v1/sys/seal-status", nil, &st); err != nil {
		return err
	}
	status := func() {
		if *asJSON {
			_ = json.NewEncoder(out).Encode(st)
		}
	}
	if !st.Sealed && !st.MasterRotated {
		status()
		fmt.Fprintln(out, "the key service is already unsealed; nothing sent")
		return nil
	}
	if *reset {
		if *pin == "" {
			return errors.New("unseal -reset: -nonce is required (the round's nonce, from the first custodian or seal-status)")
		}
		body, _ := json.Marshal(wire.UnsealRequest{Reset: true, Nonce: *pin})
		if err := sysCall(ctx, hc, http.MethodPost, base+"/v1/sys/unseal", body, &st); err != nil {
			return err
		}
		fmt.Fprintln(out, "unseal round reset; the next share starts a new one")
		return nil
	}
	if *pin != "" && *pin != st.Nonce {
		return fmt.Errorf("unseal: the round in progress is %q, not %q; ask who started it", st.Nonce, *pin)
	}
	var raw []byte
	var err error
	if *ref != "" {
		raw, err = secret.Resolve(*ref)
	} else {
		raw, err = io.ReadAll(io.LimitReader(os.Stdin, 4096))
	}
	if err != nil {
		return err
	}
	body, _ := json.Marshal(wire.UnsealRequest{Key: strings.TrimSpace(string(raw)), Nonce: st.Nonce})
	clear(raw)
	err = sysCall(ctx, hc, http.MethodPost, base+"/v1/sys/unseal", body, &st)
	clear(body)
	if err != nil {
		return err
	}
	status()
	fmt.Fprintln(out, unsealSentence(st))
	return nil
}

// unsealSentence says where an unseal stands after a share, for the
// custodian at the terminal: done, or how many shares are still needed and
// the round the next custodian joins.
func unsealSentence(st wire.SealStatus) string {
	if !st.Sealed && !st.MasterRotated {
		return "unsealed: the key service has its keys and serves"
	}
	more := st.Threshold - st.Progress
	shares := "shares"
	if st.Threshold == 1 {
		shares = "share"
	}
	of := ""
	if st.MasterRotated {
		of = " of the new master key"
	}
	return fmt.Sprintf("share accepted: %d of %d %s%s; %d more needed (the other custodians run the same command; -nonce %s joins only this round)",
		st.Progress, st.Threshold, shares, of, more, st.Nonce)
}

// sysCall makes one unauthenticated /v1/sys call and decodes its answer.
func sysCall(ctx context.Context, hc *http.Client, method, url string, body []byte, into *wire.SealStatus) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s refused (%d): %s", method, req.URL.Path, resp.StatusCode, rb)
	}
	*into = wire.SealStatus{} // members left out of the answer (omitempty) are not the previous answer's
	if err := json.Unmarshal(rb, into); err != nil {
		return fmt.Errorf("%s %s: unreadable answer: %w", method, req.URL.Path, err)
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
