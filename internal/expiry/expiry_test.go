package expiry

import (
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func TestSet(t *testing.T) {
	tests := []struct {
		name string
		run  func(s *Set[string])
		now  time.Time
		held map[string]time.Time
	}{
		{"empty", func(*Set[string]) {}, at(0), map[string]time.Time{}},
		{"kept/before-deadline", func(s *Set[string]) { s.Hold("a", at(2)) }, at(1), map[string]time.Time{"a": at(2)}},
		{"dropped/at-deadline", func(s *Set[string]) { s.Hold("a", at(2)) }, at(2), map[string]time.Time{}},
		{"dropped/soonest-only", func(s *Set[string]) {
			s.Hold("c", at(3))
			s.Hold("a", at(1))
			s.Hold("b", at(2))
		}, at(2), map[string]time.Time{"c": at(3)}},
		{"kept/deadline-extended", func(s *Set[string]) {
			s.Hold("a", at(1))
			s.Hold("b", at(2))
			s.Hold("a", at(5))
		}, at(3), map[string]time.Time{"a": at(5)}},
		{"dropped/deadline-shortened", func(s *Set[string]) {
			s.Hold("a", at(5))
			s.Hold("b", at(4))
			s.Hold("a", at(1))
		}, at(2), map[string]time.Time{"b": at(4)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New[string]()
			tt.run(s)
			s.Expire(tt.now)
			if s.Len() != len(tt.held) {
				t.Fatalf("Len = %d, want %d", s.Len(), len(tt.held))
			}
			for k, want := range tt.held {
				if got, ok := s.Until(k); !ok || !got.Equal(want) {
					t.Errorf("Until(%q) = %v, %v; want %v, true", k, got, ok, want)
				}
			}
		})
	}
}

// TestSetMatchesModel: random holds and expiries agree with a plain map.
func TestSetMatchesModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s, model := New[int](), map[int]time.Time{}
	now := 0
	for range 20000 {
		switch r.IntN(4) {
		case 0, 1, 2:
			k, until := r.IntN(200), at(now+r.IntN(50))
			s.Hold(k, until)
			model[k] = until
		case 3:
			now += r.IntN(5)
			s.Expire(at(now))
			for k, u := range model {
				if !u.After(at(now)) {
					delete(model, k)
				}
			}
			if s.Len() != len(model) {
				t.Fatalf("at %d: Len = %d, model %d", now, s.Len(), len(model))
			}
			for k, u := range model {
				if got, ok := s.Until(k); !ok || !got.Equal(u) {
					t.Fatalf("at %d: Until(%d) = %v, %v; want %v", now, k, got, ok, u)
				}
			}
		}
	}
}
