package password

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// workerEnv, when set, makes the test binary serve as a hash worker
// (TestMain) instead of running tests: the same role the service's binary
// plays with WorkerCommand.
const workerEnv = "TOKENAUTH_TEST_HASH_WORKER"

func TestMain(m *testing.M) {
	switch os.Getenv(workerEnv) {
	case "":
	case "exit":
		os.Exit(3)
	default:
		if err := ServeWorker(os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// newTestWorker returns a worker that runs this test binary as the child,
// closed when the test ends.
func newTestWorker(t *testing.T) *Worker {
	t.Helper()
	w := NewWorker(os.Args[0], nil, append(os.Environ(), workerEnv+"=1"))
	t.Cleanup(func() { w.Close() })
	return w
}

var cheap = Params{Memory: 64, Time: 1, Threads: 1}

// Hashes made in the worker verify in this process and the other way
// round, and the worker checks imported Django hashes too.
func TestWorkerComputesWhatLocalDoes(t *testing.T) {
	t.Parallel()
	worker := NewHasher(cheap, 2, WithEngine(newTestWorker(t)))
	local := NewHasher(cheap, 2)
	fromWorker, err := worker.Hash(t.Context(), "a sturdy passphrase")
	if err != nil {
		t.Fatal(err)
	}
	fromLocal, err := local.Hash(t.Context(), "a sturdy passphrase")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		h       *Hasher
		encoded string
	}{{"worker's hash, checked here", local, fromWorker}, {"local hash, checked in the worker", worker, fromLocal}} {
		if ok, _, err := tc.h.Verify(t.Context(), "a sturdy passphrase", tc.encoded); !ok || err != nil {
			t.Errorf("%s, right password: ok=%v err=%v, want a match", tc.name, ok, err)
		}
		if ok, _, err := tc.h.Verify(t.Context(), "a sturdy passphrasE", tc.encoded); ok || err != nil {
			t.Errorf("%s, wrong password: ok=%v err=%v, want no match", tc.name, ok, err)
		}
	}
	imported := "pbkdf2_sha256$1000$Hk8BP8YCewbocEO7QAXzAd$/JVmFI92lXPludTgsnRv/Rdns7TMNnzsXw1HDnf+rw0="
	if ok, stale, err := worker.Verify(t.Context(), djangoPassword, imported); !ok || !stale || err != nil {
		t.Errorf("imported hash in the worker, right password: ok=%v stale=%v err=%v, want ok, stale", ok, stale, err)
	}
	if ok, _, err := worker.Verify(t.Context(), "wrong", imported); ok || err != nil {
		t.Errorf("imported hash in the worker, wrong password: ok=%v err=%v, want no match", ok, err)
	}
}

// Many hashes at once share the one child, each answer reaching its own
// request.
func TestWorkerAnswersConcurrentHashesEachToItsOwn(t *testing.T) {
	t.Parallel()
	worker := NewHasher(cheap, 8, WithEngine(newTestWorker(t)))
	local := NewHasher(cheap, 8)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			plain := strings.Repeat("x", i+10)
			encoded, err := worker.Hash(t.Context(), plain)
			if err != nil {
				t.Error(err)
				return
			}
			if ok, _, err := local.Verify(t.Context(), plain, encoded); !ok || err != nil {
				t.Errorf("hash %d does not verify: ok=%v err=%v", i, ok, err)
			}
		})
	}
	wg.Wait()
}

// A child that dies is replaced at the next hash.
func TestWorkerIsReplacedAfterItDies(t *testing.T) {
	t.Parallel()
	w := newTestWorker(t)
	h := NewHasher(cheap, 1, WithEngine(w))
	if _, err := h.Hash(t.Context(), "a passphrase"); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	first := w.proc
	w.mu.Unlock()
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	if _, err := h.Hash(t.Context(), "a passphrase"); err != nil {
		t.Fatalf("hash after the child died: %v, want a new child to compute it", err)
	}
	if pid := w.PID(); pid == 0 || pid == first.cmd.Process.Pid {
		t.Fatalf("child pid %d after the first (%d) died: want a new one", pid, first.cmd.Process.Pid)
	}
}

// A request sent to a child that has ended fails with ErrWorker, which
// the service answers with 503 unavailable.
func TestWorkerFailsARequestTheChildCannotAnswer(t *testing.T) {
	t.Parallel()
	w := NewWorker(os.Args[0], nil, append(os.Environ(), workerEnv+"=exit")) // exits at once
	t.Cleanup(func() { w.Close() })
	_, err := NewHasher(cheap, 1, WithEngine(w)).Hash(t.Context(), "a passphrase")
	if !errors.Is(err, ErrWorker) {
		t.Fatalf("hash in a child that exits at once: %v, want ErrWorker", err)
	}
}

// A worker that cannot start says so.
func TestWorkerThatCannotStart(t *testing.T) {
	t.Parallel()
	w := NewWorker("/nonexistent/tokenauth", nil, nil)
	if err := w.Start(); !errors.Is(err, ErrWorker) || !errors.Is(err, exec.ErrNotFound) && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("start: %v, want ErrWorker naming the missing file", err)
	}
}

// A worker starts no worker of its own: a binary that does not know
// WorkerCommand would otherwise start itself again and again.
func TestSelfWorkerRefusesInsideAWorker(t *testing.T) {
	t.Setenv(workerMark, "1")
	if _, err := SelfWorker(nil); !errors.Is(err, ErrWorker) {
		t.Fatalf("SelfWorker inside a worker: %v, want ErrWorker", err)
	}
}
