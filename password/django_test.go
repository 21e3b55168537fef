package password

import (
	"strings"
	"testing"
)

// The hashes below were written by Django 3.2's own hashers (with low costs)
// for djangoPassword; tests/testdata/django has the full-cost fixture.
const djangoPassword = "pässwörd with ünïcode"

func TestVerifyDjangoHashes(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 2)
	cases := []struct {
		name       string
		encoded    string
		wantScheme string
	}{
		{"pbkdf2_sha256", "pbkdf2_sha256$1000$Hk8BP8YCewbocEO7QAXzAd$/JVmFI92lXPludTgsnRv/Rdns7TMNnzsXw1HDnf+rw0=", SchemePBKDF2SHA256},
		{"argon2id", "argon2$argon2id$v=19$m=1024,t=1,p=2$NUdYdERVc3M3Ynd4VEdZOXZkQ3k1TQ$M3Mz6P8HJY/93IBBoQfLhQ", SchemeArgon2},
		{"argon2i (Django before 3.2)", "argon2$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$YNwXRf3xbw1cte00FQR2rw", SchemeArgon2},
		{"bcrypt_sha256", "bcrypt_sha256$$2b$04$vmK/Ozjoj1cSGHVDLTWRIe.a3xYiq3DTiSdDB1UY9fG4uJSSB9bgq", SchemeBCryptSHA256},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if scheme, usable := ImportedScheme(tc.encoded); scheme != tc.wantScheme || !usable {
				t.Errorf("scheme: got %q usable=%v, want %q usable", scheme, usable, tc.wantScheme)
			}
			ok, stale, err := h.Verify(t.Context(), djangoPassword, tc.encoded)
			if err != nil || !ok || !stale {
				t.Errorf("right password: got ok=%v stale=%v err=%v, want ok, stale", ok, stale, err)
			}
			for _, wrong := range []string{"", "pässwörd with ünïcodE", djangoPassword + " "} {
				if ok, _, err := h.Verify(t.Context(), wrong, tc.encoded); ok || err != nil {
					t.Errorf("wrong password %q: got ok=%v err=%v", wrong, ok, err)
				}
			}
		})
	}
}

func TestVerifyBCryptSHA256LongPassword(t *testing.T) {
	t.Parallel()
	// bcrypt alone reads 72 bytes; Django's SHA-256 step makes every byte
	// count, and so must this check.
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 1)
	const encoded = "bcrypt_sha256$$2b$04$FQvwpyhgXr8JtDnqb5J5K.ig0zD7GmjemLwrxyDmDDFo9ZH6imi/."
	long := strings.Repeat("x", 100)
	if ok, _, err := h.Verify(t.Context(), long, encoded); !ok || err != nil {
		t.Fatalf("100-byte password: got ok=%v err=%v", ok, err)
	}
	if ok, _, _ := h.Verify(t.Context(), long[:99]+"y", encoded); ok {
		t.Fatal("a password that differs after byte 72 matched")
	}
}

func TestUnusableImportedHashesNeverMatch(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 1)
	cases := []struct {
		encoded    string
		wantScheme string
	}{
		{"!HzjhWkDsKnNUwikHNZhoVWCqyoCGIuyCUr52ZlhN", SchemeUnusable},
		{"", SchemeUnusable},
		{"md5$salt$0123456789abcdef0123456789abcdef", "md5"},
		{"sha1$salt$abc", "sha1"},
		{"pbkdf2_sha1$1000$salt$abc=", "pbkdf2_sha1"},
		{"pbkdf2_sha256$notanumber$salt$/JVmFI92lXPludTgsnRv/Rdns7TMNnzsXw1HDnf+rw0=", SchemePBKDF2SHA256},
		{"pbkdf2_sha256$1000$$/JVmFI92lXPludTgsnRv/Rdns7TMNnzsXw1HDnf+rw0=", SchemePBKDF2SHA256},
		{"pbkdf2_sha256$1000000000$salt$/JVmFI92lXPludTgsnRv/Rdns7TMNnzsXw1HDnf+rw0=", SchemePBKDF2SHA256},
		{"pbkdf2_sha256$1000$salt$not base64!", SchemePBKDF2SHA256},
		{"argon2$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$YNwXRf3xbw1cte00FQR2rw", SchemeArgon2},
		{"argon2$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$YNwXRf3xbw1cte00FQR2rw", SchemeArgon2},
		{"argon2$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$YNwXRf3xbw1cte00FQR2rw", SchemeArgon2},
		{"bcrypt_sha256$$2b$04$short", SchemeBCryptSHA256},
		{"bcrypt_sha256$$2b$31$vmK/Ozjoj1cSGHVDLTWRIe.a3xYiq3DTiSdDB1UY9fG4uJSSB9bgq", SchemeBCryptSHA256},
	}
	for _, tc := range cases {
		scheme, usable := ImportedScheme(tc.encoded)
		if scheme != tc.wantScheme || usable {
			t.Errorf("%q: got scheme %q usable=%v, want %q unusable", tc.encoded, scheme, usable, tc.wantScheme)
		}
		// Refused like a wrong password (after the same dummy work), never
		// an error that would become a 500.
		ok, stale, err := h.Verify(t.Context(), djangoPassword, tc.encoded)
		if ok || stale || err != nil {
			t.Errorf("%q: got ok=%v stale=%v err=%v, want a plain refusal", tc.encoded, ok, stale, err)
		}
	}
}

