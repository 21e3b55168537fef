package password

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Schemes of password hashes imported from Django, as
// ImportedScheme names them.
const (
	SchemePBKDF2SHA256 = "pbkdf2_sha256"
	SchemeArgon2       = "argon2"
	SchemeBCryptSHA256 = "bcrypt_sha256"
	// SchemeUnusable is Django's unusable password ("!" and random
	// characters, or empty): the user never logged in with a password.
	SchemeUnusable = "unusable"
	// SchemeUnknown is a hash in no format of Django's own hashers: a
	// custom hasher's, a bare digest, or a password stored as it was
	// typed. Its text is never shown, since any part of it may be a
	// password or a hash to crack.
	SchemeUnknown = "unknown"
)

// otherDjangoSchemes are the algorithm names of Django's own hashers that
// login cannot check: named in the import report, so that the operator
// knows which hasher to keep in Django while those users log in there.
var otherDjangoSchemes = map[string]bool{
	"pbkdf2_sha1": true,
	"bcrypt":      true,
	"scrypt":      true,
	"sha1":        true,
	"md5":         true,
	"crypt":       true,
}

// MinPBKDF2Iterations is the iteration count below which an imported
// pbkdf2_sha256 hash is reported as weak: Django's default since 2.0. A
// hash of fewer is cheap to crack if the Django database leaks.
const MinPBKDF2Iterations = 100_000

// Bounds on the cost written in a stored hash. Django's defaults are far
// below them; a hash beyond them is treated as unusable rather than allowed
// to hold a hashing slot (and its memory) for minutes. Login runs a stored
// hash for anyone who types its username, so they hold for every format,
// the service's own argon2id included: Hasher.Verify lets only its own
// cost through beyond them.
const (
	maxPBKDF2Iterations = 10_000_000
	maxArgon2Memory     = 1 << 20 // KiB: 1 GiB
	maxArgon2Time       = 100
	maxBCryptCost       = 16
)

// withinLimits tells whether an argon2 hash of cost p may be run.
func withinLimits(p Params) bool {
	return p.Memory <= maxArgon2Memory && p.Time <= maxArgon2Time
}

// ImportedScheme names the format of a password hash taken from a
// Django database and tells whether login can check it. pbkdf2_sha256,
// argon2 (argon2id or argon2i) and bcrypt_sha256 can be checked; a hash
// in this service's format ($argon2id$...) is "argon2id". Django's
// unusable password, a malformed hash, a hash whose cost is beyond the
// limits login runs, and any other format cannot: such a user cannot log in
// with a password. The scheme is one of a fixed set of names, never any
// part of the hash: Django's algorithm names (md5, sha1, scrypt, ...,
// including unsalted_md5 and unsalted_sha1, which Django recognises by
// their shape) or SchemeUnknown.
func ImportedScheme(encoded string) (scheme string, usable bool) {
	if strings.HasPrefix(encoded, argon2idPrefix) {
		p, _, _, err := decodeArgon2id(encoded)
		return "argon2id", err == nil && withinLimits(p)
	}
	scheme, check := parseImportedHash(encoded)
	return scheme, check != nil
}

// Damaged tells whether encoded is in this service's own format
// ($argon2id$...) but cannot be read. Verify answers such a hash with an
// error, a fault for the operator to look into, not with a refusal: the
// service never writes one, so an import must not bring one in.
func Damaged(encoded string) bool {
	if !strings.HasPrefix(encoded, argon2idPrefix) {
		return false
	}
	_, _, _, err := decodeArgon2id(encoded)
	return err != nil
}

// WeakImported tells whether a hash taken from a Django database can be
// checked but is cheap to crack: pbkdf2_sha256 with fewer than
// MinPBKDF2Iterations. Login replaces it like any imported hash; until
// then it is as weak here as it was in Django.
func WeakImported(encoded string) bool {
	rest, ok := strings.CutPrefix(encoded, SchemePBKDF2SHA256+"$")
	if !ok {
		return false
	}
	iterations, check := parsePBKDF2SHA256(rest)
	return check != nil && iterations < MinPBKDF2Iterations
}

