package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Genesis is the prev value of the first event of a log: 64 hex zeros.
var genesis = strings.Repeat("0", 64)

// Genesis returns the prev hash of the first event of every log (64 "0").
func Genesis() string { return genesis }

// Event is one audit record: one JSON line of the log. The fields answer PCI
// DSS 10.2.2: who (Client, Actor), what (Event), when (Time), where from
// (Origin), outcome (Outcome) and on what (Resource, Kid). Seq, Prev and Hash
// are set by the log; whatever the caller puts there is ignored.
//
// The field order below is part of the on-disk format (it fixes the canonical
// JSON that is hashed): never reorder or rename fields; only append new ones
// before Prev, which breaks verification of old logs, so do it with a format
// version.
type Event struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Event    string    `json:"event"`
	Client   string    `json:"client,omitempty"`
	Actor    string    `json:"actor,omitempty"`
	Origin   string    `json:"origin,omitempty"`
	Outcome  string    `json:"outcome"`
	Resource string    `json:"resource,omitempty"`
	Kid      string    `json:"kid,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Code     string    `json:"code,omitempty"`
	// Credential is the base64url id of the passkey that approved (or
	// failed to approve) a reveal, or that a passkey event is about. It was
	// added after the first logs: omitted when empty, so the canonical form
	// of every older line is unchanged and old logs still verify.
	Credential string `json:"credential,omitempty"`
	Prev       string `json:"prev"`
	Hash       string `json:"hash"`
}

// MaxFieldLen caps each caller-supplied string field, so a line always fits
// MaxLineSize even when every byte needs a JSON escape.
const MaxFieldLen = 1024

// MaxLineSize is the longest line Verify, Read and Open accept.
const MaxLineSize = 128 << 10

// ErrInvalidEvent is returned by Append for an event the log will not record
// (no name, unknown outcome, oversized field, unencodable time). It is a
// caller bug, not a log failure: the log stays usable.
var ErrInvalidEvent = errors.New("audit: invalid event")

func (e *Event) validate() error {
	if e.Event == "" {
		return fmt.Errorf("%w: empty event name", ErrInvalidEvent)
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeFailure, OutcomeDenied:
	default:
		return fmt.Errorf("%w: outcome must be success, failure or denied", ErrInvalidEvent)
	}
	for _, f := range []struct{ name, v string }{
		{"event", e.Event}, {"client", e.Client}, {"actor", e.Actor}, {"origin", e.Origin},
		{"resource", e.Resource}, {"kid", e.Kid}, {"reason", e.Reason}, {"code", e.Code},
		{"credential", e.Credential},
	} {
		if len(f.v) > MaxFieldLen {
			// The value itself is not echoed: it may be anything the caller had.
			return fmt.Errorf("%w: field %s longer than %d bytes", ErrInvalidEvent, f.name, MaxFieldLen)
		}
	}
	if y := e.Time.Year(); y < 1 || y > 9999 {
		// encoding/json refuses years outside RFC 3339's range.
		return fmt.Errorf("%w: time out of range", ErrInvalidEvent)
	}
	return nil
}

// hashSuffix is how the canonical encoding of an event ends while its Hash
// is empty: Hash is the last field, so the final line is the canonical
// encoding with the hex hash spliced in here.
var hashSuffix = []byte(`,"hash":""}`)

// seal computes e's hash from prev and returns e with Prev and Hash set, its
// line (canonical JSON plus "\n") and the raw hash (the next prevRaw).
// prevRaw must be the 32 raw bytes of prev.
func seal(e Event, prev string, prevRaw []byte) (Event, []byte, []byte, error) {
	e.Prev = prev
	e.Hash = ""
	canon, err := json.Marshal(e)
	if err != nil {
		return Event{}, nil, nil, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	if !bytes.HasSuffix(canon, hashSuffix) {
		// Unreachable unless the struct's field order changes.
		return Event{}, nil, nil, errors.New("audit: canonical encoding does not end with the hash field")
	}
	raw := chainHash(prevRaw, canon)
	e.Hash = hex.EncodeToString(raw)
	line := make([]byte, 0, len(canon)+len(e.Hash)+1)
	line = append(line, canon[:len(canon)-2]...) // up to and including `"hash":"`
	line = append(line, e.Hash...)
	line = append(line, '"', '}', '\n')
	return e, line, raw, nil
}

// chainHash is SHA-256(prev raw bytes || canonical JSON with hash ""); the
// line stores it in lowercase hex.
func chainHash(prevRaw, canon []byte) []byte {
	h := sha256.New()
	h.Write(prevRaw)
	h.Write(canon)
	return h.Sum(nil)
}

func decodeHash(s string) ([]byte, error) {
	if len(s) != 64 {
		return nil, errors.New("audit: hash is not 64 hex digits")
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("audit: hash is not 64 hex digits")
	}
	return b, nil
}
