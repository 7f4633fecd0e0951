package tokens

import (
	"context"
	"slices"
	"strconv"
	"strings"
)

// The search index. Both stores list each token, by its order key, under
// the value of each searchable field, per merchant:
//
//	b2, b4, b6  the first 2, 4 and 6 digits of the BIN (every token)
//	b8          the eight-digit BIN (tokens whose BIN has eight digits)
//	l4          the last four digits
//	br          the brand, in lower case (tokens that have one)
//
// Each list is in order-key order (creation, then id), like the merchant's
// time index, so a date range is a key range within any of them and the
// newest matches come first without sorting. A search takes the list with
// the fewest entries in its range as its driver, reads it newest first and
// keeps the entries present in every other list the query names (an
// intersection that stops at the limit), then reads only the records it
// returns. A BIN prefix of any length is one list (2, 4, 6 or 8 digits) or
// the union of the ten lists one digit longer (1, 3, 5 or 7 digits), so
// every criterion but the fingerprint and the token id, which have their
// own lookups, is answered by the index alone.
//
// The lists are written in the same atomic step as the token (Put),
// removed with it (Delete) and moved when a rewrap changes a listed field
// (UpdateCiphertext); a change of ciphertext or key id alone leaves them.
//
// Tokens stored before the index existed are listed by Reindex. Until a
// merchant's tokens are all listed, its searches read every token in range
// as before, and IndexStatus counts the merchant as building. A merchant's
// index is complete when its first token is written with the index (Put
// marks it) or when a Reindex pass has gone through its tokens.

// Index list names.
const (
	ixBIN2  = "b2"
	ixBIN4  = "b4"
	ixBIN6  = "b6"
	ixBIN8  = "b8"
	ixLast4 = "l4"
	ixBrand = "br"
)

// indexReady is the value of a merchant's completeness mark; a later change
// of the index's shape would use another value, and searches would fall back
// until Reindex wrote the new lists.
const indexReady = "1"

// searchTuning sets the Redis search script's bounds (tests make them small
// so that a few tokens take the paths millions do).
type searchTuning struct {
	// budget bounds the index entries one script call reads before it
	// answers, so a search holds Redis a few milliseconds at most at once;
	// the search goes on from where the call stopped.
	budget int
	// When every group is one list and the driver has more than interMin
	// entries in range, the script asks Redis (ZINTERCARD, in C) whether
	// the lists share at most interMax entries, and if so takes them whole
	// (ZINTER) rather than reading the driver entry by entry in Lua.
	interMin, interMax int
}

var defaultSearchTuning = searchTuning{budget: 4000, interMin: 0, interMax: 1000}

// ixEntry is one index list a token is in.
type ixEntry struct{ field, value string }

// indexEntries lists the index lists of t (a record read back is not
// trusted to have a BIN of 6 or 8 digits: a shorter one lists what it has).
func indexEntries(t Token) []ixEntry {
	out := make([]ixEntry, 0, 6)
	for _, n := range []int{2, 4, 6, 8} {
		if len(t.BIN) >= n {
			out = append(out, ixEntry{binField(n), t.BIN[:n]})
		}
	}
	out = append(out, ixEntry{ixLast4, t.Last4})
	if t.Brand != "" {
		out = append(out, ixEntry{ixBrand, strings.ToLower(t.Brand)})
	}
	return out
}

func binField(digits int) string { return "b" + strconv.Itoa(digits) }

// entriesDiff returns the entries of old that new lacks and those of new
// that old lacks.
func entriesDiff(old, new []ixEntry) (gone, added []ixEntry) {
	for _, o := range old {
		if !slices.Contains(new, o) {
			gone = append(gone, o)
		}
	}
	for _, n := range new {
		if !slices.Contains(old, n) {
			added = append(added, n)
		}
	}
	return gone, added
}

// combos names the pairs of a BIN prefix (2, 4 or 6 digits) and a brand a
// token has, kept per merchant in a set that only grows. A search by BIN
// and brand, the one pair of criteria whose lists can both be long, asks
// it first: two long lists that never meet (a brand with another brand's
// BIN) answer at once instead of after a scan of the shorter one. A pair
// left by a deleted or rewrapped token only sends a search the long way.
func combos(t Token) []string {
	if t.Brand == "" {
		return nil
	}
	var out []string
	for _, n := range []int{2, 4, 6} {
		if len(t.BIN) >= n {
			out = append(out, t.BIN[:n]+"|"+strings.ToLower(t.Brand))
		}
	}
	return out
}

// queryCombos are the pairs one of which a token meeting q's BIN and brand
// has (nil when q lacks either): the BIN group's values cut to 6 digits.
func queryCombos(q Query, groups []ixGroup) []string {
	if q.BIN == "" || q.Brand == "" {
		return nil
	}
	var out []string
	for _, g := range groups {
		if f := g[0].field; f != ixBIN2 && f != ixBIN4 && f != ixBIN6 && f != ixBIN8 {
			continue
		}
		for _, e := range g {
			c := e.value[:min(len(e.value), 6)] + "|" + q.Brand
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// ixGroup is one criterion of a search: a token meets it when it is in one
// of the lists (ten only for a BIN of an odd number of digits).
type ixGroup []ixEntry

// planOf maps a normalised query without token id or fingerprint to
// lists, most selective first (last 4, BIN, brand).
func planOf(q Query) []ixGroup {
	var gs []ixGroup
	if q.Last4 != "" {
		gs = append(gs, ixGroup{{ixLast4, q.Last4}})
	}
	if n := len(q.BIN); n > 0 {
		if n%2 == 0 {
			gs = append(gs, ixGroup{{binField(n), q.BIN}})
		} else {
			g := make(ixGroup, 10)
			for d := range 10 {
				g[d] = ixEntry{binField(n + 1), q.BIN + strconv.Itoa(d)}
			}
			gs = append(gs, g)
		}
	}
	if q.Brand != "" {
		gs = append(gs, ixGroup{{ixBrand, q.Brand}})
	}
	return gs
}

// IndexStatus says how far the search index covers the stored tokens.
type IndexStatus struct {
	// Merchants is the number of merchants with tokens; Building those whose
	// tokens are not all in the index yet: their searches read every token
	// in range until `blindgate tokens reindex` has gone through them.
	Merchants, Building int
}

// Ready reports whether every merchant's searches use the index.
func (s IndexStatus) Ready() bool { return s.Building == 0 }

// indexer is what Reindex needs of a store beyond Store.
type indexer interface {
	Store
	// indexBatch lists each token that is still stored with the masked
	// fields it has in ts (others changed or went meanwhile: their writers
	// kept the index) and returns how many it listed.
	indexBatch(ctx context.Context, ts []Token) (int, error)
	// markIndexed records that the merchant's tokens are all listed.
	markIndexed(ctx context.Context, merchantID string) error
	// reindexState and saveReindexState keep a pass's progress.
	reindexState(ctx context.Context) ([]byte, error)
	saveReindexState(ctx context.Context, b []byte) error
}
