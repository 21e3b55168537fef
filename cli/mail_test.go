package cli

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"tokenauth/models"
)

// relay is an SMTP server on a loopback port without TLS or AUTH, as a
// local relay is; it keeps what it receives.
type relay struct {
	addr string
	mu   sync.Mutex
	got  []string
}

func newRelay(t *testing.T) *relay {
	t.Helper()
	r := &relay{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &relaySession{r: r}, nil }))
	srv.Domain = "localhost"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	r.addr = ln.Addr().String()
	return r
}

func (r *relay) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

type relaySession struct{ r *relay }

func (s *relaySession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *relaySession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *relaySession) Reset()                               {}
func (s *relaySession) Logout() error                        { return nil }
func (s *relaySession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.r.mu.Lock()
	s.r.got = append(s.r.got, string(b))
	s.r.mu.Unlock()
	return err
}

func TestSendTestMail(t *testing.T) {
	r := newRelay(t)
	c := newCLI(t)
	c.env = map[string]string{"SMTP_URL": "smtp://" + r.addr + "?tls=none", "MAIL_FROM": "Ops <ops@example.com>"}
	out, _, err := c.run("", "sendtestmail", "--to", "bob@example.com")
	if err != nil {
		t.Fatalf("sendtestmail: %v", err)
	}
	if !strings.Contains(out, "sent to bob@example.com; the server answered: ") {
		t.Errorf("output: %q", out)
	}
	got := r.received()
	if len(got) != 1 || !strings.Contains(got[0], "Subject: tokenauth test mail") || !strings.Contains(got[0], "ops@example.com") {
		t.Fatalf("received: %q", got)
	}

	// Without tls=none, STARTTLS is required: a server without it gets
	// nothing.
	c.env["SMTP_URL"] = "smtp://" + r.addr
	if _, _, err := c.run("", "sendtestmail", "--to", "bob@example.com"); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("without STARTTLS: got %v, want an error that names STARTTLS", err)
	}
	if n := len(r.received()); n != 1 {
		t.Errorf("the relay got %d mails, want still 1", n)
	}

	// With no SMTP_URL the mail goes to the log.
	c.env = nil
	out, stderr, err := c.run("", "sendtestmail", "--to", "bob@example.com")
	if err != nil || !strings.Contains(out, "written to the log") || !strings.Contains(stderr, "tokenauth test mail") {
		t.Errorf("log-only: %v %q %q", err, out, stderr)
	}
	for _, args := range [][]string{{"sendtestmail"}, {"sendtestmail", "--to", "not an address"}} {
		var usage usageError
		if _, _, err := c.run("", args...); !errors.As(err, &usage) {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
}

func TestSetEmail(t *testing.T) {
	c := newCLI(t)
	for _, name := range []string{"alice", "bob"} {
		if _, _, err := c.run("correct horse battery\n", "createuser", "--username", name); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := c.run("", "setemail", "--verified", "alice", "shared@example.com")
	if err != nil || !strings.Contains(out, "set the address of alice to shared@example.com (verified)") {
		t.Fatalf("setemail: %v %q", err, out)
	}
	db := openDB(t, c.url).ORM
	u, err := models.FindUserByUsername(t.Context(), db, "alice")
	if err != nil || u.Email != "shared@example.com" || u.EmailVerifiedAt == nil {
		t.Fatalf("alice: %+v %v", u, err)
	}
	// Unverified, the address may be shared; verified, it may not.
	if _, _, err := c.run("", "setemail", "bob", "shared@example.com"); err != nil {
		t.Errorf("an unverified shared address: %v", err)
	}
	if _, _, err := c.run("", "setemail", "--verified", "bob", "Shared@example.com"); err == nil ||
		!strings.Contains(err.Error(), "another account has verified") {
		t.Errorf("a verified address twice: %v", err)
	}
	var usage usageError
	if _, _, err := c.run("", "setemail", "bob", "not an address"); !errors.As(err, &usage) {
		t.Errorf("a bad address: %v", err)
	}
	if _, _, err := c.run("", "setemail", "nobody", "a@example.com"); err == nil || !strings.Contains(err.Error(), `no user named "nobody"`) {
		t.Errorf("an unknown user: %v", err)
	}
}

func TestMailListsWaitingAndGivenUpMail(t *testing.T) {
	c := newCLI(t)
	out, _, err := c.run("", "mail")
	if err != nil || !strings.Contains(out, "no mail waits") {
		t.Fatalf("empty outbox: %v %q", err, out)
	}
	db := openDB(t, c.url).ORM
	for _, name := range []string{"alice", "bob"} {
		u := &models.User{Username: name, Email: name + "@example.com", PasswordHash: "x", IsActive: true}
		link := models.Link{Secret: "tke_" + name, ExpiresAt: time.Now().Add(-time.Hour),
			Mail: &models.Mail{Kind: models.MailVerifyEmail, Recipient: u.Email, Subject: "Verify", Body: "v1.sealed-link"}}
		if err := models.CreateUserWithVerification(t.Context(), db, u, link); err != nil {
			t.Fatal(err)
		}
	}
	// The mail due first (alice's) is given up.
	rows, claim, err := models.ClaimDue[models.Mail](t.Context(), db, models.MailTable, time.Minute)
	if err != nil || len(rows) != 1 || rows[0].Recipient != "alice@example.com" {
		t.Fatalf("claiming: %+v %v", rows, err)
	}
	if ok, err := models.Settle(t.Context(), db, models.MailTable, rows[0].ID, claim,
		models.Outcome{Failed: true, Error: "550 no such user"}); !ok || err != nil {
		t.Fatalf("giving up: %v %v", ok, err)
	}
	out, _, err = c.run("", "mail")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "failed") || !strings.Contains(lines[1], "alice@example.com") ||
		!strings.Contains(lines[1], "550 no such user") || !strings.Contains(lines[2], "pending") ||
		!strings.Contains(lines[2], "bob@example.com") || !strings.Contains(lines[2], "verify_email") {
		t.Errorf("mail:\n%s", out)
	}
	if strings.Contains(out, "sealed") || strings.Contains(out, "tke_") {
		t.Errorf("mail shows a body or a link:\n%s", out)
	}

	// prune deletes the expired links and, after the retention, mail.
	out, _, err = c.run("", "prune")
	if err != nil || !strings.Contains(out, "deleted 2 expired link(s)") {
		t.Errorf("prune: %v %q", err, out)
	}
}
