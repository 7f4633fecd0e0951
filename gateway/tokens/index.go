package tokens

import (
	"context"
	"strings"
)

// The search index. Both stores list each token, by its order key, under
// the value of each searchable field, per merchant:
//
//	b6  the first six digits of the BIN (every token)
//	l4  the last four digits
//	br  the brand, in lower case (tokens that have one)
//	b8  the eight-digit BIN (tokens whose BIN has eight digits)
//
// Each list is in order-key order (creation, then id), like the merchant's
// time index, so a date range is a key range within any of them and the
// newest matches come first without sorting. A search takes the list with
// the fewest entries in its range as its driver, reads it newest first and
// keeps the entries present in every other list the query names (an
// intersection that stops at the limit), then reads only the records it
// returns. A BIN prefix shorter than six digits is the union of the b6
// lists whose value starts with it (each merchant keeps the set of its b6
// values), up to maxBINUnion of them; beyond that it is checked on the
// records. Fingerprints and token ids have their own lookups.
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
	ixBIN6  = "b6"
	ixLast4 = "l4"
	ixBrand = "br"
	ixBIN8  = "b8"
)

// indexReady is the value of a merchant's completeness mark; a later change
// of the index's shape would use another value, and searches would fall back
// until Reindex wrote the new lists.
const indexReady = "1"

// maxBINUnion bounds the b6 lists one short BIN prefix expands to per
// merchant (a union costs a read of each list per script call); beyond it
// the candidates' records decide, which is quick for the one- and
// two-digit prefixes that reach it: they match a large share of the tokens.
const maxBINUnion = 256

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

// indexEntries lists the index lists of t, b6 first (the stores rely on it:
// the b6 list is the one whose emptiness they check). t is valid (prepare).
func indexEntries(t Token) []ixEntry {
	out := make([]ixEntry, 0, 4)
	out = append(out, ixEntry{ixBIN6, b6Of(t.BIN)}, ixEntry{ixLast4, t.Last4})
	if t.Brand != "" {
		out = append(out, ixEntry{ixBrand, strings.ToLower(t.Brand)})
	}
	if len(t.BIN) == 8 {
		out = append(out, ixEntry{ixBIN8, t.BIN})
	}
	return out
}

// b6Of is the b6 value of a BIN (stored BINs have 6 or 8 digits; a record
// read back is not trusted to).
func b6Of(bin string) string {
	if len(bin) > 6 {
		return bin[:6]
	}
	return bin
}

// entriesDiff returns the entries of old that new lacks and those of new
// that old lacks.
func entriesDiff(old, new []ixEntry) (gone, added []ixEntry) {
	for _, o := range old {
		if !hasEntry(new, o) {
			gone = append(gone, o)
		}
	}
	for _, n := range new {
		if !hasEntry(old, n) {
			added = append(added, n)
		}
	}
	return gone, added
}

func hasEntry(es []ixEntry, e ixEntry) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}

// ixGroup is one criterion the index answers: a token meets it when it is in
// any of the lists (several only for a short BIN prefix, whose values each
// store expands per merchant).
type ixGroup struct {
	field  string
	value  string // the list's value; "" with prefix set
	prefix string // a BIN prefix shorter than six digits
}

// searchPlan is how a query uses the index.
type searchPlan struct {
	groups []ixGroup
	// exact: a token in every group's lists, within the date range, meets
	// every criterion; otherwise the records are checked (q.match), which the
	// stores do anyway.
	exact bool
}

// planOf maps a normalised query without token id or fingerprint to lists.
func planOf(q Query) searchPlan {
	p := searchPlan{exact: true}
	if q.Last4 != "" {
		p.groups = append(p.groups, ixGroup{field: ixLast4, value: q.Last4})
	}
	switch n := len(q.BIN); {
	case n == 8:
		p.groups = append(p.groups, ixGroup{field: ixBIN8, value: q.BIN})
	case n == 6:
		p.groups = append(p.groups, ixGroup{field: ixBIN6, value: q.BIN})
	case n == 7:
		// Stored BINs have 6 or 8 digits: the b6 list narrows, the
		// records decide.
		p.groups = append(p.groups, ixGroup{field: ixBIN6, value: q.BIN[:6]})
		p.exact = false
	case n > 0:
		p.groups = append(p.groups, ixGroup{field: ixBIN6, prefix: q.BIN})
	}
	if q.Brand != "" {
		p.groups = append(p.groups, ixGroup{field: ixBrand, value: q.Brand})
	}
	return p
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
