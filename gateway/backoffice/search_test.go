package backoffice_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/operators"
	"github.com/blindgate/blindgate/keyservice/client"
	"github.com/blindgate/blindgate/keyservice/wire"
)

func TestSearchScope(t *testing.T) {
	tests := []struct {
		name         string
		op           operators.Operator
		form         backoffice.SearchForm
		want         error
		wantMerchant string // the query's merchant
		wantIDs      []string
	}{
		{"200/merchant-operator-searches-own-merchant", anna, backoffice.SearchForm{}, nil, merchA, []string{tokAID, tokA2ID}},
		{"200/duplicates-within-the-tokens-merchant", rita, backoffice.SearchForm{Dupes: tokAID}, nil, merchA, []string{tokAID, tokA2ID}},
		{"200/duplicates-for-a-merchant-operator", anna, backoffice.SearchForm{Dupes: tokA2ID}, nil, merchA, []string{tokAID, tokA2ID}},
		{"400/duplicates-of-another-merchants-token", anna, backoffice.SearchForm{Dupes: tokBID}, backoffice.ErrInvalid, "", nil},
		{"400/last4-not-digits", rita, backoffice.SearchForm{Last4: "42a2"}, backoffice.ErrInvalid, "", nil},
		{"400/to-before-from", rita, backoffice.SearchForm{From: "2026-02-02", To: "2026-02-01"}, backoffice.ErrInvalid, "", nil},
		{"400/unknown-brand", rita, backoffice.SearchForm{Brand: "nope"}, backoffice.ErrInvalid, "", nil},
		{"200/by-reference-case-aside", rita, backoffice.SearchForm{Reference: " ord-1 "}, nil, "", []string{tokAID}},
		{"200/by-reference-within-the-operators-merchant", bruno, backoffice.SearchForm{Reference: "ORD-1"}, nil, merchB, nil},
		{"400/reference-too-long", rita, backoffice.SearchForm{Reference: strings.Repeat("r", 129)}, backoffice.ErrInvalid, "", nil},
		{"400/reference-control-character", rita, backoffice.SearchForm{Reference: "ORD\x001"}, backoffice.ErrInvalid, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			found, err := f.svc.Search(context.Background(), actor(tc.op, 0), tc.form.Normalize())
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if slices.Contains(f.calls.list(), "tokens.search") || len(f.audit.events) != 0 {
					t.Fatalf("a refused search ran or was recorded: %q", f.calls.list())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.toks.last.MerchantID != tc.wantMerchant {
				t.Errorf("query merchant %q, want %q", f.toks.last.MerchantID, tc.wantMerchant)
			}
			var ids []string
			for _, tk := range found {
				ids = append(ids, tk.ID)
			}
			slices.Sort(ids)
			want := slices.Sorted(slices.Values(tc.wantIDs))
			if !slices.Equal(ids, want) {
				t.Errorf("found %q, want %q", ids, want)
			}
			// Recorded before the results are read: no audit, no access.
			calls := f.calls.list()
			if i, j := slices.Index(calls, "audit:token.search"), slices.Index(calls, "tokens.search"); i < 0 || i > j {
				t.Errorf("search not audited first: %q", calls)
			}
		})
	}
}

func TestSearchAuditNamesFieldsNotDigits(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.Search(context.Background(), actor(rita, 0), backoffice.SearchForm{Last4: "4242", BIN: "424242", Reference: "ORD-77"}.Normalize()); err != nil {
		t.Fatal(err)
	}
	if len(f.audit.events) != 1 || f.audit.events[0].Reason != "reference last4 bin" {
		t.Fatalf("search record: %+v", f.audit.events)
	}
}

func TestSearchAuditFailedNoResults(t *testing.T) {
	f := newFixture(t)
	f.audit.failOn = "token.search"
	if _, err := f.svc.Search(context.Background(), actor(rita, 0), backoffice.SearchForm{}); !errors.Is(err, backoffice.ErrAuditFailed) {
		t.Fatalf("err = %v", err)
	}
	if slices.Contains(f.calls.list(), "tokens.search") {
		t.Fatal("searched without an audit record")
	}
}

