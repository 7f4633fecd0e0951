package backoffice_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/blindgate/blindgate/gateway/backoffice"
	"github.com/blindgate/blindgate/gateway/tokens"
)

// fakeIndex reports merchants listed in building as not indexed yet.
type fakeIndex struct {
	building map[string]bool
	err      error
	asked    []string
}

func (f *fakeIndex) IndexStatus(_ context.Context, m string) (tokens.IndexStatus, error) {
	f.asked = append(f.asked, m)
	if f.err != nil {
		return tokens.IndexStatus{}, f.err
	}
	st := tokens.IndexStatus{}
	for b, on := range f.building {
		if on && (m == "" || m == b) {
			st.Merchants++
			st.Building++
		}
	}
	return st, nil
}

// TestSearchIndexBuilding: an operator hears that the index is being built
// only for merchants they may see; no index configured, or its status
// unreadable, says nothing.
func TestSearchIndexBuilding(t *testing.T) {
	ctx := context.Background()
	ix := &fakeIndex{building: map[string]bool{merchA: true}}
	svc := backoffice.New(backoffice.Deps{Index: ix, Now: func() time.Time { return testNow }})
	for _, tc := range []struct {
		name string
		a    backoffice.Actor
		want bool
	}{
		{"platform-operator-sees-any", actor(rita, 0), true},
		{"merchant-a-operator", actor(anna, 0), true},
		{"merchant-b-operator-not-told-of-a", actor(bruno, 0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := svc.SearchIndexBuilding(ctx, tc.a); got != tc.want {
				t.Fatalf("building = %v, want %v", got, tc.want)
			}
			if last := ix.asked[len(ix.asked)-1]; last != tc.a.Op.MerchantID {
				t.Fatalf("asked about %q, want the operator's scope %q", last, tc.a.Op.MerchantID)
			}
		})
	}
	if backoffice.New(backoffice.Deps{}).SearchIndexBuilding(ctx, actor(rita, 0)) {
		t.Fatal("no index configured, yet building")
	}
	ix.err = errors.New("redis down")
	if svc.SearchIndexBuilding(ctx, actor(rita, 0)) {
		t.Fatal("an unreadable status reads as building")
	}
}