// verifyImported checks a password against a hash in one of Django's
// formats. A match is always stale: the caller replaces it with the
// service's own argon2id. A hash that can never match costs a dummy
// verification, like an unknown username.
func (h *Hasher) verifyImported(ctx context.Context, password, encoded string) (ok, stale bool, err error) {
	if _, check := parseImportedHash(encoded); check == nil {
		return false, false, h.VerifyDummy(ctx, password)
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	defer h.release()
	ok, err = h.engine.CheckImported(ctx, password, encoded)
	return ok, err == nil, err
}

// parseImportedHash returns the scheme of a Django hash and a function that
// tells, in constant time, whether a password matches it; the function is
// nil when no password can match.
func parseImportedHash(encoded string) (scheme string, check func(password string) bool) {
	if encoded == "" || strings.HasPrefix(encoded, "!") {
		return SchemeUnusable, nil
	}
	scheme, rest, _ := strings.Cut(encoded, "$")
	switch scheme {
	case SchemePBKDF2SHA256:
		_, check := parsePBKDF2SHA256(rest)
		return scheme, check
	case SchemeArgon2:
		// Django writes "argon2" followed by argon2-cffi's own PHC string.
		return scheme, parseDjangoArgon2("$" + rest)
	case SchemeBCryptSHA256:
		return scheme, parseBCryptSHA256(rest)
	}
	return otherScheme(encoded), nil
}

// otherScheme names a hash that login cannot check as Django's
// identify_hasher does, or SchemeUnknown: never by any text of its own.
func otherScheme(encoded string) string {
	switch {
	case len(encoded) == 32 && isHex(encoded),
		len(encoded) == 37 && strings.HasPrefix(encoded, "md5$$") && isHex(encoded[5:]):
		return "unsalted_md5"
	case len(encoded) == 46 && strings.HasPrefix(encoded, "sha1$$") && isHex(encoded[6:]):
		return "unsalted_sha1"
	}
	if name, _, found := strings.Cut(encoded, "$"); found && otherDjangoSchemes[name] {
		return name
	}
	return SchemeUnknown
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// parsePBKDF2SHA256 reads "<iterations>$<salt>$<base64 key>": Django's
// PBKDF2PasswordHasher, HMAC-SHA256 over the UTF-8 password and salt.
func parsePBKDF2SHA256(rest string) (iterations int, check func(string) bool) {
	parts := strings.Split(rest, "$")
	if len(parts) != 3 || parts[1] == "" {
		return 0, nil
	}
	iterations, err := strconv.Atoi(parts[0])
	if err != nil || iterations < 1 || iterations > maxPBKDF2Iterations {
		return 0, nil
	}
	salt := []byte(parts[1])
	want, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(want) == 0 || len(want) > sha256.Size {
		return 0, nil
	}
	return iterations, func(password string) bool {
		got, err := pbkdf2.Key(sha256.New, password, salt, iterations, len(want))
		return err == nil && subtle.ConstantTimeCompare(got, want) == 1
	}
}

// parseDjangoArgon2 reads the PHC string of Django's Argon2PasswordHasher:
// argon2id since Django 3.2, argon2i before.
func parseDjangoArgon2(phc string) func(string) bool {
	variant, p, salt, want, err := decodeArgon2(phc)
	if err != nil || !withinLimits(p) {
		return nil
	}
	return func(password string) bool {
		var got []byte
		if variant == "argon2id" {
			got = argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
		} else {
			got = argon2.Key([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
		}
		return subtle.ConstantTimeCompare(got, want) == 1
	}
}

// parseBCryptSHA256 reads Django's BCryptSHA256PasswordHasher hash: bcrypt
// over the hex SHA-256 of the password, so that long passwords are not cut
// at bcrypt's 72 bytes.
func parseBCryptSHA256(rest string) func(string) bool {
	hash := []byte(rest)
	if cost, err := bcrypt.Cost(hash); err != nil || cost > maxBCryptCost {
		return nil
	}
	return func(password string) bool {
		sum := sha256.Sum256([]byte(password))
		// CompareHashAndPassword compares in constant time.
		return bcrypt.CompareHashAndPassword(hash, []byte(hex.EncodeToString(sum[:]))) == nil
	}
}
