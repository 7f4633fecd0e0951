package operators

import (
	"errors"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// fastParams keep tests quick; production uses DefaultParams.
var fastParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		name, user, pw string
		ok             bool
		reason         string
	}{
		{"weak/11-chars", "alice", strings.Repeat("a", 10) + "1", false, "at least 12"},
		{"ok/12-chars", "alice", strings.Repeat("a", 11) + "1", true, ""},
		{"ok/12-multibyte-chars", "alice", strings.Repeat("é", 11) + "٣", true, ""},
		{"weak/11-multibyte-chars-22-bytes", "alice", strings.Repeat("é", 10) + "1", false, "at least 12"},
		{"ok/128-chars", "alice", strings.Repeat("b", 127) + "9", true, ""},
		{"weak/129-chars", "alice", strings.Repeat("b", 128) + "9", false, "at most 128"},
		{"weak/letters-only", "alice", strings.Repeat("a", 12), false, "letters and digits"},
		{"weak/digits-only", "alice", strings.Repeat("7", 12), false, "letters and digits"},
		{"weak/letters-and-symbols-no-digit", "alice", "correct horse battery staple!", false, "letters and digits"},
		{"weak/digits-and-symbols-no-letter", "alice", "1234-5678-9012", false, "letters and digits"},
		{"weak/equals-username", "alice.operator7", "alice.operator7", false, "username"},
		{"weak/equals-username-other-case", "alice.operator7", "ALICE.operator7", false, "username"},
		{"weak/invalid-utf8", "alice", "\xff\xfe" + strings.Repeat("a", 11) + "1", false, "UTF-8"},
		{"ok/passphrase", "alice", "correct horse battery staple 42", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPassword(tc.user, tc.pw)
			if tc.ok {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrWeakPassword) {
				t.Fatalf("got %v, want ErrWeakPassword", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("reason %q does not say %q", err, tc.reason)
			}
			if strings.Contains(err.Error(), tc.pw) {
				t.Fatal("error message echoes the password")
			}
		})
	}
}

// TestGeneratePassword: generated passwords differ and every one passes the
// policy an operator's own must, letters and digits included. A raw draw
// has no digit about once in 200, so a generator that did not draw again
// fails here but for a chance of about 1e-4.
func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		pw := GeneratePassword()
		if seen[pw] {
			t.Fatal("two generated passwords are equal")
		}
		seen[pw] = true
		if len(pw) != 26 {
			t.Fatalf("generated password of %d characters", len(pw))
		}
		if err := CheckPassword("someone", pw); err != nil {
			t.Fatalf("generated password fails the policy: %v", err)
		}
	}
}

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashVerify(t *testing.T) {
	const pw = "correct horse battery staple 42"
	h := hashPassword(pw, fastParams)
	if !phcRE.MatchString(h) {
		t.Fatalf("not a PHC argon2id string: %s", h)
	}
	if h == hashPassword(pw, fastParams) {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	other := fastParams
	other.Time = 2
	for _, tc := range []struct {
		name      string
		pw, phc   string
		want      Params
		ok, again bool
		err       bool
	}{
		{"ok/right-password", pw, h, fastParams, true, false, false},
		{"fail/wrong-password", pw + "!", h, fastParams, false, false, false},
		{"fail/empty-password", "", h, fastParams, false, false, false},
		{"ok/rehash-when-params-changed", pw, h, other, true, true, false},
		{"err/not-argon2id", pw, "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA", fastParams, false, false, true},
		{"err/wrong-version", pw, strings.Replace(h, "v=19", "v=16", 1), fastParams, false, false, true},
		{"err/huge-memory", pw, strings.Replace(h, "m=64", "m=99999999", 1), fastParams, false, false, true},
		{"err/truncated", pw, h[:20], fastParams, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, again, err := verifyPassword(tc.pw, tc.phc, tc.want)
			if (err != nil) != tc.err || ok != tc.ok || again != tc.again {
				t.Fatalf("got ok=%v rehash=%v err=%v", ok, again, err)
			}
		})
	}
}

func TestDefaultParams(t *testing.T) {
	p := DefaultParams()
	if p.Memory != 64*1024 || p.Threads != 2 || p.Time < 1 || p.Time > 3 {
		t.Fatalf("default params drifted from m=64MiB p=2 t=1..3: %+v", p)
	}
	if err := p.validate(); err != nil {
		t.Fatal(err)
	}
}

// TestNewServiceAllocatesLittle: building the service must not run argon2
// (64 MiB), or an idle gateway would hold that memory.
func TestNewServiceAllocatesLittle(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := NewService(nopStore{}, Config{}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("NewService allocated %d bytes", got)
	}
	phc := dummyPHC(DefaultParams())
	if ok, _, err := verifyPassword("anything at all", phc, DefaultParams()); err != nil || ok {
		t.Fatalf("dummy hash: ok=%v err=%v, want a well-formed hash that never matches", ok, err)
	}
}

// nopStore satisfies Store for constructor tests.
type nopStore struct{ Store }
