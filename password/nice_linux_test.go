package password

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// niceOf reads the nice value of a thread from /proc (field 19 of stat).
func niceOf(t *testing.T, statPath string) int {
	t.Helper()
	data, err := os.ReadFile(statPath)
	if err != nil {
		t.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces: count after it.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	n, err := strconv.Atoi(fields[16]) // field 19 of the whole line
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Every thread of the worker, those argon2 computes on included, runs
// WorkerNice below the service's priority, and the service's own threads
// keep theirs.
func TestWorkerThreadsRunAtALowerPriority(t *testing.T) {
	t.Parallel()
	w := newTestWorker(t)
	h := NewHasher(Params{Memory: 1024, Time: 1, Threads: 4}, 4, WithEngine(w))
	for range 4 { // several hashes of four lanes each: argon2 starts goroutines, the runtime threads
		if _, err := h.Hash(t.Context(), "a passphrase"); err != nil {
			t.Fatal(err)
		}
	}
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := min(20-prio+WorkerNice, 19)
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(w.PID()), "task", "*", "stat"))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of the worker: %v %v", tasks, err)
	}
	for _, task := range tasks {
		if got := niceOf(t, task); got != want {
			t.Errorf("%s: nice %d, want %d", task, got, want)
		}
	}
	own, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range own {
		// A thread may end between the listing and the read.
		if _, err := os.Stat(task); err == nil {
			if got := niceOf(t, task); got == want && want != 20-prio {
				t.Errorf("%s of this process (%d): nice %d, the worker's: the service lowered its own priority", task, os.Getpid(), got)
			}
		}
	}
}
