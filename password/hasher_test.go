package password

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// busyLog records what a hasher's OnBusy hears.
type busyLog struct {
	mu    sync.Mutex
	calls []bool
}

func (l *busyLog) note(busy bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, busy)
}

func (l *busyLog) get() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

func TestOnBusyAlternatesAroundConcurrentHashes(t *testing.T) {
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 2)
	var log busyLog
	h.OnBusy(log.note)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := h.Hash(t.Context(), "a passphrase"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	calls := log.get()
	if len(calls) == 0 || len(calls)%2 != 0 {
		t.Fatalf("calls %v: want pairs of true, false", calls)
	}
	for i, busy := range calls {
		if busy != (i%2 == 0) {
			t.Fatalf("calls %v: want true and false in turn", calls)
		}
	}
}

func TestOnBusyCountsAWaitThatGivesUp(t *testing.T) {
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 1)
	var log busyLog
	h.OnBusy(log.note)
	if err := h.acquire(t.Context()); err != nil { // the one slot, taken
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := h.Hash(ctx, "a passphrase"); !errors.Is(err, ErrNoSlot) {
		t.Fatalf("hash while the slot is taken and the context is done: %v, want ErrNoSlot", err)
	}
	if got := log.get(); !slices.Equal(got, []bool{true}) {
		t.Fatalf("after a wait that gave up, with a hash still running: calls %v, want [true]", got)
	}
	h.release()
	if got := log.get(); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("after the last hash: calls %v, want [true false]", got)
	}
}

func TestComputedCountsTheHashesThatRan(t *testing.T) {
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 1)
	encoded, err := h.Hash(t.Context(), "a passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Verify(t.Context(), "a passphrase", encoded); err != nil {
		t.Fatal(err)
	}
	if err := h.VerifyDummy(t.Context(), "a guess"); err != nil {
		t.Fatal(err)
	}
	if got := h.Computed(); got != 3 {
		t.Fatalf("after a hash, a verification and a dummy one: %d computed, want 3", got)
	}
	// A hash that never got a slot did no work.
	if err := h.acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := h.Hash(ctx, "a passphrase"); !errors.Is(err, ErrNoSlot) {
		t.Fatalf("hash without a slot: %v, want ErrNoSlot", err)
	}
	h.release()
	if got := h.Computed(); got != 4 {
		t.Fatalf("after one more slot taken and a hash that gave up: %d computed, want 4", got)
	}
}

// A hash that waits the queue timeout for a slot is refused as
// overloaded, an ErrNoSlot, and counted; it does no work.
func TestQueueTimeoutRefusesAsOverloaded(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 1, WithQueueTimeout(time.Millisecond))
	if err := h.acquire(t.Context()); err != nil { // the one slot, taken
		t.Fatal(err)
	}
	_, err := h.Hash(t.Context(), "a passphrase")
	var busy *OverloadedError
	if !errors.As(err, &busy) || !errors.Is(err, ErrNoSlot) || busy.RetryAfter != time.Millisecond {
		t.Fatalf("hash while the slot stays taken: %v, want an OverloadedError (an ErrNoSlot) of 1ms", err)
	}
	if s := h.Slots(); s.Overloaded != 1 || s.InUse != 1 || s.Waiting != 0 || h.Computed() != 1 {
		t.Fatalf("slots %+v computed %d: want 1 overloaded, 1 in use, none waiting, 1 computed", s, h.Computed())
	}
	h.release()
	if _, err := h.Hash(t.Context(), "a passphrase"); err != nil {
		t.Fatalf("hash once the slot is free: %v", err)
	}
}

// gatedEngine computes locally once open, counting the computations
// inside it at once.
type gatedEngine struct {
	open             chan struct{}
	mu               sync.Mutex
	inside, mostSeen int
}

func (g *gatedEngine) enter() {
	g.mu.Lock()
	g.inside++
	g.mostSeen = max(g.mostSeen, g.inside)
	g.mu.Unlock()
	<-g.open
}

func (g *gatedEngine) leave() {
	g.mu.Lock()
	g.inside--
	g.mu.Unlock()
}

func (g *gatedEngine) Key(ctx context.Context, password, salt []byte, p Params, keyLen uint32) ([]byte, error) {
	g.enter()
	defer g.leave()
	return Local{}.Key(ctx, password, salt, p, keyLen)
}

func (g *gatedEngine) CheckImported(ctx context.Context, password, encoded string) (bool, error) {
	g.enter()
	defer g.leave()
	return Local{}.CheckImported(ctx, password, encoded)
}

// However many hashes are asked for at once, no more than the slots run.
func TestSlotsBoundTheHashesRunningAtOnce(t *testing.T) {
	t.Parallel()
	gate := &gatedEngine{open: make(chan struct{})}
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 3, WithEngine(gate))
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if _, err := h.Hash(t.Context(), "a passphrase"); err != nil {
				t.Error(err)
			}
		})
	}
	// Every hash is in: three hold the slots, in the gate, the rest wait.
	for s := h.Slots(); s.InUse != 3 || s.Waiting != 61; s = h.Slots() {
		runtime.Gosched()
	}
	close(gate.open)
	wg.Wait()
	if s := h.Slots(); gate.mostSeen != 3 || s.Peak != 3 || s.InUse != 0 || s.Waiting != 0 || h.Computed() != 64 {
		t.Fatalf("at most %d in the engine at once, slots %+v, %d computed: want 3 at most, all 64 computed", gate.mostSeen, s, h.Computed())
	}
}
