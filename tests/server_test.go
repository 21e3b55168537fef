// Package tests drives tokenauth over HTTP: the real router, served by a
// real http.Server, on a fresh database per test. The database is SQLite
// unless TEST_DATABASE_URL names a PostgreSQL server, where each test gets
// its own schema, dropped afterwards.
package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"tokenauth/app"
	"tokenauth/auth"
	"tokenauth/config"
	"tokenauth/internal/testdb"
	"tokenauth/models"
	"tokenauth/password"
	"tokenauth/routes"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	// The test binary serves as the service in another process for tests
	// that kill one (see serveChild).
	if os.Getenv(childEnv) != "" {
		os.Exit(serveChild())
	}
	// ...and as the password-hash worker of a server built WithHashWorker.
	if os.Getenv(hashWorkerEnv) != "" {
		if err := password.ServeWorker(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testPasswordParams make hashing cheap in tests; one test checks that the
// production parameters replace them on login.
var testPasswordParams = password.Params{Memory: 64, Time: 1, Threads: 1}

// Server is the service under test: the application as the serve command
// builds it, served on a loopback port.
type Server struct {
	*app.App
	URL string
	// MetricsURL is the listener of the metrics (METRICS_ADDR in serve),
	// on a loopback port of its own.
	MetricsURL string
	// Redis holds the login limits when the server was built WithRedis,
	// under keys starting with RedisPrefix.
	Redis       *redis.Client
	RedisPrefix string
	// Logs holds everything the service logged.
	Logs     *syncBuffer
	client   *http.Client
	contract *contract
	dbSwitch *databaseSwitch
}

// Option changes how NewServer builds the service.
type Option func(*serverSetup)

type serverSetup struct {
	cfg      config.Config
	routes   func(*gin.Engine)
	dbSwitch bool
	// redisPrefix, when set, is the key prefix of another test server, so
	// that the two share their login limits as two instances do.
	redisPrefix string
	// unreachableRedis points the limits at a Redis that is not there.
	unreachableRedis bool
	feed             func(*auth.ChangeFeed)
	quiet            bool
	appOptions       []app.Option
	// specPaths are entries of docs/openapi.yaml's paths for the
	// resources a test adds.
	specPaths string
	// beforeStart runs on the built app before its background work
	// starts, for what must not race with it (such as GORM callbacks).
	beforeStart []func(*app.App)
}

// WithConfig changes the configuration before the service is built.
func WithConfig(change func(*config.Config)) Option {
	return func(s *serverSetup) { change(&s.cfg) }
}

// WithRedis keeps the login limits in the Redis of TEST_REDIS_URL, under a
// key prefix of the test's own.
func WithRedis() Option {
	return func(s *serverSetup) { s.cfg.RedisURL = testRedisURL() }
}

// WithUnreachableRedis keeps the login limits in a Redis that is not
// there, as when Redis goes down under a running service.
func WithUnreachableRedis() Option {
	return func(s *serverSetup) {
		s.cfg.RedisURL = "redis://127.0.0.1:1/0"
		s.unreachableRedis = true
	}
}

// WithLimitsOf keeps the login limits in the same Redis keys as other,
// as a second instance of the service would. The username lockout's keys
// are made with the server's secret key: to share them, an instance
// shares other's database too (WithDatabaseOf), or the same SECRET_KEY.
func WithLimitsOf(other *Server) Option {
	return func(s *serverSetup) {
		s.cfg.RedisURL = other.Config.RedisURL
		s.redisPrefix = other.RedisPrefix
	}
}

// WithRoutes adds routes to the router, for tests that need a handler the
// service does not have (such as one that panics).
func WithRoutes(add func(*gin.Engine)) Option {
	return func(s *serverSetup) { s.routes = add }
}

// WithDatabaseOf serves a second instance of the service on the database
// of other, as several instances share one database in production.
func WithDatabaseOf(other *Server) Option {
	return func(s *serverSetup) { s.cfg.DatabaseURL = other.Config.DatabaseURL }
}

// WithChangeFeed changes the feed of changes before it starts, for tests
// that interfere with it.
func WithChangeFeed(change func(*auth.ChangeFeed)) Option {
	return func(s *serverSetup) { s.feed = change }
}

// WithApp passes options to app.New, such as a clock or a resource.
func WithApp(opts ...app.Option) Option {
	return func(s *serverSetup) { s.appOptions = append(s.appOptions, opts...) }
}

// WithResource serves a resource the service does not have, described by
// specPaths: entries of docs/openapi.yaml's paths, as the resource would
// add them there (docs/EXTENDING.md).
func WithResource(resource routes.Resource, specPaths string) Option {
	return func(s *serverSetup) {
		s.appOptions = append(s.appOptions, app.WithResources(resource))
		s.specPaths += specPaths
	}
}

// withBeforeStart runs f on the built app before its background work
// starts: registering GORM callbacks later races with the change feed's
// statements.
func withBeforeStart(f func(*app.App)) Option {
	return func(s *serverSetup) { s.beforeStart = append(s.beforeStart, f) }
}

// withoutLogs discards what the service logs, for benchmarks.
func withoutLogs() Option {
	return func(s *serverSetup) { s.quiet = true }
}

// NewServer builds the service on a fresh database with app.New, as the
// serve command does, and serves it on a loopback port until the test ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	setup := serverSetup{cfg: config.Default()}
	setup.cfg.DatabaseURL = testdb.URL(t)
	// Throttling has its own tests, which set these; the rest of the suite
	// logs in as often as it needs.
	setup.cfg.LoginIPPerMinute = 1000000
	setup.cfg.LoginUserFailures = 1000000
	for _, opt := range opts {
		opt(&setup)
	}
	var dbSwitch *databaseSwitch
	if setup.dbSwitch && config.IsPostgres(setup.cfg.DatabaseURL) {
		dbSwitch = newProxySwitch(t, &setup.cfg.DatabaseURL)
	}
	database, err := config.OpenDatabase(setup.cfg.DatabaseURL)
	if err != nil {
		t.Fatalf("opening the test database: %v", err)
	}
	t.Cleanup(func() { database.Close() })
	if err := config.Migrate(database.ORM); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	if setup.dbSwitch && dbSwitch == nil {
		dbSwitch = newGateSwitch(t, database.ORM)
	}
	appOptions := []app.Option{app.WithPasswordHasher(password.NewHasher(testPasswordParams, 4))}
	var rdb *redis.Client
	var redisPrefix string
	switch {
	case setup.unreachableRedis:
		rdb, redisPrefix = redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1}), "unreachable:"
		t.Cleanup(func() { rdb.Close() })
	case setup.cfg.RedisURL != "":
		rdb, redisPrefix = testRedis(t, setup.cfg.RedisURL, setup.redisPrefix)
	}
	if rdb != nil {
		appOptions = append(appOptions, app.WithRedis(rdb, redisPrefix))
	}
	logs := &syncBuffer{}
	var logOut io.Writer = logs
	if setup.quiet {
		logOut = io.Discard
	}
	logger := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(t.Context(), setup.cfg, database, logger, append(appOptions, setup.appOptions...)...)
	if err != nil {
		t.Fatalf("building the app: %v", err)
	}
	if setup.feed != nil {
		setup.feed(a.Feed)
	}
	for _, f := range setup.beforeStart {
		f(a)
	}
	if setup.routes != nil {
		setup.routes(a.Router)
	}
	a.Start(context.Background())
	t.Cleanup(a.Shutdown)
	if setup.cfg.TokenCacheTTL > 0 {
		waitFor(t, "the token cache to come on", func() bool { return a.Resolver.Stats().CacheEnabled })
	}
	// The outbox's first look runs at start; waiting for it keeps it out of
	// what a test counts (statements) or changes (GORM's callbacks) next.
	waitFor(t, "the outbox's first look", a.Mail.Started)
	waitFor(t, "the webhooks' first look", a.Webhooks.Started)
	waitFor(t, "the expiry notices' first look", a.Expiry.Started)
	ts := httptest.NewUnstartedServer(a.Router)
	ts.Config = routes.NewHTTPServer(setup.cfg, a.Router, nil)
	ts.Start()
	t.Cleanup(ts.Close)
	metrics := httptest.NewServer(a.MetricsHandler())
	t.Cleanup(metrics.Close)
	s := &Server{App: a, URL: ts.URL, MetricsURL: metrics.URL, Logs: logs, client: ts.Client(), dbSwitch: dbSwitch,
		Redis: rdb, RedisPrefix: redisPrefix}
	// The contract is the spec the service serves, with the paths of the
	// resources a test added.
	_, _, served := s.send(t, Request{Path: "/api/openapi.yaml"})
	if served.Status != http.StatusOK {
		t.Fatalf("GET /api/openapi.yaml: %d", served.Status)
	}
	spec, err := loadContract(withSpecPaths(t, served.Body, setup.specPaths))
	if err != nil {
		t.Fatal(err)
	}
	s.contract = spec
	return s
}

