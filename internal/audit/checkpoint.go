package audit

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Signed checkpoints. The chain hash is unkeyed: whoever can write the log
// file can delete lines and recompute every hash after them, and Verify
// alone is satisfied. A checkpoint is the chain's head (seq and hash) signed
// with a key the log's host cannot use without unsealing the keyring (the
// keyring's Ed25519 audit key). The service appends each checkpoint to the
// chain itself and exports it to a second, append-only place; a rebuilt chain
// no longer holds the signed hash at the signed seq, and VerifyCheckpoints
// says so. Events after the newest checkpoint are protected by the chain
// only, so checkpoints come often (every N records and every T seconds).

// ErrCheckpoint wraps every checkpoint verification failure.
var ErrCheckpoint = errors.New("audit: checkpoint verification failed")

// CheckpointSigner signs checkpoint messages with the audit key. It fails
// while the key is unavailable (a sealed key service).
type CheckpointSigner interface {
	SignCheckpoint(msg []byte) (keyID string, sig []byte, err error)
}

// CheckpointVerifier checks a checkpoint signature.
type CheckpointVerifier interface {
	VerifyCheckpoint(keyID string, msg, sig []byte) error
}

// Ed25519KeyID names an audit public key: "audit-" and 16 hex digits of its
// SHA-256.
func Ed25519KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "audit-" + hex.EncodeToString(sum[:8])
}

// Ed25519Verifier checks checkpoints against one Ed25519 public key.
type Ed25519Verifier struct{ Key ed25519.PublicKey }

// VerifyCheckpoint implements CheckpointVerifier.
func (v Ed25519Verifier) VerifyCheckpoint(keyID string, msg, sig []byte) error {
	if len(v.Key) != ed25519.PublicKeySize {
		return errors.New("no audit public key")
	}
	if keyID != Ed25519KeyID(v.Key) {
		return fmt.Errorf("signed by key %q, expected %q", keyID, Ed25519KeyID(v.Key))
	}
	if !ed25519.Verify(v.Key, msg, sig) {
		return errors.New("signature does not verify")
	}
	return nil
}

// Checkpoint is a signed head: the event at Seq has hash Hash, attested at
// Time by the audit key Kid. It is also the line format of the exported copy.
type Checkpoint struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
	Kid  string    `json:"kid"`
	Sig  string    `json:"sig"` // base64url, unpadded
}

// Message is what is signed. The key id is not part of it: the signature
// itself binds the key.
func (c Checkpoint) Message() []byte {
	return fmt.Appendf(nil, "blindgate-audit-checkpoint/v1\nseq=%d\nhash=%s\ntime=%s\n", c.Seq, c.Hash, c.Time.UTC().Format(time.RFC3339Nano))
}

func (c Checkpoint) verify(v CheckpointVerifier) error {
	if v == nil {
		return errors.New("no audit public key to check it with")
	}
	if _, err := decodeHash(c.Hash); err != nil || c.Seq == 0 {
		return errors.New("malformed head")
	}
	sig, err := base64.RawURLEncoding.DecodeString(c.Sig)
	if err != nil {
		return errors.New("signature is not base64url")
	}
	return v.VerifyCheckpoint(c.Kid, c.Message(), sig)
}

// event is the checkpoint as a chain event (see EventAuditCheckpoint).
func (c Checkpoint) event() Event {
	return Event{
		Time: c.Time, Event: EventAuditCheckpoint, Outcome: OutcomeSuccess,
		Resource: strconv.FormatUint(c.Seq, 10) + ":" + c.Hash, Kid: c.Kid, Reason: c.Sig,
	}
}

func checkpointOf(e *Event) (Checkpoint, error) {
	seqStr, hash, ok := strings.Cut(e.Resource, ":")
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if !ok || err != nil {
		return Checkpoint{}, errors.New("resource is not <seq>:<hash>")
	}
	return Checkpoint{Seq: seq, Hash: hash, Time: e.Time, Kid: e.Kid, Sig: e.Reason}, nil
}

// CheckpointOptions tune a Checkpointer.
type CheckpointOptions struct {
	// Every is how many records may follow a checkpoint before the next;
	// default 100.
	Every int
	// Interval is the longest time between checkpoints while records
	// arrive; default 60s.
	Interval time.Duration
	// Export is the append-only file that receives a copy of every
	// checkpoint (JSON lines), written and fsynced before the checkpoint
	// enters the chain. Empty: no export (tests only).
	Export string
	Now    func() time.Time
	Logger *slog.Logger
}

// Checkpointer signs the head of a Log from time to time.
type Checkpointer struct {
	l      *Log
	signer CheckpointSigner
	o      CheckpointOptions
	export *os.File

	mu         sync.Mutex
	lastSigned uint64 // seq of the newest signed head
	covered    uint64 // the head seq at which nothing new needs signing
	warned     bool

	quit chan struct{}
	done chan struct{}
}

