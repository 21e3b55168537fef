package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tokenauth/app"
	"tokenauth/cli"
	"tokenauth/clock"
	"tokenauth/config"
	"tokenauth/models"
	"tokenauth/webhooks"
	"tokenauth/webhooks/verifier"
)

// hookReceiver is an HTTP endpoint that receives webhooks: it checks each
// signature against the secret it was given and the test's clock, and
// answers 503 while told to refuse.
type hookReceiver struct {
	*httptest.Server
	clock     clock.Clock
	tolerance time.Duration
	mu        sync.Mutex
	secret    string
	refusing  bool
	requests  []hookRequest
	// hold, while not nil, keeps each request unanswered until it is
	// closed; such a request is counted in held and not recorded.
	hold chan struct{}
	held int
}

// hookRequest is one request the receiver got.
type hookRequest struct {
	Event    models.WebhookEvent
	Body     []byte
	Header   http.Header
	Accepted bool
	// BadSignature says the signature did not verify.
	BadSignature bool
}

// newHookReceiver starts a receiver. The test clock jumps by hours at a
// time while a delivery may be in flight, so the receiver accepts
// signatures up to 3 hours old; the verifier's own tests hold it to a few
// minutes.
func newHookReceiver(t *testing.T, clk clock.Clock) *hookReceiver {
	r := &hookReceiver{clock: clk, tolerance: 3 * time.Hour}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	if hold := r.hold; hold != nil {
		r.held++
		r.mu.Unlock()
		<-hold
		http.Error(w, "held", http.StatusServiceUnavailable)
		return
	}
	defer r.mu.Unlock()
	got := hookRequest{Body: body, Header: req.Header.Clone()}
	_ = json.Unmarshal(body, &got.Event)
	if verifier.Verify(req.Header.Get(webhooks.SignatureHeader), body, r.secret, r.clock.Now(), r.tolerance) != nil {
		got.BadSignature = true
		r.requests = append(r.requests, got)
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	if r.refusing {
		r.requests = append(r.requests, got)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	got.Accepted = true
	r.requests = append(r.requests, got)
	w.WriteHeader(http.StatusNoContent)
}

// holdRequests keeps requests unanswered until release is called.
func (r *hookReceiver) holdRequests() (release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	hold := make(chan struct{})
	r.hold = hold
	return func() {
		r.mu.Lock()
		r.hold = nil
		r.mu.Unlock()
		close(hold)
	}
}

func (r *hookReceiver) heldRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

func (r *hookReceiver) refuse(on bool) {
	r.mu.Lock()
	r.refusing = on
	r.mu.Unlock()
}

func (r *hookReceiver) setSecret(secret string) {
	r.mu.Lock()
	r.secret = secret
	r.mu.Unlock()
}

func (r *hookReceiver) received() []hookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

// runCLI runs a tokenauth subcommand on the server's database, as an
// operator would, and returns what it printed.
func runCLI(t *testing.T, s *Server, args ...string) (string, error) {
	t.Helper()
	return runCLIOn(t, s.Config.DatabaseURL, args...)
}

// runCLIOn runs a tokenauth subcommand on the database at dbURL.
func runCLIOn(t *testing.T, dbURL string, args ...string) (string, error) {
	t.Helper()
	env := map[string]string{"DATABASE_URL": dbURL, "METRICS_ADDR": ""}
	var out, errOut bytes.Buffer
	code := cli.Main(t.Context(), args, func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		strings.NewReader(""), &out, &errOut)
	if code != 0 {
		return out.String(), fmt.Errorf("exit %d: %s", code, errOut.String())
	}
	return out.String(), nil
}

var secretLine = regexp.MustCompile(`signing secret \(shown once, keep it with the receiver\): (whsec_[A-Za-z0-9_-]{43})\n`)

// addHook registers the receiver's URL with tokenauth webhook add and gives
// it the secret printed.
func addHook(t *testing.T, s *Server, r *hookReceiver, args ...string) {
	t.Helper()
	addHookOn(t, s.Config.DatabaseURL, r, args...)
}

func addHookOn(t *testing.T, dbURL string, r *hookReceiver, args ...string) {
	t.Helper()
	out, err := runCLIOn(t, dbURL, append([]string{"webhook", "add", r.URL}, args...)...)
	if err != nil {
		t.Fatalf("webhook add: %v", err)
	}
	m := secretLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("webhook add printed no secret: %q", out)
	}
	r.setSecret(m[1])
}

func hookRows(t *testing.T, s *Server) []models.WebhookDelivery {
	t.Helper()
	var rows []models.WebhookDelivery
	if err := s.DB.Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

// hooksIdle waits until every event is made into deliveries, no delivery
// is claimed and none can be claimed at the clock's time (every delivery
// made, given up, waiting for its retry, or waiting behind an earlier one
// of its user), and returns the deliveries at the head of their chains.
func hooksIdle(t *testing.T, clk *clock.Fake, servers ...*Server) []models.WebhookDelivery {
	t.Helper()
	var heads []models.WebhookDelivery
	waitFor(t, "the webhook workers to be idle", func() bool {
		var unqueued int64
		if err := servers[0].DB.Model(&models.SecurityEvent{}).Where("webhooks_queued = ?", false).
			Count(&unqueued).Error; err != nil {
			t.Fatal(err)
		}
		if unqueued > 0 {
			for _, s := range servers {
				s.Webhooks.WakeAll()
			}
			return false
		}
		rows := hookRows(t, servers[0])
		heads = heads[:0]
		seen := map[[2]uint]bool{}
		for _, d := range rows {
			if d.ClaimedBy != "" {
				return false
			}
			chain := [2]uint{d.EndpointID, d.UserKey}
			if d.DeliveredAt != nil || d.FailedAt != nil || seen[chain] {
				continue
			}
			seen[chain] = true
			heads = append(heads, d)
			if !d.NextAttemptAt.After(clk.Now()) {
				for _, s := range servers {
					s.Webhooks.WakeAll()
				}
				return false
			}
		}
		return true
	})
	return heads
}

// driveHooks moves the clock to each next retry until every delivery is
// made. The clock moves only while nothing can be claimed, so no attempt
// outlives its lease because of a jump.
func driveHooks(t *testing.T, clk *clock.Fake, servers ...*Server) {
	t.Helper()
	for range 100 {
		var next time.Time
		for _, d := range hooksIdle(t, clk, servers...) {
			if next.IsZero() || d.NextAttemptAt.Before(next) {
				next = d.NextAttemptAt
			}
		}
		if next.IsZero() {
			return
		}
		clk.Advance(next.Sub(clk.Now()))
		for _, s := range servers {
			s.Webhooks.WakeAll()
		}
	}
	t.Fatal("the webhooks were not all delivered")
}

// makeEvents gives each user a series of events over HTTP: logins, a
// token created, the token revoked. It returns the secrets it saw.
func makeEvents(t *testing.T, s *Server, users ...string) []string {
	t.Helper()
	var secrets []string
	for _, name := range users {
		login := s.Login(t, name, testPassword)
		created := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: login,
			Body: map[string]any{"name": "ci"}}).Expect(t, http.StatusCreated).JSON(t)
		s.Do(t, Request{Method: "DELETE", Path: fmt.Sprintf("/api/tokens/%v/", created["id"]), Token: login}).
			Expect(t, http.StatusNoContent)
		secrets = append(secrets, login, created["token"].(string), s.Login(t, name, testPassword))
	}
	return secrets
}