// redisConfigured tells whether this run has a Redis for the tests
// (TEST_REDIS_URL), as TEST_DATABASE_URL tells whether it has PostgreSQL.
func redisConfigured() bool { return os.Getenv("TEST_REDIS_URL") != "" }

func testRedisURL() string { return os.Getenv("TEST_REDIS_URL") }

// testRedis connects to Redis and returns a key prefix of the test's own
// (or prefix, shared with another server), whose keys are deleted when the
// test ends. Redis belongs to the test setup like PostgreSQL: when it
// cannot be reached the test fails.
func testRedis(t testing.TB, url, prefix string) (*redis.Client, string) {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("Redis URL: %v", err)
	}
	client := redis.NewClient(opts)
	if err := client.Ping(t.Context()).Err(); err != nil {
		client.Close()
		t.Fatalf("Redis at %s is not reachable (start it: redis-server --daemonize yes): %v", url, err)
	}
	if prefix == "" {
		prefix = "tokenauth-test:" + randomHex(8) + ":"
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, pattern := range []string{prefix + "*", "rate:" + prefix + "*"} {
			iter := client.Scan(ctx, 0, pattern, 100).Iterator()
			for iter.Next(ctx) {
				client.Del(ctx, iter.Val())
			}
		}
		client.Close()
	})
	return client, prefix
}

