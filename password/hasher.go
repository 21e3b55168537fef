// Package password hashes and verifies passwords: argon2id in the PHC
// string format for the service's own hashes, and the formats of Django's
// hashers for accounts imported from a Django site. Hashing is bounded to
// a number of slots, because each hash holds its memory cost, and a hash
// waits for a slot at most a queue timeout. The hashes themselves run in
// this process (Local) or in a worker process at a lower CPU priority
// (Worker), so that a flood of logins leaves the CPU to the requests that
// check no password.
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
	"sync/atomic"
	"time"

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
// context ended or its queue timeout passed (then as an *OverloadedError).
// No password was compared.
var ErrNoSlot = errors.New("no password-hash slot free in time")

// OverloadedError is returned when a hash waited the hasher's queue
// timeout for a slot without getting one: every slot stayed busy, so the
// service is over its hashing capacity. It is an ErrNoSlot.
type OverloadedError struct {
	// RetryAfter is how long a client should wait before trying again:
	// the queue timeout, which is how long the queue it met takes to
	// drain at most.
	RetryAfter time.Duration
}

func (e *OverloadedError) Error() string {
	return fmt.Sprintf("%s: every password-hash slot stayed busy for %s", ErrNoSlot, e.RetryAfter)
}

// Is makes an OverloadedError an ErrNoSlot.
func (e *OverloadedError) Is(target error) bool { return target == ErrNoSlot }

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
	engine Engine
	// queueTimeout bounds the wait for a slot (0: until the context ends).
	queueTimeout time.Duration

	// waiting counts the hashes waiting for a slot, inUse those holding
	// one, peak the most that ever held one at once; overloaded counts the
	// waits that ran out of queue timeout.
	waiting, inUse, peak atomic.Int64
	overloaded           atomic.Uint64

	// pending counts the hashes running or waiting for a slot; onBusy
	// hears when it leaves zero and when it comes back.
	pendingMu sync.Mutex
	pending   int
	onBusy    func(busy bool)

	// computed counts the hashes that got a slot and ran.
	computed atomic.Uint64
}

// HasherOption changes how NewHasher builds a hasher.
type HasherOption func(*Hasher)

// WithQueueTimeout makes a hash wait at most d for a slot, then fail with
// an *OverloadedError; without it (or with d = 0) a hash waits as long as
// its context lets it.
func WithQueueTimeout(d time.Duration) HasherOption {
	return func(h *Hasher) { h.queueTimeout = d }
}

// WithEngine runs the hashes on e (such as a Worker) instead of in this
// process.
func WithEngine(e Engine) HasherOption { return func(h *Hasher) { h.engine = e } }

// NewHasher returns a hasher with the given cost that runs at most
// concurrency hashes at once.
func NewHasher(params Params, concurrency int, opts ...HasherOption) *Hasher {
	h := &Hasher{params: params, slots: make(chan struct{}, max(concurrency, 1)), engine: Local{}}
	for _, opt := range opts {
		opt(h)
	}
	h.dummy = h.encode(make([]byte, saltLength), make([]byte, keyLength))
	return h
}

// Slots is the hasher's state: its bound, how its slots are used now, and
// what it has refused. The metrics read it, and tests count with it.
type Slots struct {
	// Size is how many hashes may run at once.
	Size int
	// InUse and Waiting count the hashes running and waiting for a slot.
	InUse, Waiting int64
	// Peak is the most hashes that ever ran at once.
	Peak int64
	// Overloaded counts the hashes refused after waiting the queue
	// timeout.
	Overloaded uint64
}

// Slots returns the hasher's state.
func (h *Hasher) Slots() Slots {
	return Slots{Size: cap(h.slots), InUse: h.inUse.Load(), Waiting: h.waiting.Load(), Peak: h.peak.Load(),
		Overloaded: h.overloaded.Load()}
}

// OnBusy has f called with true when a hash is asked for while none is
// running or waiting, and with false when the last one ends: the stretches
// of time in which hashes allocate their memory. The calls alternate and
// never overlap. Set it before the hasher is used.
func (h *Hasher) OnBusy(f func(busy bool)) { h.onBusy = f }

// Computed returns how many hashes this hasher has run: Hash, Verify and
// VerifyDummy each run one once they get a slot. It is the service's
// measure of password work (the tokenauth_password_hashes_total metric),
// and lets a test count that work instead of timing it.
func (h *Hasher) Computed() uint64 { return h.computed.Load() }

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
	key, err := h.engine.Key(ctx, []byte(password), salt, h.params, keyLength)
	if err != nil {
		return "", err
	}
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
	got, err := h.engine.Key(ctx, []byte(password), salt, params, uint32(len(key)))
	if err != nil {
		return false, false, err
	}
	ok = subtle.ConstantTimeCompare(got, key) == 1
	return ok, params != h.params || len(key) != keyLength, nil
}

// VerifyDummy spends the time of one verification, so that an unknown
// username takes as long to refuse as a wrong password.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}

// acquire takes a slot, waiting at most the queue timeout and as long as
// ctx lets it.
func (h *Hasher) acquire(ctx context.Context) error {
	h.track(+1)
	select {
	case h.slots <- struct{}{}:
		h.took()
		return nil
	default:
	}
	var timeout <-chan time.Time
	if h.queueTimeout > 0 {
		timer := time.NewTimer(h.queueTimeout)
		defer timer.Stop()
		timeout = timer.C
	}
	h.waiting.Add(1)
	defer h.waiting.Add(-1)
	select {
	case h.slots <- struct{}{}:
		h.took()
		return nil
	case <-timeout:
		h.track(-1)
		h.overloaded.Add(1)
		return &OverloadedError{RetryAfter: h.queueTimeout}
	case <-ctx.Done():
		h.track(-1)
		return fmt.Errorf("%w: waiting to hash: %w", ErrNoSlot, ctx.Err())
	}
}

// took counts a slot just taken.
func (h *Hasher) took() {
	h.computed.Add(1)
	n := h.inUse.Add(1)
	for peak := h.peak.Load(); n > peak && !h.peak.CompareAndSwap(peak, n); peak = h.peak.Load() {
	}
}

func (h *Hasher) release() {
	h.inUse.Add(-1)
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

// Engine computes what a hash needs: argon2id keys, and the checks of
// passwords against hashes imported from Django. The Hasher bounds how
// many run at once; an engine runs what it is given.
type Engine interface {
	// Key returns the argon2id key of password with salt and cost p.
	Key(ctx context.Context, password, salt []byte, p Params, keyLen uint32) ([]byte, error)
	// CheckImported tells whether password matches encoded, a hash in
	// one of Django's formats that ImportedScheme says can be checked.
	CheckImported(ctx context.Context, password, encoded string) (bool, error)
}

// Local is the Engine that computes in this process, at its priority.
type Local struct{}

// Key computes the key here.
func (Local) Key(_ context.Context, password, salt []byte, p Params, keyLen uint32) ([]byte, error) {
	return argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, keyLen), nil
}

// CheckImported checks the password here.
func (Local) CheckImported(_ context.Context, password, encoded string) (bool, error) {
	_, check := parseImportedHash(encoded)
	return check != nil && check(password), nil
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
