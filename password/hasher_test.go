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