// StartCheckpoints opens the export file and starts signing l's head every
// o.Every records and every o.Interval. Close makes a last checkpoint.
func StartCheckpoints(l *Log, s CheckpointSigner, o CheckpointOptions) (*Checkpointer, error) {
	if o.Every <= 0 {
		o.Every = 100
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	c := &Checkpointer{l: l, signer: s, o: o, quit: make(chan struct{}), done: make(chan struct{})}
	if o.Export != "" {
		f, err := os.OpenFile(o.Export, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit: checkpoint export: %w", err)
		}
		c.export = f
	}
	go c.run()
	return c, nil
}

func (c *Checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(c.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			c.try(0)
		case <-c.l.Committed():
			c.try(uint64(c.o.Every))
		}
	}
}

// try checkpoints when at least min records (0: any) follow the last one.
func (c *Checkpointer) try(min uint64) {
	if err := c.checkpoint(context.Background(), min); err != nil {
		c.o.Logger.Error("audit checkpoint failed; will retry", "err", err)
	}
}

// Checkpoint signs the current head now, unless nothing was recorded since
// the last checkpoint. A signer that cannot sign (sealed) makes it a no-op.
func (c *Checkpointer) Checkpoint(ctx context.Context) error { return c.checkpoint(ctx, 0) }

func (c *Checkpointer) checkpoint(ctx context.Context, min uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq, hash := c.l.Head()
	if seq == 0 || seq == c.covered || seq-c.lastSigned < max(min, 1) {
		return nil
	}
	cp := Checkpoint{Seq: seq, Hash: hash, Time: c.o.Now().UTC()}
	kid, sig, err := c.signer.SignCheckpoint(cp.Message())
	if err != nil {
		if !c.warned {
			// Sealed, or a keyring without an audit key: nothing to sign with.
			c.o.Logger.Warn("audit checkpoints paused: no audit signing key available", "err", err)
			c.warned = true
		}
		return nil
	}
	c.warned = false
	cp.Kid, cp.Sig = kid, base64.RawURLEncoding.EncodeToString(sig)
	if c.export != nil {
		line, err := json.Marshal(cp)
		if err != nil {
			return err
		}
		// Exported first: a checkpoint in the chain is always in the copy.
		if _, err := c.export.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("audit: checkpoint export: %w", err)
		}
		if err := c.export.Sync(); err != nil {
			return fmt.Errorf("audit: checkpoint export: %w", err)
		}
	}
	e, err := c.l.Append(ctx, cp.event())
	if err != nil {
		return err
	}
	c.lastSigned, c.covered = cp.Seq, cp.Seq
	if e.Seq == cp.Seq+1 {
		c.covered = e.Seq // only our own event follows the signed head
	}
	return nil
}

// Close makes a last checkpoint (clean shutdown), stops, and closes the
// export file. Call it before closing the Log.
func (c *Checkpointer) Close(ctx context.Context) error {
	close(c.quit)
	<-c.done
	err := c.Checkpoint(ctx)
	if c.export != nil {
		err = errors.Join(err, c.export.Close())
	}
	return err
}

// CheckpointReport says how far signed checkpoints vouch for a log.
type CheckpointReport struct {
	InChain  int        // checkpoint events verified
	Exported int        // exported checkpoints verified (0 when no export was given)
	Newest   Checkpoint // the newest verified checkpoint (Seq 0: none)
	// Uncovered is how many events follow Newest: those are protected by
	// the hash chain only.
	Uncovered uint64
	// Pruned counts checkpoints signing heads in segments no longer kept
	// (VerifySegmentsCheckpoints): signature checked, head not.
	Pruned int
}

// VerifyCheckpoints is Verify plus the checkpoints: every checkpoint in the
// chain and in the exported copy (export may be nil) must carry a valid
// signature under v, its head must be in the chain at its seq with its hash,
// and every in-chain checkpoint must also be in the export. A chain rebuilt
// after a checkpoint (lines deleted, hashes recomputed) fails, as does a cut
// tail that an exported checkpoint had covered. log is read twice.
func VerifyCheckpoints(log io.ReadSeeker, export io.Reader, v CheckpointVerifier) (Report, CheckpointReport, error) {
	passes := 0
	return verifyCheckpoints(func(visit func(*Event) bool) (Report, error) {
		if passes++; passes > 1 {
			if _, err := log.Seek(0, io.SeekStart); err != nil {
				return Report{}, fmt.Errorf("audit: rewind log: %w", err)
			}
		}
		return walk(log, visit)
	}, export, v)
}