// randomHex returns n random bytes in hex, for names and secrets no other
// test uses.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail on supported platforms
	return hex.EncodeToString(b)
}

// waitFor polls until cond holds, and fails the test if it does not within
// ten seconds (far beyond anything these conditions take).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// OpenDatabase opens another connection to the service's database, as a
// separate process (an operator subcommand) would.
func (s *Server) OpenDatabase(t testing.TB) *gorm.DB {
	t.Helper()
	db, err := config.OpenDatabase(s.Config.DatabaseURL)
	if err != nil {
		t.Fatalf("opening another connection: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db.ORM
}

// freshDatabaseBase is TEST_DATABASE_URL: empty for SQLite.
func freshDatabaseBase() string { return os.Getenv("TEST_DATABASE_URL") }

// Request is one HTTP request to the service.
type Request struct {
	Method string
	Path   string
	Token  string
	// Body is sent as is when it is a string, and as JSON otherwise.
	Body   any
	Header map[string]string
	// OffSpec marks a deliberate probe of a route or method that
	// docs/openapi.yaml does not describe, such as a 404 or 405 test. Any
	// other request outside the spec fails the test, and so does OffSpec
	// on a request the spec describes.
	OffSpec bool
}

// Response is what the service answered.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends the request, reads the whole response, and checks both against
// docs/openapi.yaml: a request the spec does not describe, or a response
// that does not match it, fails the test (the response is still returned).
func (s *Server) Do(t testing.TB, r Request) *Response {
	t.Helper()
	req, body, out := s.send(t, r)
	if err := s.contract.check(req, body, out, r.OffSpec); err != nil {
		t.Errorf("contract: %s %s answered %d: %v\nbody: %.500s", req.Method, r.Path, out.Status, err, out.Body)
	}
	return out
}

// send sends r and reads the whole response, returning the request and its
// body too, for the contract check.
func (s *Server) send(t testing.TB, r Request) (*http.Request, []byte, *Response) {
	t.Helper()
	req, body := newHTTPRequest(t, s.URL, r)
	if req.Method == http.MethodHead {
		return req, body, s.sendHead(t, req)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, r.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response of %s %s: %v", req.Method, r.Path, err)
	}
	return req, body, &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// sendHead sends a HEAD request on a connection of its own and returns
// the answer with, as its Body, whatever bytes followed the headers: Go's
// client never reads the body of an answer to HEAD, so a body the service
// wrongly sent would go unseen through it.
func (s *Server) sendHead(t testing.TB, req *http.Request) *Response {
	t.Helper()
	conn, err := net.Dial("tcp", req.URL.Host)
	if err != nil {
		t.Fatalf("HEAD %s: %v", req.URL.Path, err)
	}
	defer conn.Close()
	// The service closes the connection after its answer, so the answer is
	// everything up to the end of the stream.
	req.Close = true
	if err := req.Write(conn); err != nil {
		t.Fatalf("HEAD %s: %v", req.URL.Path, err)
	}
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading the answer to HEAD %s: %v", req.URL.Path, err)
	}
	wire := bufio.NewReader(bytes.NewReader(raw))
	resp, err := http.ReadResponse(wire, req)
	if err != nil {
		t.Fatalf("HEAD %s: %v\n%s", req.URL.Path, err, raw)
	}
	rest, _ := io.ReadAll(wire) // reading from memory does not fail
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: rest}
}

// statusOf sends a request built by hand, for what Request cannot say
// (repeated headers, a body without a length), and returns its status.
func (s *Server) statusOf(t testing.TB, req *http.Request) int {
	t.Helper()
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// newHTTPRequest builds the request r to the service at baseURL and
// returns it with its body.
func newHTTPRequest(t testing.TB, baseURL string, r Request) (*http.Request, []byte) {
	t.Helper()
	var body []byte
	switch b := r.Body.(type) {
	case nil:
	case string:
		body = []byte(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encoding the request body: %v", err)
		}
		body = data
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	var reader io.Reader
	if r.Body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, baseURL+r.Path, reader)
	if err != nil {
		t.Fatalf("building %s %s: %v", method, r.Path, err)
	}
	if r.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	return req, body
}

// JSON decodes the body as one JSON object.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("response body is not a JSON object: %v\n%s", err, r.Body)
	}
	return v
}