func TestOwnHashesAreStillChecked(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 1)
	own, err := h.Hash(t.Context(), djangoPassword)
	if err != nil {
		t.Fatal(err)
	}
	if scheme, usable := ImportedScheme(own); scheme != "argon2id" || !usable {
		t.Errorf("own hash: got scheme %q usable=%v", scheme, usable)
	}
	if ok, stale, err := h.Verify(t.Context(), djangoPassword, own); !ok || stale || err != nil {
		t.Errorf("own hash: got ok=%v stale=%v err=%v, want ok and current", ok, stale, err)
	}
	// A damaged hash of our own format is a fault to report, not a refusal.
	if _, _, err := h.Verify(t.Context(), djangoPassword, own[:len(own)-30]+"$"); err == nil {
		t.Error("a damaged argon2id hash verified without an error")
	}
}

// The hashes below are right for djangoPassword, so a check that ran one
// would let the password in: a refusal shows that it never ran.
const (
	argon2idAtTimeLimit  = "$argon2id$v=19$m=8,t=100,p=1$b3ZlciB0aGUgbGltaXRz$BrYv/DpAunxYo3uIZ5xeAQ"
	argon2idOverTime     = "$argon2id$v=19$m=8,t=101,p=1$b3ZlciB0aGUgbGltaXRz$Eb3yjdUftPMOQWmuI69M+A"
	argon2idOverMemory   = "$argon2id$v=19$m=1048580,t=1,p=1$b3ZlciB0aGUgbGltaXRz$NiIRJpL6uALDfdx69v3QPg"
	djangoArgon2Prefixed = "argon2"
)

func TestArgon2CostLimits(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 1)
	cases := []struct {
		name       string
		encoded    string
		wantScheme string
		wantUsable bool
	}{
		{"bare, at the time limit", argon2idAtTimeLimit, "argon2id", true},
		{"bare, one pass over", argon2idOverTime, "argon2id", false},
		{"bare, over the memory limit", argon2idOverMemory, "argon2id", false},
		{"Django's, at the time limit", djangoArgon2Prefixed + argon2idAtTimeLimit, SchemeArgon2, true},
		{"Django's, one pass over", djangoArgon2Prefixed + argon2idOverTime, SchemeArgon2, false},
		{"Django's, over the memory limit", djangoArgon2Prefixed + argon2idOverMemory, SchemeArgon2, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if scheme, usable := ImportedScheme(tc.encoded); scheme != tc.wantScheme || usable != tc.wantUsable {
				t.Errorf("ImportedScheme: got %q usable=%v, want %q usable=%v", scheme, usable, tc.wantScheme, tc.wantUsable)
			}
			ok, stale, err := h.Verify(t.Context(), djangoPassword, tc.encoded)
			switch {
			case err != nil:
				t.Errorf("Verify: %v, want no error", err)
			case tc.wantUsable && (!ok || !stale):
				t.Errorf("Verify: got ok=%v stale=%v, want ok and stale", ok, stale)
			case !tc.wantUsable && (ok || stale):
				t.Errorf("Verify: got ok=%v stale=%v, want a plain refusal without running the hash", ok, stale)
			}
		})
	}
}

