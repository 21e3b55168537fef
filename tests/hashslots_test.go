package tests

import (
	"context"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"tokenauth/app"
	"tokenauth/config"
	"tokenauth/models"
	"tokenauth/password"
)

// hashWorkerEnv, when set, makes the test binary serve as a password-hash
// worker (TestMain), as the service's binary does for serve.
const hashWorkerEnv = "TOKENAUTH_TEST_HASH_WORKER"

// WithHashWorker hashes in a worker process, this test binary, as serve
// does in a copy of the service's binary, with size slots.
func WithHashWorker(t *testing.T, size int) Option {
	worker := password.NewWorker(os.Args[0], nil, append(os.Environ(), hashWorkerEnv+"=1"))
	t.Cleanup(func() { worker.Close() })
	return WithApp(app.WithPasswordHasher(password.NewHasher(testPasswordParams, size, password.WithEngine(worker))))
}

// slotGate is a password-hash engine that holds every hash until opened,
// and counts the hashes inside it at once: a test can fill every slot and
// keep them busy as long as it needs, without timing anything.
type slotGate struct {
	open             chan struct{}
	once             sync.Once
	mu               sync.Mutex
	inside, mostSeen int
}

func newSlotGate() *slotGate { return &slotGate{open: make(chan struct{})} }

// openAtCleanup opens the gate when the test ends. Call it after building
// the server: cleanups run last first, so the gate opens before the server
// shuts down, and no request stays held.
func (g *slotGate) openAtCleanup(t *testing.T) { t.Cleanup(g.release) }

func (g *slotGate) release() { g.once.Do(func() { close(g.open) }) }

// hasher returns a hasher of size slots that hashes through the gate.
func (g *slotGate) hasher(size int, opts ...password.HasherOption) *password.Hasher {
	return password.NewHasher(testPasswordParams, size, append(opts, password.WithEngine(g))...)
}

func (g *slotGate) enter() {
	g.mu.Lock()
	g.inside++
	g.mostSeen = max(g.mostSeen, g.inside)
	g.mu.Unlock()
	<-g.open
}

func (g *slotGate) leave() {
	g.mu.Lock()
	g.inside--
	g.mu.Unlock()
}

func (g *slotGate) counts() (inside, mostSeen int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inside, g.mostSeen
}

func (g *slotGate) Key(ctx context.Context, plain, salt []byte, p password.Params, keyLen uint32) ([]byte, error) {
	g.enter()
	defer g.leave()
	return password.Local{}.Key(ctx, plain, salt, p, keyLen)
}

func (g *slotGate) CheckImported(ctx context.Context, plain, encoded string) (bool, error) {
	g.enter()
	defer g.leave()
	return password.Local{}.CheckImported(ctx, plain, encoded)
}

// createUngated creates a user with testPassword, hashed beside the
// server's hasher (with its parameters), so that a closed gate does not
// hold it.
func createUngated(t *testing.T, s *Server, username string) *models.User {
	t.Helper()
	return s.createUserHashedBy(t, password.NewHasher(testPasswordParams, 1), username, testPassword)
}

// noLoginLimits lets one client log one user in as often as a test needs.
func noLoginLimits(c *config.Config) {
	c.LoginIPPerMinute, c.LoginUserFailures = 1000000, 1000
}

// 64 logins at once never run more hashes at once than there are slots:
// the rest wait, and all get in.
func TestHashSlotsAreNeverExceeded(t *testing.T) {
	t.Parallel()
	gate := newSlotGate()
	hasher := gate.hasher(2)
	s := NewServer(t, WithConfig(noLoginLimits), WithApp(app.WithPasswordHasher(hasher)))
	gate.openAtCleanup(t)
	createUngated(t, s, "alice")
	statuses := make(chan int, 64)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() { statuses <- s.Do(t, login("alice", testPassword)).Status })
	}
	// Every login is in: two hold the slots, inside the gate, and 62 wait
	// for one.
	waitFor(t, "64 logins to reach the hasher", func() bool {
		sl := hasher.Slots()
		return sl.InUse == 2 && sl.Waiting == 62
	})
	if inside, _ := gate.counts(); inside != 2 {
		t.Errorf("hashes running while 62 wait: %d, want the 2 slots' worth", inside)
	}
	gate.release()
	wg.Wait()
	close(statuses)
	for status := range statuses {
		if status != http.StatusOK {
			t.Errorf("login: got %d, want 200 (each waits for a slot)", status)
		}
	}
	if _, most := gate.counts(); most != 2 {
		t.Errorf("hashes running at once: at most %d, want 2", most)
	}
	if sl := hasher.Slots(); sl.Peak != 2 || sl.Overloaded != 0 {
		t.Errorf("slots %+v: want a peak of 2 and none refused", sl)
	}
}

