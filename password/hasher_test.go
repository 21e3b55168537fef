package password

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
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
