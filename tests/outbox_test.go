package tests

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"tokenauth/app"
	"tokenauth/clock"
	"tokenauth/config"
	"tokenauth/internal/testdb"
	"tokenauth/mail"
	"tokenauth/models"
	"tokenauth/password"
)

// resetForAll creates n users with addresses and asks for a reset link
// for each (through servers in turn), and returns their addresses.
func resetForAll(t *testing.T, n int, servers ...*Server) []string {
	t.Helper()
	var addresses []string
	for i := range n {
		s := servers[i%len(servers)]
		u := s.CreateUser(t, fmt.Sprintf("user%d", i), testPassword)
		addresses = append(addresses, u.Email)
		s.Do(t, Request{Method: "POST", Path: "/api/password-reset/",
			Body: map[string]string{"email": u.Email}}).Expect(t, http.StatusAccepted)
	}
	return addresses
}

// expectEachOnce checks that the mail server received exactly one mail
// for each address, and nothing else.
func expectEachOnce(t *testing.T, ms *MailServer, addresses []string) {
	t.Helper()
	mails := ms.Mails()
	if len(mails) != len(addresses) {
		t.Errorf("received %d mails, want %d", len(mails), len(addresses))
	}
	for _, a := range addresses {
		if n := len(ms.MailsTo(a)); n != 1 {
			t.Errorf("%s received %d mails, want 1", a, n)
		}
	}
}

// mailRows returns every row of the outbox.
func mailRows(t *testing.T, s *Server) []models.Mail {
	t.Helper()
	var rows []models.Mail
	if err := s.DB.Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

// waitForAttempts waits until every mail of the outbox has had n attempts
// (at least) and none is being sent: a retry is scheduled from the time
// of the attempt that failed, so the clock moves only after that.
func waitForAttempts(t *testing.T, s *Server, mails, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d mails to have %d attempts", mails, n), func() bool {
		rows := mailRows(t, s)
		if len(rows) < mails {
			return false
		}
		for _, m := range rows {
			if m.Attempts < n || m.ClaimedBy != "" {
				return false
			}
		}
		return true
	})
}

