// Package password hashes and verifies passwords: argon2id in the PHC
// string format for the service's own hashes, and the formats of Django's
// hashers for accounts imported from a Django site. Hashing is bounded to
// a number of slots, because each hash holds its memory cost.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// MaxLength is the longest password accepted anywhere, in
// characters. It bounds the work one request can make the hash do.
const MaxLength = 256

// Params are the argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultParams are OWASP's recommended argon2id settings
// (19 MiB, two passes, one lane).
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1}

// ErrNoSlot is returned when a hash could not get a slot before its
// context ended.
var ErrNoSlot = errors.New("no password-hash slot free in time")

const (
	saltLength = 16
	keyLength  = 32
)

// Hasher hashes and verifies passwords with argon2id in the PHC
// string format. It bounds how many hashes run at once, because each one
// holds Memory KiB: without a bound, a burst of logins would take the
// server's memory with it.
type Hasher struct {
	params Params
	slots  chan struct{}
	dummy  string

	// pending counts the hashes running or waiting for a slot; onBusy
	// hears when it leaves zero and when it comes back.
	pendingMu sync.Mutex
	pending   int
	onBusy    func(busy bool)
}

// NewHasher returns a hasher with the given cost that runs at most
// concurrency hashes at once.
func NewHasher(params Params, concurrency int) *Hasher {
	h := &Hasher{params: params, slots: make(chan struct{}, max(concurrency, 1))}
	h.dummy = h.encode(make([]byte, saltLength), make([]byte, keyLength))
	return h
}

// OnBusy has f called with true when a hash is asked for while none is
// running or waiting, and with false when the last one ends: the stretches
// of time in which hashes allocate their memory. The calls alternate and
// never overlap. Set it before the hasher is used.
func (h *Hasher) OnBusy(f func(busy bool)) { h.onBusy = f }

// Memory is the most memory the hashes running at once take, in bytes.
func (h *Hasher) Memory() int64 {
	return int64(cap(h.slots)) * int64(h.params.Memory) * 1024
}

// Hash returns the PHC string of password with a fresh random salt.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("reading salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, keyLength)
	return h.encode(salt, key), nil
}

// Verify tells whether password matches the stored hash, in constant time,
// and whether the hash was made with other parameters than the current ones
// and should be replaced. A hash imported from Django (see
// ImportedScheme) is always stale; one that can never match, such
// as Django's unusable password, costs the same as a wrong password. So
// does an argon2id hash that asks for more than the limits on a stored
// hash (unless it asks for this hasher's own cost): it is never run, since
// anyone who types the username would make the server run it.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, stale bool, err error) {
	if !strings.HasPrefix(encoded, argon2idPrefix) {
		return h.verifyImported(ctx, password, encoded)
	}
	params, salt, key, err := decodeArgon2id(encoded)
	if err != nil {
		return false, false, err
	}
	if params != h.params && !withinLimits(params) {
		return false, false, h.VerifyDummy(ctx, password)
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, params.Time, params.Memory, params.Threads, uint32(len(key)))
	ok = subtle.ConstantTimeCompare(got, key) == 1
	return ok, params != h.params || len(key) != keyLength, nil
}

// VerifyDummy spends the time of one verification, so that an unknown
// username takes as long to refuse as a wrong password.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}

func (h *Hasher) acquire(ctx context.Context) error {
	h.track(+1)
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		h.track(-1)
		return fmt.Errorf("%w: waiting to hash: %w", ErrNoSlot, ctx.Err())
	}
}

func (h *Hasher) release() {
	<-h.slots
	h.track(-1)
}

// track counts a hash in (+1) or out (-1) and tells onBusy when the count
// leaves or reaches zero.
func (h *Hasher) track(delta int) {
	if h.onBusy == nil {
		return
	}
	h.pendingMu.Lock()
	defer h.pendingMu.Unlock()
	was := h.pending
	h.pending += delta
	if (was == 0) != (h.pending == 0) {
		h.onBusy(h.pending > 0)
	}
}

func (h *Hasher) encode(salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.Memory, h.params.Time, h.params.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// argon2idPrefix starts every hash this service makes.
const argon2idPrefix = "$argon2id$"

var errBadHash = errors.New("stored password hash is not a valid argon2id PHC string")

func decodeArgon2id(encoded string) (Params, []byte, []byte, error) {
	variant, p, salt, key, err := decodeArgon2(encoded)
	if err != nil || variant != "argon2id" {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// decodeArgon2 reads an argon2 PHC string of version 19, argon2id or
// argon2i: "$<variant>$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>".
func decodeArgon2(encoded string) (variant string, p Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" && parts[1] != "argon2i" {
		return "", p, nil, nil, errBadHash
	}
	variant = parts[1]
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return "", p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil ||
		p.Memory == 0 || p.Time == 0 || p.Threads == 0 {
		return "", p, nil, nil, errBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) == 0 || len(key) == 0 {
		return "", p, nil, nil, errBadHash
	}
	return variant, p, salt, key, nil
}
