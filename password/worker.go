package password

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// WorkerNice is how much lower than the service's the worker's CPU
// priority is (its nice value, added to the service's). At 10 the kernel
// gives a runnable request handler about ten times the CPU of a hash when
// both want it, and the hashes all the CPU nobody else wants.
const WorkerNice = 10

// ErrWorker is returned when the worker process failed or ended while a
// hash was in it. The next hash starts a new one.
var ErrWorker = errors.New("the password-hash worker process failed")

// WorkerCommand is the argument that makes the service's binary serve as
// its own hash worker (ServeWorker on its stdin and stdout).
const WorkerCommand = "password-hash-worker"

// workerMark is set in the environment of every worker SelfWorker starts.
const workerMark = "TOKENAUTH_PASSWORD_HASH_WORKER"

// workerRequest is one computation asked of the worker: an argon2id key
// (Encoded empty) or the check of an imported hash (Encoded set).
type workerRequest struct {
	ID       uint64
	Password []byte
	Salt     []byte
	Params   Params
	KeyLen   uint32
	Encoded  string
}

// workerResponse answers the request of the same ID.
type workerResponse struct {
	ID  uint64
	Key []byte
	OK  bool
	Err string
}

// ServeWorker lowers this process's CPU priority by WorkerNice, then
// answers the requests a Worker sends on r, each computed in a goroutine
// of its own (the Worker bounds how many it sends at once), and writes the
// answers to w, until r ends.
func ServeWorker(r io.Reader, w io.Writer) error {
	if err := lowerPriority(WorkerNice); err != nil {
		return fmt.Errorf("lowering the worker's priority: %w", err)
	}
	dec, enc := gob.NewDecoder(r), gob.NewEncoder(w)
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		writeErr error
	)
	defer wg.Wait()
	for {
		var req workerRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading a request: %w", err)
		}
		wg.Go(func() {
			resp := compute(req)
			mu.Lock()
			defer mu.Unlock()
			if writeErr == nil {
				writeErr = enc.Encode(resp)
			}
		})
	}
}

// compute runs one request. The parameters come from the service, which
// bounds them (withinLimits); the worker refuses what is beyond them too,
// so that no request can make it take unbounded memory.
func compute(req workerRequest) workerResponse {
	resp := workerResponse{ID: req.ID}
	switch {
	case req.Encoded != "":
		resp.OK, _ = Local{}.CheckImported(context.Background(), string(req.Password), req.Encoded)
	case req.Params.Memory == 0 || req.Params.Time == 0 || req.Params.Threads == 0 || !withinLimits(req.Params) ||
		req.KeyLen == 0 || req.KeyLen > 1024:
		resp.Err = fmt.Sprintf("argon2id parameters out of bounds: %+v, key of %d bytes", req.Params, req.KeyLen)
	default:
		resp.Key = argon2.IDKey(req.Password, req.Salt, req.Params.Time, req.Params.Memory, req.Params.Threads, req.KeyLen)
	}
	return resp
}

// Worker is the Engine that computes in a child process at a lower CPU
// priority (WorkerNice). golang.org/x/crypto/argon2 computes in goroutines
// it starts, on whichever threads the runtime picks, so a lowered priority
// holds only for a process whose every thread has it: the child lowers
// its own, every thread of it, before it computes anything.
//
// The child is this binary run with WorkerCommand (or any command that
// calls ServeWorker); it ends when its stdin closes. One child runs every
// hash, each in a goroutine; a child that fails is replaced at the next
// hash.
type Worker struct {
	path string
	name string // the child's argv[0]; path when empty
	args []string
	env  []string

	mu     sync.Mutex
	proc   *workerProc
	nextID uint64
	closed bool
}

// NewWorker returns a Worker that runs path with args and env (nil: this
// process's environment). It starts no process until Start or the first
// hash.
func NewWorker(path string, args, env []string) *Worker {
	return &Worker{path: path, args: args, env: env}
}

// SelfWorker returns a Worker that runs this process's own binary as the
// worker (WorkerCommand), with env added to the Go runtime's settings of
// this process's environment (GOGC, GOMEMLIMIT, GODEBUG, ...): the worker
// reads no other setting, so it is given none of them, secrets included.
// It runs the binary that is running, even if the file it came from has
// since been replaced.
func SelfWorker(env []string) (*Worker, error) {
	// A binary that does not know WorkerCommand (a test binary that runs
	// serve, whose /proc/self/exe is itself) would run as something else,
	// and start a worker of its own in turn: the mark stops the second.
	if os.Getenv(workerMark) != "" {
		return nil, fmt.Errorf("%w: this process is a password-hash worker; it starts none", ErrWorker)
	}
	path := "/proc/self/exe"
	if _, err := os.Stat(path); err != nil {
		if path, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("finding this program to run as the password-hash worker: %w", err)
		}
	}
	var runtimeEnv []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GO") {
			runtimeEnv = append(runtimeEnv, kv)
		}
	}
	w := NewWorker(path, []string{WorkerCommand}, append(append(runtimeEnv, workerMark+"=1"), env...))
	// Named as the service in ps and top, not as /proc/self/exe.
	w.name = os.Args[0]
	return w, nil
}