// VerifySegmentsCheckpoints is VerifyCheckpoints over every segment of the
// log at path, read as one chain (see VerifySegments). When the oldest
// segments were removed after their retention, checkpoints that sign a head
// before the first segment kept cannot be checked against the chain: they
// are counted in CheckpointReport.Pruned instead (their signatures are still
// checked).
func VerifySegmentsCheckpoints(path string, export io.Reader, v CheckpointVerifier) (Report, CheckpointReport, error) {
	return verifyCheckpoints(func(visit func(*Event) bool) (Report, error) {
		return walkSegments(path, visit)
	}, export, v)
}

// verifyCheckpoints does VerifyCheckpoints over the chain that walk reads
// (twice).
func verifyCheckpoints(walk func(visit func(*Event) bool) (Report, error), export io.Reader, v CheckpointVerifier) (Report, CheckpointReport, error) {
	var cr CheckpointReport
	exported := map[uint64]Checkpoint{}
	if export != nil {
		sc := bufio.NewScanner(export)
		sc.Buffer(make([]byte, 4096), MaxLineSize)
		for n := 1; sc.Scan(); n++ {
			var cp Checkpoint
			dec := json.NewDecoder(strings.NewReader(sc.Text()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&cp); err != nil {
				return Report{}, cr, fmt.Errorf("%w: exported checkpoint line %d is not a checkpoint", ErrCheckpoint, n)
			}
			if err := cp.verify(v); err != nil {
				return Report{}, cr, fmt.Errorf("%w: exported checkpoint line %d (seq %d): %w", ErrCheckpoint, n, cp.Seq, err)
			}
			exported[cp.Seq] = cp
		}
		if err := sc.Err(); err != nil {
			return Report{}, cr, fmt.Errorf("%w: read exported checkpoints: %w", ErrCheckpoint, err)
		}
	}
	var inChain []Checkpoint
	var cpErr error
	rep, err := walk(func(e *Event) bool {
		if e.Event != EventAuditCheckpoint {
			return true
		}
		cp, err := checkpointOf(e)
		if err == nil && cp.Seq >= e.Seq {
			err = errors.New("signs a head that is not before it")
		}
		if err == nil {
			err = cp.verify(v)
		}
		if err != nil {
			cpErr = fmt.Errorf("%w: checkpoint at seq %d: %w", ErrCheckpoint, e.Seq, err)
			return false
		}
		inChain = append(inChain, cp)
		return true
	})
	if err != nil {
		return rep, cr, err
	}
	if cpErr != nil {
		return rep, cr, cpErr
	}
	want := map[uint64]string{}
	for _, cp := range inChain {
		want[cp.Seq] = ""
	}
	for seq := range exported {
		want[seq] = ""
	}
	rep2, err := walk(func(e *Event) bool {
		if _, ok := want[e.Seq]; ok {
			want[e.Seq] = e.Hash
		}
		return true
	})
	if err != nil {
		return rep, cr, err
	}
	if rep2 != rep {
		return rep, cr, fmt.Errorf("%w: the log changed while it was verified", ErrCheckpoint)
	}
	pruned := map[uint64]bool{}
	check := func(where string, cp Checkpoint) error {
		if cp.Seq <= rep.From {
			// Signs a head in a segment no longer kept: nothing to hold it against.
			pruned[cp.Seq] = true
			return nil
		}
		if cp.Seq > rep.LastSeq {
			return fmt.Errorf("%w: %s checkpoint signs seq %d but the log ends at seq %d (tail cut)", ErrCheckpoint, where, cp.Seq, rep.LastSeq)
		}
		if want[cp.Seq] != cp.Hash {
			return fmt.Errorf("%w: %s checkpoint signs seq %d with hash %.12s..., the log has %.12s... (rewritten up to there)", ErrCheckpoint, where, cp.Seq, cp.Hash, want[cp.Seq])
		}
		if cp.Seq > cr.Newest.Seq {
			cr.Newest = cp
		}
		return nil
	}
	for _, cp := range inChain {
		if err := check("in-chain", cp); err != nil {
			return rep, cr, err
		}
		if export != nil {
			if x, ok := exported[cp.Seq]; !ok || x.Hash != cp.Hash || x.Sig != cp.Sig {
				return rep, cr, fmt.Errorf("%w: in-chain checkpoint for seq %d is not in the exported copy", ErrCheckpoint, cp.Seq)
			}
		}
		cr.InChain++
	}
	for _, cp := range exported {
		if err := check("exported", cp); err != nil {
			return rep, cr, err
		}
		cr.Exported++
	}
	cr.Pruned = len(pruned)
	cr.Uncovered = rep.LastSeq - max(cr.Newest.Seq, rep.From)
	return rep, cr, nil
}