// A login that cannot get a slot within the queue timeout is refused with
// 503 overloaded and Retry-After, having compared no password: it counts
// no failure against the username, and the metrics count it.
func TestLoginRefusedAsOverloadedWhenNoSlotFrees(t *testing.T) {
	t.Parallel()
	gate := newSlotGate()
	// The one slot stays taken by a login held in the gate; the next
	// waits the queue timeout (1ms, so that the test does not wait) for it.
	hasher := gate.hasher(1, password.WithQueueTimeout(time.Millisecond))
	s := NewServer(t, WithConfig(func(c *config.Config) { c.LoginIPPerMinute, c.LoginUserFailures = 1000000, 2 }),
		WithApp(app.WithPasswordHasher(hasher)))
	gate.openAtCleanup(t)
	createUngated(t, s, "alice")
	held := make(chan *Response, 1)
	go func() { held <- s.Do(t, login("alice", testPassword)) }()
	waitFor(t, "the first login to take the slot", func() bool { inside, _ := gate.counts(); return inside == 1 })

	for _, plain := range []string{testPassword, "a wrong guess"} {
		resp := s.Do(t, login("alice", plain))
		resp.ExpectError(t, http.StatusServiceUnavailable, "overloaded")
		if got := resp.Header.Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After: got %q, want 1 (the queue timeout, rounded up to a second)", got)
		}
	}
	expectSample(t, s.scrape(t), "tokenauth_password_hash_overloaded_total", 2)
	gate.release()
	(<-held).Expect(t, http.StatusOK)
	// LOGIN_USER_FAILURES is 2: had the two refused attempts counted as
	// failures, the username would be locked now.
	s.Do(t, login("alice", testPassword)).Expect(t, http.StatusOK)
}

// While every slot is busy with a login, a request that checks no
// password is answered: it never waits behind a hash.
func TestAuthenticatedRequestsAreServedWhileEverySlotIsBusy(t *testing.T) {
	t.Parallel()
	gate := newSlotGate()
	hasher := gate.hasher(2)
	s := NewServer(t, WithConfig(noLoginLimits), WithApp(app.WithPasswordHasher(hasher)))
	gate.openAtCleanup(t)
	user := createUngated(t, s, "alice")
	token := s.IssueToken(t, user)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { s.Do(t, login("alice", testPassword)).Expect(t, http.StatusOK) })
	}
	waitFor(t, "every slot to be busy and two logins to wait", func() bool {
		sl := hasher.Slots()
		return sl.InUse == 2 && sl.Waiting == 2
	})
	s.Do(t, Request{Method: "GET", Path: "/api/profile/", Token: token}).Expect(t, http.StatusOK)
	s.Do(t, Request{Method: "GET", Path: "/api/tokens/", Token: token}).Expect(t, http.StatusOK)
	if sl := hasher.Slots(); sl.InUse != 2 || sl.Waiting != 2 {
		t.Errorf("slots after the requests: %+v, want still 2 busy and 2 waiting", sl)
	}
	gate.release()
	wg.Wait()
}

// Twenty devices of one user logging in at once through the hash worker,
// on the default number of slots (one on 2 cores), all get in: the logins
// wait their turn within the queue timeout.
func TestTwentyParallelLoginsOfOneUserThroughTheWorker(t *testing.T) {
	t.Parallel()
	slots := config.Default().PasswordHashConcurrency
	s := NewServer(t, WithConfig(func(c *config.Config) { c.LoginIPPerMinute = 1000 }), WithHashWorker(t, slots))
	s.CreateUser(t, "alice", testPassword)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { s.Login(t, "alice", testPassword) })
	}
	wg.Wait()
	if sl := s.Passwords.Slots(); sl.Peak > int64(slots) || sl.Overloaded != 0 {
		t.Errorf("slots %+v: want at most %d at once and none refused", sl, slots)
	}
}