// Start starts the child process now, so that a failure to start it stops
// the service at start-up rather than failing its first login.
func (w *Worker) Start() error {
	_, err := w.current()
	return err
}

// PID is the child process's id, 0 when none runs.
func (w *Worker) PID() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.proc == nil {
		return 0
	}
	return w.proc.cmd.Process.Pid
}

// Close ends the child process: it finishes the hashes it holds, then
// exits. A hash asked for after Close fails.
func (w *Worker) Close() error {
	w.mu.Lock()
	w.closed = true
	p := w.proc
	w.proc = nil
	w.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

// Key computes the key in the child.
func (w *Worker) Key(ctx context.Context, password, salt []byte, p Params, keyLen uint32) ([]byte, error) {
	resp, err := w.do(workerRequest{Password: password, Salt: salt, Params: p, KeyLen: keyLen})
	if err != nil {
		return nil, err
	}
	if resp.Err != "" {
		return nil, fmt.Errorf("%w: %s", ErrWorker, resp.Err)
	}
	return resp.Key, nil
}

// CheckImported checks the password in the child.
func (w *Worker) CheckImported(ctx context.Context, password, encoded string) (bool, error) {
	resp, err := w.do(workerRequest{Password: []byte(password), Encoded: encoded})
	return resp.OK, err
}

// do sends req to the child and waits for its answer. It waits even when
// the request's context ends: the child computes the hash either way, and
// the slot it holds must stay taken until it is done, or the hasher would
// bound nothing.
func (w *Worker) do(req workerRequest) (workerResponse, error) {
	p, err := w.current()
	if err != nil {
		return workerResponse{}, err
	}
	w.mu.Lock()
	w.nextID++
	req.ID = w.nextID
	w.mu.Unlock()
	answer := make(chan workerResponse, 1)
	if err := p.send(req, answer); err != nil {
		w.forget(p)
		return workerResponse{}, err
	}
	resp, ok := <-answer
	if !ok {
		w.forget(p)
		return workerResponse{}, fmt.Errorf("%w: %w", ErrWorker, p.failure())
	}
	return resp, nil
}

// current returns the running child, starting one if none runs.
func (w *Worker) current() (*workerProc, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, fmt.Errorf("%w: closed", ErrWorker)
	}
	if w.proc != nil && !w.proc.ended() {
		return w.proc, nil
	}
	p, err := startWorkerProc(w.path, w.name, w.args, w.env)
	if err != nil {
		return nil, fmt.Errorf("%w: starting %s: %w", ErrWorker, w.path, err)
	}
	w.proc = p
	return p, nil
}

// forget drops p if it is still the current child, so that the next hash
// starts another.
func (w *Worker) forget(p *workerProc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.proc == p {
		w.proc = nil
		_ = p.stdin.Close()
	}
}

// workerProc is one child process and the hashes it holds.
type workerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed once the child has exited and been reaped

	mu      sync.Mutex
	enc     *gob.Encoder
	pending map[uint64]chan workerResponse
	err     error // why it ended, once it has
}

func startWorkerProc(path, name string, args, env []string) (*workerProc, error) {
	cmd := exec.Command(path, args...)
	if name != "" {
		cmd.Args[0] = name
	}
	cmd.Env = env
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &workerProc{cmd: cmd, stdin: stdin, done: make(chan struct{}), enc: gob.NewEncoder(stdin),
		pending: map[uint64]chan workerResponse{}}
	go p.read(stdout)
	return p, nil
}

// send registers answer for req and sends req.
func (p *workerProc) send(req workerRequest, answer chan workerResponse) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return fmt.Errorf("%w: %w", ErrWorker, p.err)
	}
	p.pending[req.ID] = answer
	if err := p.enc.Encode(req); err != nil {
		delete(p.pending, req.ID)
		return fmt.Errorf("%w: sending a request: %w", ErrWorker, err)
	}
	return nil
}

// read hands each answer to its request until the child's stdout ends,
// then fails the requests still waiting and reaps the child.
func (p *workerProc) read(stdout io.Reader) {
	dec := gob.NewDecoder(stdout)
	var err error
	for {
		var resp workerResponse
		if err = dec.Decode(&resp); err != nil {
			break
		}
		p.mu.Lock()
		answer := p.pending[resp.ID]
		delete(p.pending, resp.ID)
		p.mu.Unlock()
		if answer != nil {
			answer <- resp
		}
	}
	waitErr := p.cmd.Wait()
	p.mu.Lock()
	p.err = fmt.Errorf("the worker process ended (%v) after %w", waitErr, err)
	for id, answer := range p.pending {
		close(answer)
		delete(p.pending, id)
	}
	p.mu.Unlock()
	close(p.done)
}

func (p *workerProc) ended() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err != nil
}

func (p *workerProc) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		return errors.New("no answer")
	}
	return p.err
}