// Decode decodes the body into v.
func (r *Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding the response body: %v\n%s", err, r.Body)
	}
}

// Expect fails the test unless the response has the status.
func (r *Response) Expect(t testing.TB, status int) *Response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status: got %d, want %d; body: %s", r.Status, status, r.Body)
	}
	return r
}

// ExpectError fails the test unless the response is the error body with
// that status and code.
func (r *Response) ExpectError(t testing.TB, status int, code string) map[string]any {
	t.Helper()
	r.Expect(t, status)
	body := r.JSON(t)
	if body["code"] != code {
		t.Fatalf("code: got %v, want %q; body: %s", body["code"], code, r.Body)
	}
	if msg, _ := body["error"].(string); msg == "" {
		t.Fatalf("error body without a message: %s", r.Body)
	}
	return body
}

// Field returns the message of a field of a validation error.
func Field(t testing.TB, body map[string]any, name string) string {
	t.Helper()
	fields, _ := body["fields"].(map[string]any)
	msg, _ := fields[name].(string)
	if msg == "" {
		t.Fatalf("no message for field %q in %v", name, body)
	}
	return msg
}

const testPassword = "a sturdy passphrase 42"

// CreateUser stores an active user with the password.
func (s *Server) CreateUser(t testing.TB, username, plain string) *models.User {
	t.Helper()
	return s.createUserHashedBy(t, s.Passwords, username, plain)
}

// CreateStaleUser creates a user whose password hash was made with other
// parameters than the server's, so that a good login replaces it.
func (s *Server) CreateStaleUser(t testing.TB, username, plain string) *models.User {
	t.Helper()
	old := password.NewHasher(password.Params{Memory: 32, Time: 1, Threads: 1}, 1)
	return s.createUserHashedBy(t, old, username, plain)
}

func (s *Server) createUserHashedBy(t testing.TB, hasher *password.Hasher, username, plain string) *models.User {
	t.Helper()
	u, err := models.NewUser(t.Context(), hasher, models.PasswordPolicy{MinLength: 1}, username, username+"@example.com", plain)
	if err == nil {
		err = models.CreateUser(t.Context(), s.DB, u)
	}
	if err != nil {
		t.Fatalf("creating user %s: %v", username, err)
	}
	return u
}

// Login logs the user in and returns the new token.
func (s *Server) Login(t testing.TB, username, password string) string {
	t.Helper()
	body := s.Do(t, Request{Method: "POST", Path: "/api/login/",
		Body: map[string]string{"username": username, "password": password}}).Expect(t, http.StatusOK).JSON(t)
	token, _ := body["token"].(string)
	if token == "" {
		t.Fatalf("login answered no token: %v", body)
	}
	return token
}

// UserWithToken creates a user and logs them in.
func (s *Server) UserWithToken(t testing.TB, username string) (*models.User, string) {
	t.Helper()
	u := s.CreateUser(t, username, testPassword)
	return u, s.Login(t, username, testPassword)
}

// IssueToken gives the user a live personal token limited to the scopes
// (ScopeAll when none), without going through login. Its holder proved
// the password just now, as after a login: sensitive actions accept it
// until REAUTH_MAX_AGE has passed.
func (s *Server) IssueToken(t testing.TB, user *models.User, scopes ...string) string {
	t.Helper()
	if len(scopes) == 0 {
		scopes = []string{models.ScopeAll}
	}
	now := s.Clock.Now()
	expires := now.Add(s.Config.TokenTTL)
	tok, err := models.IssueToken(t.Context(), s.DB, user.ID,
		models.TokenSpec{Name: "test", Kind: models.KindPersonal, Scopes: scopes, ExpiresAt: &expires, AuthenticatedAt: &now},
		models.TokenPolicy{MaxPerUser: s.Config.MaxTokensPerUser, IdleTimeout: s.Config.TokenIdleTimeout}, false)
	if err != nil {
		t.Fatalf("issuing a token with scopes %v: %v", scopes, err)
	}
	return tok.Secret
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cfgT shortens config.Config in WithConfig closures.
type cfgT = config.Config