// checkHooks checks what the receiver accepted against the events of the
// database after the endpoint was added: each once, in order per user,
// validly signed, holding none of the secrets.
func checkHooks(t *testing.T, s *Server, r *hookReceiver, secrets []string) {
	t.Helper()
	var events []models.SecurityEvent
	if err := s.DB.Where("id > (SELECT after_event_id FROM webhook_endpoints ORDER BY id LIMIT 1)").Order("id").
		Find(&events).Error; err != nil {
		t.Fatal(err)
	}
	accepted := map[uint]int{}
	last := map[uint]uint{}
	for _, req := range r.received() {
		if req.BadSignature {
			t.Errorf("a delivery of event %d was badly signed: %s", req.Event.ID, req.Header.Get(webhooks.SignatureHeader))
		}
		for _, secret := range secrets {
			if bytes.Contains(req.Body, []byte(secret)) {
				t.Errorf("a webhook body holds a token: %s", req.Body)
			}
		}
		if !req.Accepted {
			continue
		}
		accepted[req.Event.ID]++
		if req.Event.User == nil {
			t.Errorf("event %d arrived without its user: %s", req.Event.ID, req.Body)
			continue
		}
		if prev := last[req.Event.User.ID]; req.Event.ID < prev {
			t.Errorf("user %d: event %d arrived after event %d", req.Event.User.ID, req.Event.ID, prev)
		}
		last[req.Event.User.ID] = req.Event.ID
	}
	if len(events) == 0 {
		t.Fatal("no events to deliver")
	}
	for _, e := range events {
		if accepted[e.ID] != 1 {
			t.Errorf("event %d (%s) was accepted %d times, want 1", e.ID, e.Type, accepted[e.ID])
		}
	}
	if len(accepted) != len(events) {
		t.Errorf("the receiver accepted %d events, the database holds %d", len(accepted), len(events))
	}
}