// metric returns the value of one sample, named with its labels as the
// text format writes them, as the metrics listener says.
func metric(t *testing.T, s *Server, name string) string {
	t.Helper()
	v, ok := s.scrape(t)[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// While the mail server refuses, mail waits and is tried again later;
// once it accepts, every mail arrives exactly once.
func TestMailWaitsOutARefusingServer(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	f.mail.Refuse(true)
	addresses := resetForAll(t, 4, f.Server)
	waitForAttempts(t, f.Server, 4, 1)

	// Due again after the first backoff, refused again.
	f.clock.Advance(mail.MailPolicy.Backoff(1))
	f.Mail.WakeAll()
	waitForAttempts(t, f.Server, 4, 2)
	if got := len(f.mail.Mails()); got != 0 {
		t.Fatalf("%d mails arrived while the server refused", got)
	}

	f.mail.Refuse(false)
	f.clock.Advance(mail.MailPolicy.Backoff(2))
	f.waitForOutbox(t)
	expectEachOnce(t, f.mail, addresses)
	for _, m := range mailRows(t, f.Server) {
		if m.DeliveredAt == nil || m.Attempts != 3 || m.Body != "" || !strings.Contains(m.LastError, "451") {
			t.Errorf("mail %d: delivered %v after %d attempts, body %d bytes, last error %q",
				m.ID, m.DeliveredAt, m.Attempts, len(m.Body), m.LastError)
		}
	}
	// The gauge is counted after the worker's pass, which ends a moment
	// after the last mail is marked sent.
	waitFor(t, "the pending gauge to reach 0", func() bool { return metric(t, f.Server, "tokenauth_mail_pending") == "0" })
	waitFor(t, "four mails counted sent", func() bool { return metric(t, f.Server, "tokenauth_mail_sent_total") == "4" })
	for name, want := range map[string]string{"tokenauth_mail_sent_total": "4", "tokenauth_mail_retries_total": "8",
		"tokenauth_mail_failed_total": "0"} {
		if got := metric(t, f.Server, name); got != want {
			t.Errorf("%s: got %s, want %s", name, got, want)
		}
	}
	// Every link still works.
	for _, a := range addresses {
		_, token := f.mail.MailsTo(a)[0].Link(t)
		f.confirmReset(t, token, newTestPassword).Expect(t, http.StatusNoContent)
	}
}

// A mail the server keeps refusing is given up after its last attempt,
// body and all, and the operator sees it.
func TestMailIsGivenUpAfterItsLastAttempt(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	f.mail.Refuse(true)
	resetForAll(t, 1, f.Server)
	for attempt := 1; attempt < mail.MailPolicy.MaxAttempts; attempt++ {
		waitForAttempts(t, f.Server, 1, attempt)
		f.clock.Advance(mail.MailPolicy.Backoff(attempt))
		f.Mail.WakeAll()
	}
	waitFor(t, "the mail to be given up", func() bool { return mailRows(t, f.Server)[0].FailedAt != nil })
	m := mailRows(t, f.Server)[0]
	if m.Attempts != mail.MailPolicy.MaxAttempts || m.Body != "" || m.DeliveredAt != nil {
		t.Errorf("given up: %d attempts, body %d bytes, delivered %v", m.Attempts, len(m.Body), m.DeliveredAt)
	}
	// No more attempts after that.
	f.clock.Advance(24 * time.Hour)
	f.mail.Refuse(false)
	f.waitForOutbox(t)
	if n := len(f.mail.Mails()); n != 0 {
		t.Errorf("a given-up mail was sent: %d", n)
	}
	listed, err := models.ListMail(t.Context(), f.DB, 100)
	if err != nil || len(listed) != 1 || listed[0].FailedAt == nil {
		t.Errorf("ListMail: %+v, %v", listed, err)
	}
	waitFor(t, "one mail counted given up", func() bool { return metric(t, f.Server, "tokenauth_mail_failed_total") == "1" })
	waitFor(t, "the given-up gauge to reach 1", func() bool { return metric(t, f.Server, "tokenauth_mail_given_up") == "1" })
}

// Two instances on one database share the outbox and send each mail once:
// all the mails come due at once on both, which race for them.
func TestTwoInstancesSendEachMailOnce(t *testing.T) {
	t.Parallel()
	ms := NewMailServer(t)
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	a := NewServer(t, WithMailServer(ms), WithApp(app.WithClock(clk)))
	b := NewServer(t, WithDatabaseOf(a), WithMailServer(ms), WithApp(app.WithClock(clk)))
	ms.Refuse(true)
	const n = 20
	addresses := resetForAll(t, n, a, b)
	waitForAttempts(t, a, n, 1)

	ms.Refuse(false)
	clk.Advance(mail.MailPolicy.Backoff(1))
	a.Mail.WakeAll()
	b.Mail.WakeAll()
	waitFor(t, "every mail to be sent", func() bool {
		a.Mail.WakeAll()
		b.Mail.WakeAll()
		for _, m := range mailRows(t, a) {
			if m.DeliveredAt == nil {
				return false
			}
		}
		return true
	})
	expectEachOnce(t, ms, addresses)
	attempts := 0
	for _, m := range mailRows(t, a) {
		attempts += m.Attempts
	}
	if attempts != 2*n {
		t.Errorf("%d attempts for %d mails, want %d: one refused and one sent each", attempts, n, 2*n)
	}
	// Each instance counts a mail once it has marked it sent.
	sent := func() int {
		total := 0
		for _, s := range []*Server{a, b} {
			var v int
			fmt.Sscan(metric(t, s, "tokenauth_mail_sent_total"), &v)
			total += v
		}
		return total
	}
	waitFor(t, fmt.Sprintf("the instances to count %d mails sent", n), func() bool { return sent() >= n })
	if got := sent(); got != n {
		t.Errorf("the instances counted %d mails sent, want %d", got, n)
	}
}

// A graceful stop in the middle of sending a mail leaves it in the outbox,
// due at once and its attempt not counted; the next start sends it.
func TestGracefulStopLeavesUnsentMail(t *testing.T) {
	t.Parallel()
	f := newMailFixture(t)
	f.mail.Hold(true)
	addresses := resetForAll(t, 1, f.Server)
	waitFor(t, "the server to hold the mail", func() bool { return f.mail.Held() == 1 })
	f.App.Shutdown()
	m := mailRows(t, f.Server)[0]
	if m.DeliveredAt != nil || m.FailedAt != nil || m.Attempts != 0 || m.ClaimedBy != "" || m.Body == "" {
		t.Fatalf("after the stop: %+v", m.Delivery)
	}
	f.mail.Hold(false)

	next := NewServer(t, WithConfig(func(c *config.Config) { c.DatabaseURL = f.Config.DatabaseURL }),
		WithMailServer(f.mail), WithApp(app.WithClock(f.clock)))
	_, token := f.mail.WaitForMailTo(t, addresses[0]).Link(t)
	next.Do(t, Request{Method: "POST", Path: "/api/password-reset/confirm/",
		Body: map[string]string{"token": token, "new_password": newTestPassword}}).Expect(t, http.StatusNoContent)
	expectEachOnce(t, f.mail, addresses)
}

// childEnv, when set, makes the test binary serve the service instead of
// running tests (TestMain): a process the test can kill.
const childEnv = "TOKENAUTH_TEST_CHILD"

// childDatabase is a fresh, migrated database for a service in a child
// process, with the user frank, and the test's own handle on it.
func childDatabase(t *testing.T) (string, *config.Database) {
	t.Helper()
	dbURL := testdb.URL(t)
	database, err := config.OpenDatabase(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { database.Close() })
	if err := config.Migrate(database.ORM); err != nil {
		t.Fatal(err)
	}
	u, err := models.NewUser(t.Context(), password.NewHasher(testPasswordParams, 1), models.PasswordPolicy{MinLength: 1},
		"frank", "frank@example.com", testPassword)
	if err == nil {
		err = models.CreateUser(t.Context(), database.ORM, u)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dbURL, database
}

// childService is the service running in a child process (this test
// binary, see serveChild), which the test can kill.
type childService struct {
	cmd    *osexec.Cmd
	addr   string
	killed bool
}

// startChild starts the service on dbURL in a child process, with env
// added to its environment, and waits for the address it listens on. The
// child is killed when the test ends, if the test has not killed it.
func startChild(t *testing.T, dbURL string, env ...string) *childService {
	t.Helper()
	cmd := osexec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), childEnv+"=serve", "CHILD_DATABASE_URL="+dbURL), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &childService{cmd: cmd}
	t.Cleanup(func() {
		if !c.killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the child's address: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("the child said %q", line)
	}
	c.addr = addr
	return c
}

// kill ends the child at once: SIGKILL, so that no shutdown runs.
func (c *childService) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	c.killed = true
}

// A kill -9 between the commit of a mail and its delivery loses nothing.
// The service runs in another process (this test binary, see serveChild);
// it commits a reset link's mail and starts sending it, and the mail
// server holds the mail without answering while the process is killed.
// The mail's claim outlives the process, so the next start sends it once
// the claim's lease has run out.
func TestKilledServiceLosesNoMail(t *testing.T) {
	t.Parallel()
	dbURL, database := childDatabase(t)
	ms := NewMailServer(t)
	ms.Hold(true)
	caFile := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(caFile, ms.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	child := startChild(t, dbURL, "CHILD_SMTP_URL="+ms.URL, "CHILD_SMTP_CA="+caFile)
	resp, err := http.Post("http://"+child.addr+"/api/password-reset/", "application/json",
		strings.NewReader(`{"email": "frank@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("reset request to the child: %d", resp.StatusCode)
	}
	waitFor(t, "the mail to reach the server", func() bool { return ms.Held() == 1 })
	child.kill(t)
	ms.Hold(false)

	var rows []models.Mail
	if err := database.ORM.Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].DeliveredAt != nil || rows[0].ClaimedUntil == nil || rows[0].Attempts != 1 || rows[0].Body == "" {
		t.Fatalf("the outbox after the kill: %+v", rows)
	}
	if n := len(ms.Mails()); n != 0 {
		t.Fatalf("%d mails arrived from the killed process", n)
	}

	// The next start, once the dead process's claim has run out.
	clk := clock.NewFake(rows[0].ClaimedUntil.Add(time.Second))
	next := NewServer(t, WithConfig(func(c *config.Config) { c.DatabaseURL = dbURL }), WithMailServer(ms),
		WithApp(app.WithClock(clk)))
	_, token := ms.WaitForMailTo(t, "frank@example.com").Link(t)
	next.Do(t, Request{Method: "POST", Path: "/api/password-reset/confirm/",
		Body: map[string]string{"token": token, "new_password": newTestPassword}}).Expect(t, http.StatusNoContent)
	next.Login(t, "frank", newTestPassword)
	waitFor(t, "the mail to be marked sent", func() bool { return mailRows(t, next)[0].DeliveredAt != nil })
	expectEachOnce(t, ms, []string{"frank@example.com"})
	if m := mailRows(t, next)[0]; m.Attempts != 2 {
		t.Errorf("attempts: got %d, want 2 (the killed one and the one that sent it)", m.Attempts)
	}
}

// serveChild runs the service on CHILD_DATABASE_URL, sending mail to
// CHILD_SMTP_URL (trusting the certificate in CHILD_SMTP_CA) when set,
// until the process is killed. It prints the address it listens on.
func serveChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	cfg := config.Default()
	cfg.DatabaseURL, cfg.SMTPURL = os.Getenv("CHILD_DATABASE_URL"), os.Getenv("CHILD_SMTP_URL")
	roots := x509.NewCertPool()
	if caFile := os.Getenv("CHILD_SMTP_CA"); caFile != "" {
		ca, err := os.ReadFile(caFile)
		if err != nil {
			return fail(err)
		}
		roots.AppendCertsFromPEM(ca)
	}
	database, err := config.OpenDatabase(cfg.DatabaseURL)
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	a, err := app.New(ctx, cfg, database, slog.New(slog.NewTextHandler(os.Stderr, nil)),
		app.WithPasswordHasher(password.NewHasher(testPasswordParams, 2)), app.WithMailTLS(&tls.Config{RootCAs: roots}))
	if err != nil {
		return fail(err)
	}
	a.Start(ctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	return fail(http.Serve(ln, a.Router))
}
