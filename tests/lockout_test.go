package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tokenauth/app"
	"tokenauth/cli"
	"tokenauth/config"
	"tokenauth/models"
	"tokenauth/password"
)

// hashGate holds every password hash of the hashers it makes, once armed,
// until it is opened: the checks of a username then stay in flight for as
// long as a test needs, with no timing involved.
type hashGate struct {
	armed atomic.Bool
	held  chan struct{}
	once  sync.Once
	// holding counts the hashers whose hashes the gate has held.
	holding atomic.Int64
	hashers []*password.Hasher
}

func newHashGate() *hashGate { return &hashGate{held: make(chan struct{})} }

// option builds a server on a hasher of the gate.
func (g *hashGate) option() Option {
	h := password.NewHasher(testPasswordParams, 4)
	// OnBusy runs when a hash is asked for while none runs, holding the
	// hasher's count: blocking there holds every hash of that hasher.
	h.OnBusy(func(busy bool) {
		if busy && g.armed.Load() {
			g.holding.Add(1)
			<-g.held
		}
	})
	g.hashers = append(g.hashers, h)
	return WithApp(app.WithPasswordHasher(h))
}

// arm starts holding hashes. Arm after the servers are built: the gate
// then opens, if the test has not opened it, before the servers shut
// down (cleanups run last first), and no request stays held.
func (g *hashGate) arm(t *testing.T) {
	g.armed.Store(true)
	t.Cleanup(g.open)
}

func (g *hashGate) open() { g.once.Do(func() { close(g.held) }) }

// computed is how many hashes the gate's hashers have run.
func (g *hashGate) computed() uint64 {
	var n uint64
	for _, h := range g.hashers {
		n += h.Computed()
	}
	return n
}

// lockoutSetups are the deployments every lockout test runs on: one
// instance counting in memory and, when this run has Redis, two instances
// sharing Redis and a database (hence the secret key the lockout's keys
// are made with), as a fleet behind a load balancer does.
func lockoutSetups() []struct {
	name  string
	start func(t *testing.T, gate *hashGate, opts ...Option) []*Server
} {
	setups := []struct {
		name  string
		start func(t *testing.T, gate *hashGate, opts ...Option) []*Server
	}{{"memory", func(t *testing.T, gate *hashGate, opts ...Option) []*Server {
		return []*Server{NewServer(t, append(opts, gate.option())...)}
	}}}
	if redisConfigured() {
		setups = append(setups, struct {
			name  string
			start func(t *testing.T, gate *hashGate, opts ...Option) []*Server
		}{"redis, two instances", func(t *testing.T, gate *hashGate, opts ...Option) []*Server {
			first := NewServer(t, append(opts, WithRedis(), gate.option())...)
			second := NewServer(t, append(opts, WithLimitsOf(first), WithDatabaseOf(first), gate.option())...)
			return []*Server{first, second}
		}})
	}
	return setups
}

// loginWaits is how many password checks waited for others in flight, on
// all the servers.
func loginWaits(t *testing.T, servers []*Server) float64 {
	t.Helper()
	var n float64
	for _, s := range servers {
		n += s.scrape(t)["tokenauth_login_waits_total"]
	}
	return n
}

// parallelLogins sends n logins at once, spread over the servers, while
// the gate holds every hash; it opens the gate once every login that will
// not be checked now is either waiting for the checks in flight or
// answered, and returns the answers.
func parallelLogins(t *testing.T, servers []*Server, gate *hashGate, n, inFlight int, username, password string) []*Response {
	t.Helper()
	gate.arm(t)
	responses := make([]*Response, n)
	var (
		wg       sync.WaitGroup
		answered atomic.Int64
	)
	for i := range n {
		wg.Go(func() {
			responses[i] = servers[i%len(servers)].Do(t, login(username, password))
			answered.Add(1)
		})
	}
	rest := float64(n - inFlight)
	waitFor(t, "every login beyond the checks in flight to wait or be answered", func() bool {
		return loginWaits(t, servers)+float64(answered.Load()) >= rest
	})
	gate.open()
	wg.Wait()
	return responses
}

func TestParallelLoginsWithTheRightPasswordAllSucceed(t *testing.T) {
	t.Parallel()
	for _, setup := range lockoutSetups() {
		t.Run(setup.name, func(t *testing.T) {
			t.Parallel()
			const failures, parallel = 5, 20
			gate := newHashGate()
			servers := setup.start(t, gate, withLimits(failures, 15*time.Minute, 1000))
			servers[0].CreateUser(t, "alice", testPassword)
			before := gate.computed()
			responses := parallelLogins(t, servers, gate, parallel, failures, "alice", testPassword)

			tokens := map[string]bool{}
			for i, resp := range responses {
				if resp.Status != http.StatusOK {
					t.Fatalf("login %d of %d: status %d, want 200; body %s", i+1, parallel, resp.Status, resp.Body)
				}
				token, _ := resp.JSON(t)["token"].(string)
				tokens[token] = true
			}
			if len(tokens) != parallel {
				t.Fatalf("%d distinct tokens from %d logins", len(tokens), parallel)
			}
			for token := range tokens {
				for _, s := range servers {
					s.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, http.StatusOK)
				}
			}
			if got := gate.computed() - before; got != parallel {
				t.Errorf("%d password hashes for %d logins, want one each", got, parallel)
			}
			if got := loginWaits(t, servers); got != parallel-failures {
				t.Errorf("%v logins waited, want %d: the ones beyond the budget", got, parallel-failures)
			}
		})
	}
}

