package kek

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/blindgate/blindgate/keyservice/client"
)

type fake struct {
	body  string
	err   error
	calls int
}

func (f *fake) JWKS(context.Context) ([]byte, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return []byte(f.body), nil
}

func TestCache(t *testing.T) {
	const set1 = `{"keys":[{"kty":"EC","use":"enc","kid":"k1"}]}`
	const set2 = `{"keys":[{"kty":"EC","use":"enc","kid":"k2"}]}`
	f := &fake{body: set1}
	c := New(f, time.Minute, time.Hour)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	ctx := context.Background()

	steps := []struct {
		name    string
		advance time.Duration
		body    string
		err     error
		want    string
		wantErr bool
		calls   int
	}{
		{"ok/first-fetch", 0, set1, nil, set1, false, 1},
		{"ok/cached", 30 * time.Second, set2, nil, set1, false, 1},
		{"ok/refreshed-after-fresh", time.Minute, set2, nil, set2, false, 2},
		{"ok/stale-served-when-down", 2 * time.Minute, "", errors.New("down"), set2, false, 3},
		{"ok/bad-set-keeps-stale", 0, `{"keys":[]}`, nil, set2, false, 4},
		{"503/too-stale", 2 * time.Hour, "", errors.New("down"), "", true, 5},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			now = now.Add(s.advance)
			f.body, f.err = s.body, s.err
			got, err := c.JWKS(ctx)
			if s.wantErr != (err != nil) || (err == nil && string(got) != s.want) || f.calls != s.calls {
				t.Fatalf("got %s err %v calls %d", got, err, f.calls)
			}
			if s.wantErr && !errors.Is(err, ErrNoKeys) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// TestCacheSealed: an outage is papered over with the last set, a sealed key
// service is not: its answer drops the copy (503 at the page until it is
// unsealed), and the next good answer is served again.
func TestCacheSealed(t *testing.T) {
	const set1 = `{"keys":[{"kty":"EC","use":"enc","kid":"k1"}]}`
	f := &fake{body: set1}
	c := New(f, time.Minute, time.Hour)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	sealed := &client.Error{Status: 503, Code: "sealed", Message: "The key service is sealed."}
	steps := []struct {
		name    string
		advance time.Duration
		err     error
		wantErr bool
	}{
		{"ok/first-fetch", 0, nil, false},
		{"ok/stale-served-when-unreachable", 2 * time.Minute, errors.New("connection refused"), false},
		{"503/sealed-drops-the-copy", 0, sealed, true},
		{"503/still-nothing-while-unreachable", 0, errors.New("connection refused"), true},
		{"ok/unsealed", 0, nil, false},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		f.err = s.err
		got, err := c.JWKS(context.Background())
		if s.wantErr != (err != nil) || (err == nil && string(got) != set1) {
			t.Fatalf("%s: got %s err %v", s.name, got, err)
		}
		if s.wantErr && !errors.Is(err, ErrNoKeys) {
			t.Fatalf("%s: err %v, want ErrNoKeys", s.name, err)
		}
	}
	if !Sealed(fmt.Errorf("wrapped: %w", sealed)) || Sealed(&client.Error{Status: 503, Code: "unavailable"}) {
		t.Fatal("Sealed must recognise the sealed code, wrapped or not, and nothing else")
	}
}