func TestAuditView(t *testing.T) {
	tests := []struct {
		name       string
		op         operators.Operator
		filter     backoffice.AuditFilter
		want       error
		wantActors []string // the key service query's actor set
		wantActor  string   // the key service query's actor
	}{
		{"403/revealer", rita, backoffice.AuditFilter{}, backoffice.ErrForbidden, nil, ""},
		{"403/viewer", vera, backoffice.AuditFilter{}, backoffice.ErrForbidden, nil, ""},
		{"400/bad-outcome", adam, backoffice.AuditFilter{Outcome: "maybe"}, backoffice.ErrInvalid, nil, ""},
		{"400/username-with-a-space", adam, backoffice.AuditFilter{Actor: "ri ta"}, backoffice.ErrInvalid, nil, ""},
		{"400/merchant-admin-asks-for-another-merchants-operator", mia, backoffice.AuditFilter{Actor: rita.ID}, backoffice.ErrInvalid, nil, ""},
		{"400/merchant-admin-asks-for-another-merchants-username", mia, backoffice.AuditFilter{Actor: "rita"}, backoffice.ErrInvalid, nil, ""},
		{"200/platform-admin-unscoped", adam, backoffice.AuditFilter{Before: 42}, nil, nil, ""},
		{"200/platform-admin-by-username", adam, backoffice.AuditFilter{Actor: " Rita "}, nil, nil, rita.ID},
		{"200/platform-admin-by-operator-id", adam, backoffice.AuditFilter{Actor: anna.ID}, nil, nil, anna.ID},
		{"200/platform-admin-by-merchant-id", adam, backoffice.AuditFilter{Actor: merchA}, nil, nil, merchA},
		{"200/merchant-admin-scoped-by-the-key-service", mia, backoffice.AuditFilter{}, nil, []string{mia.ID, anna.ID}, ""},
		{"200/merchant-admin-own-operator", mia, backoffice.AuditFilter{Actor: anna.ID}, nil, []string{mia.ID, anna.ID}, anna.ID},
		{"200/merchant-admin-own-operator-by-username", mia, backoffice.AuditFilter{Actor: "ANNA"}, nil, []string{mia.ID, anna.ID}, anna.ID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.ks.events = []wire.AuditEvent{{Seq: 10, Actor: merchA, Event: "forward"}, {Seq: 9, Actor: anna.ID, Event: "reveal"}, {Seq: 8, Actor: rita.ID, Event: "reveal"}}
			page, err := f.svc.AuditView(context.Background(), actor(tc.op, 0), tc.filter)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if len(f.ks.queries) != 0 {
					t.Fatal("the key service was asked for a refused view")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f.ks.queries) != 1 {
				t.Fatalf("%d queries", len(f.ks.queries))
			}
			q := f.ks.queries[0]
			if !slices.Equal(slices.Sorted(slices.Values(q.Actors)), slices.Sorted(slices.Values(tc.wantActors))) {
				t.Errorf("actors %q, want %q", q.Actors, tc.wantActors)
			}
			if q.Limit != backoffice.AuditPageSize || q.BeforeSeq != tc.filter.Before || q.Actor != tc.wantActor || page.Actor != tc.wantActor {
				t.Errorf("query %+v, page actor %q; want actor %q", q, page.Actor, tc.wantActor)
			}
			if want := "actor=" + tc.wantActor + " outcome="; tc.wantActor != "" && f.audit.events[0].Reason != want {
				t.Errorf("audit.view records %q, want %q", f.audit.events[0].Reason, want)
			}
			if page.Next != 7 {
				t.Errorf("next cursor %d", page.Next)
			}
			for _, e := range page.Events {
				if tc.wantActors != nil && !slices.Contains(tc.wantActors, e.Actor) {
					t.Errorf("out-of-scope event shown: %+v", e)
				}
			}
			if page.Names[anna.ID] != "anna" {
				t.Errorf("names %v", page.Names)
			}
			// The merchant of a forward is named, for a viewer who may see it.
			if !page.Scoped && page.Names[merchA] != "Alpha Shop" {
				t.Errorf("merchant not named: %v", page.Names)
			}
			if calls := f.calls.list(); slices.Index(calls, "audit:audit.view") > slices.Index(calls, "keyservice.audit") {
				t.Errorf("view not audited before the trail was read: %q", calls)
			}
		})
	}
}

func TestAuditViewKeyServiceErrorsByCode(t *testing.T) {
	f := newFixture(t)
	f.ks.queryErr = &client.Error{Status: 400, Code: "invalid_field"}
	_, err := f.svc.AuditView(context.Background(), actor(adam, 0), backoffice.AuditFilter{})
	if !errors.Is(err, backoffice.ErrKeyServiceInvalid) {
		t.Fatalf("err = %v", err)
	}
}

// TestMerchantNames: pages name the merchants an operator may see, and only
// those; an unknown merchant (or none configured) stays an id.
func TestMerchantNames(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if got := f.svc.MerchantNames(ctx, actor(rita, 0), merchA, merchB, merchA, "m_unknown", ""); !maps.Equal(got, map[string]string{merchA: "Alpha Shop", merchB: "Beta Books"}) {
		t.Errorf("platform operator: %v", got)
	}
	if got := f.svc.MerchantNames(ctx, actor(anna, 0), merchA, merchB); !maps.Equal(got, map[string]string{merchA: "Alpha Shop"}) {
		t.Errorf("merchant operator: %v", got)
	}
	none := backoffice.New(backoffice.Deps{Operators: f.ops, Sessions: f.sess, Tokens: f.toks})
	if got := none.MerchantNames(ctx, actor(rita, 0), merchA); len(got) != 0 {
		t.Errorf("without a merchant store: %v", got)
	}
}
