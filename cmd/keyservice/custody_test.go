package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/internal/jose"
	"github.com/blindgate/blindgate/keyservice/app"
	"github.com/blindgate/blindgate/keyservice/keyring"
	"github.com/blindgate/blindgate/keyservice/seal"
	"github.com/blindgate/blindgate/keyservice/sharefile"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// served is a key service running in the test, sealed at start.
type served struct {
	app  *app.App
	url  string
	stop func()
}

func serveSealed(t *testing.T, dir string) *served {
	t.Helper()
	cfg := devConfig(t, dir)
	cfg.DevUnseal = false // -unseal-shares stays 1: the keyring's share set wins
	cfg.UnsealIPPerMinute = 30
	a, err := newApp(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	return serveApp(t, a)
}

// serveApp serves a until the test ends or stop is called.
func serveApp(t *testing.T, a *app.App) *served {
	t.Helper()
	ln := mustListen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	s := &served{app: a, url: "http://" + ln.Addr().String()}
	stopped := false
	s.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(s.stop)
	return s
}

func (s *served) status(t *testing.T) wire.SealStatus {
	t.Helper()
	resp, err := http.Get(s.url + "/v1/sys/seal-status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st wire.SealStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// reload makes the running service look at the keyring file now (the
// watcher would, within its interval).
func (s *served) reload(t *testing.T, path string) error {
	t.Helper()
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	_, err := s.app.Holder().ReloadIfChanged()
	return err
}

// open decrypts a stored card with the running service's keyring.
func (s *served) open(t *testing.T, jwe []byte) string {
	t.Helper()
	kr, err := s.app.Holder().Keyring()
	if err != nil {
		t.Fatal(err)
	}
	h, err := jose.ParseHeader(jwe)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := kr.Lookup(h.Kid)
	if err != nil {
		t.Fatal(err)
	}
	_, pt, err := jose.Decrypt(jwe, priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pt)
}

func unseal(t *testing.T, url string, shares ...string) string {
	t.Helper()
	var out string
	for _, sh := range shares {
		var err error
		if out, err = runCmd(t, sh+"\n", "unseal", "-url", url); err != nil {
			t.Fatalf("unseal: %v\n%s", err, out)
		}
	}
	return out
}

// TestThresholdCustody is the custody lifecycle through the admin CLI and
// a running service: a 2-of-3 init, an unseal with a wrong share in the
// middle, a card stored, a rekey to 3-of-5 handed out encrypted to age
// keys, a restart, a master rotation while serving; the card stays
// readable throughout and the audit trail names share ids, never shares.
func TestThresholdCustody(t *testing.T) {
	dir := t.TempDir()
	krPath, al := filepath.Join(dir, "keyring.sealed"), filepath.Join(dir, "audit.log")
	out, err := runCmd(t, "", "keys", "init", "-keyring", krPath, "-shares", "3", "-threshold", "2", "-audit-log", al)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	var shares []string
	for _, m := range keyLine.FindAllStringSubmatch(out, -1) {
		shares = append(shares, m[1])
	}
	if len(shares) != 3 || !strings.Contains(out, "any 2 of which unseal") {
		t.Fatalf("init printed %d shares:\n%s", len(shares), out)
	}
	if out, err := runCmd(t, shares[1]+"\n", "keys", "list", "-keyring", krPath); err == nil {
		t.Fatalf("one share of a 2-of-3 set opened the keyring:\n%s", out)
	}
	if out, err := runCmd(t, shares[2]+"\n"+shares[0]+"\n", "keys", "list", "-keyring", krPath); err != nil {
		t.Fatalf("2 of 3 shares: %v\n%s", err, out)
	}

	ks := serveSealed(t, dir)
	st := ks.status(t)
	if !st.Sealed || st.Threshold != 2 || st.Total != 3 || st.Progress != 0 || st.Scheme != keyring.SchemeShamir || st.ShareSet == "" || st.Nonce != "" {
		t.Fatalf("seal status at start: %+v", st)
	}
	set1 := st.ShareSet
	out = unseal(t, ks.url, shares[1])
	if st = ks.status(t); !st.Sealed || st.Progress != 1 || st.Nonce == "" || !strings.Contains(out, "1 of 2") {
		t.Fatalf("after one share: %+v\n%s", st, out)
	}
	wrong, _ := keyring.ParseShare(shares[0])
	wrong[3] ^= 1 // a typo that still decodes
	if out, err := runCmd(t, keyring.EncodeMasterKey(wrong)+"\n", "unseal", "-url", ks.url); err == nil || !strings.Contains(out+err.Error(), "unseal_failed") {
		t.Fatalf("a wrong share: %v\n%s", err, out)
	}
	if st = ks.status(t); st.Progress != 1 {
		t.Fatalf("a wrong share spoiled the round: %+v", st)
	}
	if out = unseal(t, ks.url, shares[0]); !strings.Contains(out, "unsealed") || ks.status(t).Sealed {
		t.Fatalf("second share:\n%s", out)
	}

	kr, _ := ks.app.Holder().Keyring()
	pub := kr.PublicKeys()[0]
	const card = `{"pan":"4242424242424242","exp_month":12,"exp_year":2031}`
	stored, err := jose.Encrypt([]byte(card), pub.Key, pub.Kid, map[string]string{jose.HeaderSessionID: "cs_custody"})
	if err != nil {
		t.Fatal(err)
	}

	// Rekey while serving, from custodians 1 and 3, to 3-of-5 encrypted to
	// five age keys.
	var ids []age.Identity
	var recipients []string
	for range 5 {
		id, _ := age.GenerateX25519Identity()
		ids = append(ids, id)
		recipients = append(recipients, id.Recipient().String())
	}
	shareDir := filepath.Join(dir, "handout")
	_ = os.Mkdir(shareDir, 0o700)
	out, err = runCmd(t, shares[0]+"\n"+shares[2]+"\n", "keys", "rekey", "-keyring", krPath, "-shares", "5", "-threshold", "3",
		"-recipients", strings.Join(recipients, ","), "-share-dir", shareDir, "-audit-log", al)
	if err != nil {
		t.Fatalf("rekey: %v\n%s", err, out)
	}
	if m := keyLine.FindAllString(out, -1); len(m) != 0 {
		t.Fatalf("rekey with recipients printed shares:\n%s", out)
	}
	if err := ks.reload(t, krPath); err != nil {
		t.Fatalf("reload after rekey: %v", err)
	}
	st = ks.status(t)
	if st.Sealed || st.Threshold != 3 || st.Total != 5 || st.ShareSet == set1 {
		t.Fatalf("status after rekey: %+v", st)
	}
	set2 := st.ShareSet
	if got := ks.open(t, stored); got != card {
		t.Fatalf("card after rekey: %s", got)
	}
	var newShares []string
	for i := range 5 {
		data, err := os.ReadFile(filepath.Join(shareDir, "share-"+set2+"-"+string(rune('1'+i))+".age"))
		if err != nil {
			t.Fatal(err)
		}
		sh, err := sharefile.Decrypt(data, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		newShares = append(newShares, keyring.EncodeMasterKey(sh))
	}

	// Restart: the old shares no longer count; any 3 of the new ones do.
	ks.stop()
	ks = serveSealed(t, dir)
	if st = ks.status(t); !st.Sealed || st.Threshold != 3 || st.ShareSet != set2 {
		t.Fatalf("after restart: %+v", st)
	}
	if out, err := runCmd(t, shares[0]+"\n", "unseal", "-url", ks.url); err == nil {
		t.Fatalf("a share of the replaced set was taken:\n%s", out)
	}
	out = unseal(t, ks.url, newShares[4], newShares[1])
	if !ks.status(t).Sealed {
		t.Fatalf("2 of a 3-of-5 set unsealed:\n%s", out)
	}
	if out = unseal(t, ks.url, newShares[2]); ks.status(t).Sealed {
		t.Fatalf("3 of 5 did not unseal:\n%s", out)
	}
	if got := ks.open(t, stored); got != card {
		t.Fatalf("card after restart: %s", got)
	}

	// A master rotation while serving, back to 2-of-3 shares printed.
	out, err = runCmd(t, strings.Join(newShares[:3], "\n")+"\n", "keys", "rotate-master", "-keyring", krPath, "-shares", "3", "-threshold", "2", "-audit-log", al)
	if err != nil {
		t.Fatalf("rotate-master: %v\n%s", err, out)
	}
	var rotated []string
	for _, m := range keyLine.FindAllStringSubmatch(out, -1) {
		rotated = append(rotated, m[1])
	}
	if len(rotated) != 3 {
		t.Fatalf("rotate-master printed %d shares:\n%s", len(rotated), out)
	}
	if err := ks.reload(t, krPath); !errors.Is(err, seal.ErrMasterRotated) {
		t.Fatalf("reload after rotate-master: %v", err)
	}
	if st = ks.status(t); st.Sealed || !st.MasterRotated {
		t.Fatalf("status after rotate-master: %+v", st)
	}
	if got := ks.open(t, stored); got != card {
		t.Fatalf("card while the master key is rotated: %s", got)
	}
	out = unseal(t, ks.url, rotated[2], rotated[0])
	if st = ks.status(t); st.Sealed || st.MasterRotated || st.Threshold != 2 || !strings.Contains(out, "unsealed") {
		t.Fatalf("after the new shares: %+v\n%s", st, out)
	}
	if got := ks.open(t, stored); got != card {
		t.Fatalf("card after rotate-master: %s", got)
	}
	if _, err := runCmd(t, strings.Join(newShares[:3], "\n")+"\n", "keys", "list", "-keyring", krPath); err == nil {
		t.Fatal("the shares from before the master rotation still open the keyring")
	}
	ks.stop()
	// Records spooled while the service held the log join the chain when
	// the log is next opened.
	l, err := audit.Open(al, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.FoldSpool(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = l.Close()

	// The trail: who proved the master key, by share id; never a share.
	b, _ := os.ReadFile(al)
	for _, sh := range append(append(shares, newShares...), rotated...) {
		if strings.Contains(string(b), sh[:24]) {
			t.Fatal("the audit log holds a share")
		}
	}
	evs, _, err := audit.FileTrail(al).Query(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]audit.Event{}
	for _, e := range evs {
		if e.Event == audit.EventKeyRekey || e.Event == audit.EventKeyRotateMaster {
			found[e.Event] = e
		}
	}
	rk, rm := found[audit.EventKeyRekey], found[audit.EventKeyRotateMaster]
	if rk.Resource != "shares "+set1+"-1,"+set1+"-3" || !regexp.MustCompile(`^2-of-3 \(set `+set1+`\) -> 3-of-5 \(set `+set2+`\)$`).MatchString(rk.Reason) {
		t.Errorf("key.rekey: %+v", rk)
	}
	if rm.Resource != "shares "+set2+"-1,"+set2+"-2,"+set2+"-3" || !strings.HasPrefix(rm.Reason, "3-of-5 (set "+set2+") -> 2-of-3") {
		t.Errorf("key.rotate_master: %+v", rm)
	}
}

// TestLegacyXORKeyringStillUnseals: a keyring made before threshold unseal
// (n-of-n XOR shares, nothing in its header) unseals as before, and a rekey
// moves it to a share set without touching its keys.
func TestLegacyXORKeyringStillUnseals(t *testing.T) {
	dir := t.TempDir()
	krPath, al := filepath.Join(dir, "keyring.sealed"), filepath.Join(dir, "audit.log")
	kr, err := keyring.New("")
	if err != nil {
		t.Fatal(err)
	}
	master, _ := keyring.GenerateMasterKey()
	if err := keyring.Save(krPath, kr, master); err != nil {
		t.Fatal(err)
	}
	parts, _ := keyring.SplitKey(master, 2)
	a, b := keyring.EncodeMasterKey(parts[0]), keyring.EncodeMasterKey(parts[1])

	cfg := devConfig(t, dir)
	cfg.DevUnseal, cfg.Shares = false, 2
	ks, err := newApp(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	if p := ks.Holder().Progress(); p.Need != 2 || p.Scheme != seal.SchemeXOR || p.Total != 0 {
		t.Fatalf("n-of-n status: %+v", p)
	}
	p, err := ks.Holder().Submit("", parts[0])
	if err == nil {
		p, err = ks.Holder().Submit(p.Nonce, parts[1])
	}
	if err != nil || p.Sealed {
		t.Fatalf("n-of-n unseal: %+v %v", p, err)
	}
	kid := kr.Newest().Kid

	if _, err := runCmd(t, a+"\n"+b+"\n", "keys", "rekey", "-keyring", krPath, "-audit-log", al); err == nil {
		t.Fatal("rekey of a keyring without a share set needs -shares")
	}
	out, err := runCmd(t, a+"\n"+b+"\n", "keys", "rekey", "-keyring", krPath, "-shares", "3", "-threshold", "2", "-audit-log", al)
	if err != nil {
		t.Fatalf("rekey: %v\n%s", err, out)
	}
	shares := keyLine.FindAllStringSubmatch(out, -1)
	if len(shares) != 3 {
		t.Fatalf("rekey printed:\n%s", out)
	}
	out, err = runCmd(t, shares[1][1]+"\n"+shares[2][1]+"\n", "keys", "list", "-keyring", krPath)
	if err != nil || !strings.Contains(out, kid) {
		t.Fatalf("list with the new shares: %v\n%s", err, out)
	}
}