func TestOwnParamsAreNeverBeyondTheLimits(t *testing.T) {
	t.Parallel()
	// The service's own hashes must stay checkable: if its parameters grew
	// beyond the limits, every user would be locked out.
	if !withinLimits(DefaultParams) {
		t.Errorf("DefaultParams %+v are beyond the limits on stored hashes", DefaultParams)
	}
}

func TestImportedSchemeNamesNoSecret(t *testing.T) {
	t.Parallel()
	cases := []struct {
		encoded    string
		wantScheme string
	}{
		{"5f4dcc3b5aa765d61d8327deb882cf99", "unsalted_md5"},
		{"md5$$5f4dcc3b5aa765d61d8327deb882cf99", "unsalted_md5"},
		{"sha1$$5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8", "unsalted_sha1"},
		{"md5$salt$0123456789abcdef0123456789abcdef", "md5"},
		{"crypt$$ab1Iwt1hDzB0.", "crypt"},
		{"scrypt$16384$salt$8$1$abc=", "scrypt"},
		{"bcrypt$$2b$12$abcdefghijklmnopqrstuv", "bcrypt"},
		{"correct horse battery staple", SchemeUnknown},
		{"hunter2$with a dollar", SchemeUnknown},
		{"5f4dcc3b5aa765d61d8327deb882cf9z", SchemeUnknown}, // 32 characters, not hex
		{"$2b$12$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQ", SchemeUnknown},
		{"legacy_sha256$salt$abc", SchemeUnknown},
		{"$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$YNwXRf3xbw1cte00FQR2rw", SchemeUnknown},
	}
	for _, tc := range cases {
		scheme, usable := ImportedScheme(tc.encoded)
		if scheme != tc.wantScheme || usable {
			t.Errorf("%q: got scheme %q usable=%v, want %q unusable", tc.encoded, scheme, usable, tc.wantScheme)
		}
	}
}

func TestWeakImported(t *testing.T) {
	t.Parallel()
	cases := []struct {
		encoded  string
		wantWeak bool
	}{
		{"pbkdf2_sha256$1$salt$/JVmFI92lXPludTgsnRv/Rdns7TMNnzsXw1HDnf+rw0=", true},
		{"pbkdf2_sha256$99999$salt$/JVmFI92lXPludTgsnRv/Rdns7TMNnzsXw1HDnf+rw0=", true},
		{"pbkdf2_sha256$100000$salt$/JVmFI92lXPludTgsnRv/Rdns7TMNnzsXw1HDnf+rw0=", false},
		{"pbkdf2_sha256$1000000$salt$/JVmFI92lXPludTgsnRv/Rdns7TMNnzsXw1HDnf+rw0=", false},
		// Unusable hashes are reported as such, not as weak.
		{"pbkdf2_sha256$1$$/JVmFI92lXPludTgsnRv/Rdns7TMNnzsXw1HDnf+rw0=", false},
		{"pbkdf2_sha256$0$salt$/JVmFI92lXPludTgsnRv/Rdns7TMNnzsXw1HDnf+rw0=", false},
		{"!HzjhWkDsKnNUwikHNZhoVWCqyoCGIuyCUr52ZlhN", false},
		{argon2idAtTimeLimit, false},
	}
	for _, tc := range cases {
		if got := WeakImported(tc.encoded); got != tc.wantWeak {
			t.Errorf("WeakImported(%q): got %v, want %v", tc.encoded, got, tc.wantWeak)
		}
	}
}

func TestDamaged(t *testing.T) {
	t.Parallel()
	own, err := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 1).Hash(t.Context(), djangoPassword)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		encoded     string
		wantDamaged bool
	}{
		{own, false},
		{argon2idOverMemory, false}, // readable: refused for its cost, not damaged
		{own[:len(own)-30] + "$", true},
		{"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ", true},
		{"$argon2id$", true},
		// Django's formats and others are judged by ImportedScheme.
		{djangoArgon2Prefixed + "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ", false},
		{"!", false},
		{"correct horse battery staple", false},
	}
	for _, tc := range cases {
		if got := Damaged(tc.encoded); got != tc.wantDamaged {
			t.Errorf("Damaged(%q): got %v, want %v", tc.encoded, got, tc.wantDamaged)
		}
	}
}
