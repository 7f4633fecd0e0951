package backoffice

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/blindgate/blindgate/gateway/orderref"
	"github.com/blindgate/blindgate/gateway/tokens"
	"github.com/blindgate/blindgate/internal/audit"
	"github.com/blindgate/blindgate/keyservice/wire"
)

// SearchLimit is how many tokens one search shows.
const SearchLimit = 100

// maxFingerprint bounds a pasted fingerprint.
const maxFingerprint = 256

// SearchForm is a token search as the operator typed it (trimmed by the
// caller or not; Search normalises). Reference is the merchant's reference
// (its order number), matched whole, case aside.
type SearchForm struct {
	Token, Last4, BIN, Brand, Fingerprint, Dupes, From, To string
	Reference                                              string
}

// Normalize trims the fields and lower-cases the ids and the brand.
func (f SearchForm) Normalize() SearchForm {
	tl := func(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
	return SearchForm{
		Token: tl(f.Token), Last4: strings.TrimSpace(f.Last4), BIN: strings.TrimSpace(f.BIN), Brand: tl(f.Brand),
		Fingerprint: strings.TrimSpace(f.Fingerprint), Dupes: tl(f.Dupes),
		From: strings.TrimSpace(f.From), To: strings.TrimSpace(f.To),
		Reference: orderref.Normalize(f.Reference),
	}
}

// Describe names the criteria of a search for the audit trail: which fields
// were used, never the digits searched for.
func (f SearchForm) Describe() string {
	var parts []string
	add := func(name, v string, show bool) {
		if v == "" {
			return
		}
		if show {
			name += "=" + v
		}
		parts = append(parts, name)
	}
	add("token", f.Token, true)
	add("reference", f.Reference, false)
	add("last4", f.Last4, false)
	add("bin", f.BIN, false)
	add("brand", f.Brand, true)
	add("fingerprint", f.Fingerprint, false)
	add("duplicates_of", f.Dupes, true)
	add("from", f.From, true)
	add("to", f.To, true)
	if len(parts) == 0 {
		return "list (no filter)"
	}
	return strings.Join(parts, " ")
}

// Search finds the tokens matching f that the operator may see. f must be
// normalised (Normalize). The search is audited before its results are
// returned: no audit, no access.
func (s *Service) Search(ctx context.Context, a Actor, f SearchForm) ([]tokens.Token, error) {
	q, err := s.query(ctx, a, f)
	if err != nil {
		return nil, err
	}
	if err := s.record(ctx, a, audit.Event{Event: audit.EventTokenSearch, Actor: a.Op.ID, Outcome: audit.OutcomeSuccess, Reason: f.Describe()}); err != nil {
		return nil, err
	}
	found, err := s.d.Tokens.Search(ctx, q)
	if err != nil {
		if errors.Is(err, tokens.ErrInvalid) {
			return nil, &InvalidError{Field: "search", Msg: "The search is not valid: check the fields.", Err: err}
		}
		return nil, unavailable(err)
	}
	out := found[:0]
	for _, t := range found {
		if a.Op.MaySee(t.MerchantID) { // belt and braces over Query.MerchantID
			out = append(out, t)
		}
	}
	return out, nil
}

// SearchIndexBuilding reports whether the search index of a merchant the
// operator may see is still being built (`blindgate tokens reindex`): the
// searches of such a merchant read its tokens whole, complete but slow, and
// the page says so. An error reading the status is logged and reads as
// no.
func (s *Service) SearchIndexBuilding(ctx context.Context, a Actor) bool {
	if s.d.Index == nil {
		return false
	}
	st, err := s.d.Index.IndexStatus(ctx, a.Op.MerchantID)
	if err != nil {
		s.d.Log.Warn("backoffice: search index status", "err", err)
		return false
	}
	return !st.Ready()
}

// query turns the form into a Query scoped to the operator.
func (s *Service) query(ctx context.Context, a Actor, f SearchForm) (tokens.Query, error) {
	// An operator of one merchant searches that merchant only; the store
	// enforces it through the query, and Search re-checks the results.
	q := tokens.Query{MerchantID: a.Op.MerchantID, TokenID: f.Token, Last4: f.Last4, BIN: f.BIN,
		Brand: f.Brand, Fingerprint: f.Fingerprint, Reference: f.Reference, Limit: SearchLimit}
	switch {
	case f.Token != "" && !tokens.ValidID(f.Token):
		return q, invalid("token", "A token id looks like tok_ followed by 26 letters and digits.")
	case f.Last4 != "" && !(len(f.Last4) == 4 && allDigits(f.Last4)):
		return q, invalid("last4", "Last 4 must be exactly four digits.")
	case f.BIN != "" && !(len(f.BIN) <= 8 && allDigits(f.BIN)):
		return q, invalid("bin", "BIN must be up to eight digits.")
	case len(f.Fingerprint) > maxFingerprint:
		return q, invalid("fingerprint", "That fingerprint is too long.")
	case f.Brand != "" && !knownBrand(f.Brand):
		return q, invalid("brand", "Unknown brand.")
	case orderref.CheckReference(f.Reference) != nil:
		return q, invalid("reference", fmt.Sprintf("A reference is at most %d characters, without control characters.", orderref.MaxReference))
	}
	var err error
	if f.From != "" {
		if q.From, err = time.Parse(time.DateOnly, f.From); err != nil {
			return q, invalid("from", "From must be a date (YYYY-MM-DD).")
		}
	}
	if f.To != "" {
		if q.To, err = time.Parse(time.DateOnly, f.To); err != nil {
			return q, invalid("to", "To must be a date (YYYY-MM-DD).")
		}
		q.To = q.To.AddDate(0, 0, 1) // the "to" day is included
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, invalid("from", "From must not be after To.")
	}
	// "Paste a token to find its duplicates": the same card under other
	// tokens shares the keyed fingerprint.
	if f.Dupes != "" {
		t, err := s.Token(ctx, a, f.Dupes)
		switch {
		case errors.Is(err, ErrNotFound):
			return q, invalid("dupes", "No token "+f.Dupes+" is visible to you.")
		case err != nil:
			return q, err
		case t.Fingerprint == "":
			return q, invalid("dupes", "That token has no fingerprint to compare.")
		case q.Fingerprint != "" && q.Fingerprint != t.Fingerprint:
			return q, invalid("dupes", "Fingerprint and duplicates-of disagree; use one of them.")
		}
		q.Fingerprint = t.Fingerprint
		// Fingerprints are per merchant: duplicates exist only within the
		// token's own merchant (one the operator may see, checked above), so
		// a platform operator searches that one.
		q.MerchantID = t.MerchantID
	}
	return q, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func knownBrand(b string) bool {
	for _, x := range wire.Brands() {
		if x.ID == b {
			return true
		}
	}
	return false
}