func TestParallelWrongGuessesGetNoMoreChecksThanTheBudget(t *testing.T) {
	t.Parallel()
	for _, setup := range lockoutSetups() {
		t.Run(setup.name, func(t *testing.T) {
			t.Parallel()
			const failures, parallel = 5, 20
			gate := newHashGate()
			servers := setup.start(t, gate, withLimits(failures, 15*time.Minute, 1000))
			servers[0].CreateUser(t, "alice", testPassword)
			before := gate.computed()
			responses := parallelLogins(t, servers, gate, parallel, failures, "alice", "a wrong guess")

			statuses := map[int]int{}
			for _, resp := range responses {
				statuses[resp.Status]++
				if resp.Status == http.StatusTooManyRequests {
					expectRateLimited(t, resp, 15*time.Minute)
				}
			}
			if statuses[http.StatusUnauthorized] != failures || statuses[http.StatusTooManyRequests] != parallel-failures {
				t.Errorf("statuses %v, want %d x 401 and the rest 429", statuses, failures)
			}
			if got := gate.computed() - before; got > failures {
				t.Errorf("%d password hashes for %d parallel wrong guesses, want at most %d", got, parallel, failures)
			}
			// The username is locked, on every instance, even for the owner.
			for _, s := range servers {
				expectRateLimited(t, s.Do(t, login("alice", testPassword)), 15*time.Minute)
			}
		})
	}
}

// A login that waits for the checks in flight waits no longer than its
// request may: at REQUEST_TIMEOUT it gets 503, and the checks it waited
// for still end as they would have.
func TestLoginWaitingForChecksInFlightEndsWithItsDeadline(t *testing.T) {
	t.Parallel()
	for _, setup := range lockoutSetups() {
		t.Run(setup.name, func(t *testing.T) {
			t.Parallel()
			gate := newHashGate()
			servers := setup.start(t, gate, withLimits(1, 15*time.Minute, 1000),
				WithConfig(func(c *config.Config) { c.RequestTimeout = time.Second }))
			servers[0].CreateUser(t, "alice", testPassword)
			gate.arm(t)
			held := make(chan *Response, 1)
			go func() { held <- servers[0].Do(t, login("alice", testPassword)) }()
			waitFor(t, "the first login to take the budget", func() bool { return gate.holding.Load() > 0 })
			waiting := servers[len(servers)-1].Do(t, login("alice", testPassword))
			waiting.ExpectError(t, http.StatusServiceUnavailable, "unavailable")
			gate.open()
			// The held check went past its own deadline while held: it
			// either ran (the right password) or gave up waiting for a hash
			// slot (no guess made). Neither is a failure, so the username is
			// free for the next login.
			<-held
			servers[0].Login(t, "alice", testPassword)
		})
	}
}

// A locked username answers after the same work whether an account has it
// or not, so that the time of the 429 does not tell which usernames
// exist: the same statements and no password hash, either way.
func TestLockedUsernamesCostTheSameWhetherTheyExistOrNot(t *testing.T) {
	t.Parallel()
	statements := &statementLog{}
	s := NewServer(t, withLimits(1, 15*time.Minute, 1000), withStatementLog(t, statements))
	alice := s.CreateUser(t, "alice", testPassword)
	for _, name := range []string{"alice", "ghost"} {
		s.Do(t, login(name, "a wrong guess")).ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	}
	type work struct {
		statements []string
		hashes     uint64
	}
	refuse := func(username string) work {
		statements.take()
		hashes := s.Passwords.Computed()
		expectRateLimited(t, s.Do(t, login(username, testPassword)), 15*time.Minute)
		return work{statements.take(), s.Passwords.Computed() - hashes}
	}
	known, unknown := refuse("alice"), refuse("ghost")
	if !slices.Equal(known.statements, unknown.statements) || len(known.statements) == 0 {
		t.Errorf("statements for a locked username\nwith an account: %q\nwithout one:     %q\nwant the same", known.statements, unknown.statements)
	}
	if known.hashes != unknown.hashes {
		t.Errorf("password hashes: %d with an account, %d without one", known.hashes, unknown.hashes)
	}

	// Both refusals are recorded, under the keyed hash of the name; the
	// one without an account has no user.
	var events []models.SecurityEvent
	s.DB.Where("type = ?", models.EventLoginRateLimited).Order("id").Find(&events)
	if len(events) != 2 {
		t.Fatalf("login_rate_limited events: %+v, want 2", events)
	}
	if e := events[0]; e.UserID == nil || *e.UserID != alice.ID || e.UsernameDigest != models.UsernameDigest(s.Keyring.HMAC, "ALICE") {
		t.Errorf("alice's event: %+v", e)
	}
	if e := events[1]; e.UserID != nil || e.UsernameDigest != models.UsernameDigest(s.Keyring.HMAC, "ghost") || e.IP != "127.0.0.1" {
		t.Errorf("ghost's event: %+v, want no user, ghost's digest and the client", e)
	}
	// Nor do they show in anyone's list.
	_, token := s.UserWithToken(t, "bob")
	var page struct {
		Events []map[string]any `json:"events"`
	}
	s.Do(t, Request{Path: "/api/security-events/", Token: token}).Expect(t, http.StatusOK).Decode(t, &page)
	for _, e := range page.Events {
		if e["type"] == models.EventLoginRateLimited {
			t.Errorf("bob sees a login_rate_limited event: %v", e)
		}
	}
}