// A receiver that fails for a while, then accepts, gets every event once,
// in order per user and validly signed, though the service restarts while
// it fails.
func TestWebhooksSurviveAFailingReceiverAndARestart(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, WithApp(app.WithClock(clk)))
	r := newHookReceiver(t, clk)
	for _, name := range []string{"ada", "bob", "cyd"} {
		s.CreateUser(t, name, testPassword)
	}
	s.Login(t, "ada", testPassword) // before the endpoint: not sent
	addHook(t, s, r)
	r.refuse(true)
	secrets := makeEvents(t, s, "ada", "bob", "cyd")
	hooksIdle(t, clk, s)

	// While refused, only the first event of each user is tried.
	clk.Advance(webhooks.Policy.Backoff(1))
	s.Webhooks.WakeAll()
	heads := hooksIdle(t, clk, s)
	s.App.Shutdown()
	// The deliveries behind a failed one wait as long as it does.
	retryAt := map[uint]time.Time{}
	for _, h := range heads {
		retryAt[h.UserKey] = h.NextAttemptAt
	}
	for _, d := range hookRows(t, s) {
		if at := retryAt[d.UserKey]; d.NextAttemptAt.Before(at) {
			t.Errorf("delivery %d is due at %v, before the failed delivery ahead of it (%v)", d.ID, d.NextAttemptAt, at)
		}
	}
	if got := len(r.received()); got != 6 {
		t.Errorf("%d requests while refused, want 6: two for the first event of each user", got)
	}
	tried := map[uint]bool{}
	for _, req := range r.received() {
		tried[req.Event.ID] = true
		if req.Accepted {
			t.Fatalf("accepted while refusing: %s", req.Body)
		}
	}
	if len(tried) != 3 {
		t.Errorf("%d events were tried while the receiver refused, want 3 (the first of each user)", len(tried))
	}

	next := NewServer(t, WithConfig(func(c *config.Config) { c.DatabaseURL = s.Config.DatabaseURL }),
		WithApp(app.WithClock(clk)))
	r.refuse(false)
	driveHooks(t, clk, next)
	checkHooks(t, next, r, secrets)
	for _, req := range r.received() {
		if req.Header.Get(webhooks.DeliveryHeader) == "" || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("headers: %v", req.Header)
		}
	}
	waitFor(t, "the pending gauge to reach 0", func() bool { return metric(t, next, "tokenauth_webhook_pending") == "0" })
	if got := metric(t, next, `tokenauth_webhook_attempts_total{outcome="delivered"}`); got == "0" {
		t.Errorf("delivered attempts counted: %s", got)
	}
}

// Two instances on one database share the deliveries: every event arrives
// once, each attempt is one request, and order per user holds.
func TestTwoInstancesDeliverEachWebhookOnce(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	a := NewServer(t, WithApp(app.WithClock(clk)))
	b := NewServer(t, WithDatabaseOf(a), WithApp(app.WithClock(clk)))
	r := newHookReceiver(t, clk)
	addHook(t, a, r)
	var users []string
	for i := range 8 {
		users = append(users, fmt.Sprintf("user%d", i))
		a.CreateUser(t, users[i], testPassword)
	}
	r.refuse(true)
	secrets := makeEvents(t, a, users[:4]...)
	secrets = append(secrets, makeEvents(t, b, users[4:]...)...)
	hooksIdle(t, clk, a, b)
	if got := len(r.received()); got != len(users) {
		t.Errorf("%d requests while refused, want %d: the first event of each user", got, len(users))
	}
	r.refuse(false)
	driveHooks(t, clk, a, b)
	checkHooks(t, a, r, secrets)
	attempts := 0
	for _, d := range hookRows(t, a) {
		attempts += d.Attempts
	}
	if got := len(r.received()); got != attempts {
		t.Errorf("the receiver got %d requests for %d attempts: an attempt was sent twice or not at all", got, attempts)
	}
}

// A delivery the receiver keeps refusing is given up after its last
// attempt, more than a day after its first; the operator sees it, and the
// user's next event goes out.
func TestWebhookIsGivenUpAfterADay(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, WithApp(app.WithClock(clk)))
	r := newHookReceiver(t, clk)
	s.CreateUser(t, "ada", testPassword)
	addHook(t, s, r, "--events", "login_succeeded")
	r.refuse(true)
	s.Login(t, "ada", testPassword)
	start := clk.Now()
	for attempt := 1; attempt < webhooks.Policy.MaxAttempts; attempt++ {
		waitFor(t, fmt.Sprintf("attempt %d", attempt), func() bool {
			rows := hookRows(t, s)
			return len(rows) == 1 && rows[0].Attempts == attempt && rows[0].ClaimedBy == ""
		})
		clk.Advance(webhooks.Policy.Backoff(attempt))
		s.Webhooks.WakeAll()
	}
	waitFor(t, "the delivery to be given up", func() bool { return hookRows(t, s)[0].FailedAt != nil })
	if span := hookRows(t, s)[0].FailedAt.Sub(start); span < 24*time.Hour {
		t.Errorf("given up %v after the first attempt, want at least 24h", span)
	}
	out, err := runCLI(t, s, "webhook", "list")
	if err != nil || !strings.Contains(out, "503 Service Unavailable") || !regexp.MustCompile(`\s0\s+0\s+1\s`).MatchString(out) {
		t.Errorf("webhook list: %q, %v", out, err)
	}
	out, err = runCLI(t, s, "webhook", "deliveries", "1")
	if err != nil || !strings.Contains(out, "given up") || !strings.Contains(out, "login_succeeded") {
		t.Errorf("webhook deliveries: %q, %v", out, err)
	}
	waitFor(t, "the given-up gauge", func() bool { return metric(t, s, "tokenauth_webhook_given_up") == "1" })

	r.refuse(false)
	s.Login(t, "ada", testPassword)
	waitFor(t, "the next event to arrive", func() bool {
		for _, req := range r.received() {
			if req.Accepted {
				return true
			}
		}
		return false
	})
}

// An endpoint that wants some event types gets only those.
func TestWebhookEventFilter(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, WithApp(app.WithClock(clk)))
	r := newHookReceiver(t, clk)
	s.CreateUser(t, "ada", testPassword)
	addHook(t, s, r, "--events", "token_created,token_revoked")
	makeEvents(t, s, "ada")
	driveHooks(t, clk, s)
	var types []string
	for _, req := range r.received() {
		types = append(types, req.Event.Type)
	}
	if !slices.Equal(types, []string{"token_created", "token_revoked"}) {
		t.Errorf("received %v, want token_created then token_revoked", types)
	}
}

// A kill -9 while a delivery is in flight loses nothing: the service runs
// in another process (see serveChild), records a login and starts
// delivering it, and the receiver holds the request unanswered while the
// process is killed. The delivery's claim outlives the process; once its
// lease has run out, the next start delivers it.
func TestKilledServiceLosesNoWebhook(t *testing.T) {
	t.Parallel()
	dbURL, database := childDatabase(t)
	r := newHookReceiver(t, clock.System{})
	addHookOn(t, dbURL, r)
	release := r.holdRequests()
	released := false
	t.Cleanup(func() {
		if !released {
			release()
		}
	})

	child := startChild(t, dbURL)
	resp, err := http.Post("http://"+child.addr+"/api/login/", "application/json",
		strings.NewReader(`{"username": "frank", "password": "`+testPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login at the child: %d", resp.StatusCode)
	}
	waitFor(t, "the delivery to reach the receiver", func() bool { return r.heldRequests() == 1 })
	child.kill(t)
	release()
	released = true

	var rows []models.WebhookDelivery
	if err := database.ORM.Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].DeliveredAt != nil || rows[0].ClaimedUntil == nil || rows[0].Attempts != 1 {
		t.Fatalf("the deliveries after the kill: %+v", rows)
	}

	clk := clock.NewFake(rows[0].ClaimedUntil.Add(time.Second))
	next := NewServer(t, WithConfig(func(c *config.Config) { c.DatabaseURL = dbURL }), WithApp(app.WithClock(clk)))
	driveHooks(t, clk, next)
	checkHooks(t, next, r, nil)
	if d := hookRows(t, next)[0]; d.Attempts != 2 {
		t.Errorf("attempts: got %d, want 2 (the killed one and the one that delivered)", d.Attempts)
	}
}