// The operator's events subcommand shows the refused logins of a username
// that no account has, and a user's own events for one that has.
func TestEventsCommandShowsRefusalsOfUnknownUsernames(t *testing.T) {
	t.Parallel()
	s := NewServer(t, withLimits(1, 15*time.Minute, 1000))
	s.CreateUser(t, "alice", testPassword)
	for _, name := range []string{"alice", "ghost"} {
		s.Do(t, login(name, "a wrong guess")).ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
		expectRateLimited(t, s.Do(t, login(name, testPassword)), 15*time.Minute)
	}
	events := func(username string) (stdout, stderr string, code int) {
		var out, errOut bytes.Buffer
		getenv := func(key string) (string, bool) {
			if key == "DATABASE_URL" {
				return s.Config.DatabaseURL, true
			}
			return "", false
		}
		code = cli.Main(t.Context(), []string{"events", username}, getenv, strings.NewReader(""), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	cases := []struct {
		username  string
		wantCode  int
		wantLines []string // a line of the output holds each, in this order
		wantErr   string
	}{
		{"alice", 0, []string{"login_rate_limited", "login_failed"}, ""},
		{"GHOST", 0, []string{"login_rate_limited"}, `no user named "GHOST"`},
		{"nobody", 1, nil, `no user named "nobody", and no events for that name`},
	}
	for _, tc := range cases {
		stdout, stderr, code := events(tc.username)
		if code != tc.wantCode || !strings.Contains(stderr, tc.wantErr) {
			t.Errorf("events %s: exit %d, stderr %q; want %d and %q", tc.username, code, stderr, tc.wantCode, tc.wantErr)
			continue
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if tc.wantLines == nil {
			if stdout != "" {
				t.Errorf("events %s printed %q", tc.username, stdout)
			}
			continue
		}
		if len(lines) != len(tc.wantLines)+1 {
			t.Errorf("events %s: %q, want a header and %d event(s)", tc.username, stdout, len(tc.wantLines))
			continue
		}
		for i, want := range tc.wantLines {
			if !strings.Contains(lines[i+1], want) || !strings.Contains(lines[i+1], "127.0.0.1") {
				t.Errorf("events %s, line %d: %q, want %s from 127.0.0.1", tc.username, i+1, lines[i+1], want)
			}
		}
	}
}

// The lockout's keys in Redis are keyed hashes of the usernames: neither
// the name nor its plain SHA-256 (which a dictionary reverses, and a
// username field sometimes holds a password) is written there.
func TestRedisLockoutKeysAreKeyedHashes(t *testing.T) {
	t.Parallel()
	if !redisConfigured() {
		t.Skip("no TEST_REDIS_URL: this is a test of the Redis lockout only")
	}
	s := NewServer(t, WithRedis(), withLimits(3, 15*time.Minute, 1000))
	s.CreateUser(t, "alice", testPassword)
	typed := []string{"alice", "Correct Horse Battery Staple"}
	for _, name := range typed {
		s.Do(t, login(name, "a wrong guess")).ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	}
	var keys []string
	iter := s.Redis.Scan(t.Context(), 0, s.RedisPrefix+"*", 100).Iterator()
	for iter.Next(t.Context()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(keys, "\n")
	for _, name := range typed {
		for _, plain := range []string{name, models.UsernameKey(name), sha256Hex(name), sha256Hex(models.UsernameKey(name))} {
			if strings.Contains(strings.ToLower(all), strings.ToLower(plain)) {
				t.Errorf("a Redis key holds %q, made from %q without the secret key: %s", plain, name, all)
			}
		}
		if digest := models.UsernameDigest(s.Keyring.HMAC, name); !strings.Contains(all, digest) {
			t.Errorf("no key holds the keyed hash of %q (%s): %s", name, digest, all)
		}
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
