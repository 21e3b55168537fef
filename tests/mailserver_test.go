package tests

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"tokenauth/app"
)

// MailServer is an SMTP server for one test, on a loopback port: it offers
// STARTTLS with a certificate made for the test, requires AUTH PLAIN over
// TLS, and keeps every mail it accepts. It can refuse mail for a while
// (451, as a server that is busy or down), or hold a mail without
// answering, as a slow server does when its client dies.
type MailServer struct {
	// URL is the SMTP_URL of the server, credentials included.
	URL string
	// ClientTLS trusts the server's certificate (app.WithMailTLS).
	ClientTLS *tls.Config
	// CAPEM is that certificate, PEM-encoded, for another process.
	CAPEM []byte

	mu       sync.Mutex
	received []ReceivedMail
	refusing bool
	refused  int
	holding  bool
	held     int
	// release ends every held DATA, refusing it.
	release chan struct{}
	changed chan struct{}
}

// ReceivedMail is a mail the server accepted.
type ReceivedMail struct {
	From    string
	To      []string
	Subject string
	Text    string
	HTML    string
	Header  mail.Header
}

const (
	mailServerUser     = "tokenauth"
	mailServerPassword = "relay secret 7"
)

// NewMailServer starts a mail server that lives as long as the test.
func NewMailServer(t testing.TB) *MailServer {
	t.Helper()
	certPEM, serverCert := selfSignedCert(t)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	m := &MailServer{ClientTLS: &tls.Config{RootCAs: roots}, CAPEM: certPEM, release: make(chan struct{}),
		changed: make(chan struct{}, 1)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{server: m}, nil }))
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{serverCert}}
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		m.Hold(false)
		_ = srv.Close()
	})
	m.URL = fmt.Sprintf("smtp://%s:%s@%s", mailServerUser, strings.ReplaceAll(mailServerPassword, " ", "%20"), ln.Addr())
	return m
}

// selfSignedCert makes a certificate for 127.0.0.1, valid for a day.
func selfSignedCert(t testing.TB) ([]byte, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tokenauth test mail server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, cert
}

// WithMailServer sends the service's mail through m.
func WithMailServer(m *MailServer) Option {
	return func(s *serverSetup) {
		s.cfg.SMTPURL = m.URL
		s.appOptions = append(s.appOptions, app.WithMailTLS(m.ClientTLS))
	}
}

// Refuse makes the server refuse every mail (451) until called with false.
func (m *MailServer) Refuse(on bool) {
	m.mu.Lock()
	m.refusing = on
	m.mu.Unlock()
}

// Refused returns how many mails the server refused.
func (m *MailServer) Refused() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refused
}

// Hold makes the server take in every mail and not answer, until called
// with false, which refuses the held ones.
func (m *MailServer) Hold(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.holding && !on {
		close(m.release)
		m.release = make(chan struct{})
	}
	m.holding = on
}

// Held returns how many mails have reached the end of their DATA while
// the server held them.
func (m *MailServer) Held() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held
}

// Mails returns the mails received so far.
func (m *MailServer) Mails() []ReceivedMail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]ReceivedMail(nil), m.received...)
}

// WaitForMails waits until the server has received at least n mails and
// returns them all.
func (m *MailServer) WaitForMails(t testing.TB, n int) []ReceivedMail {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d mail(s) to arrive", n), func() bool { return len(m.Mails()) >= n })
	return m.Mails()
}

// WaitForMailTo waits for the first mail to address and returns it.
func (m *MailServer) WaitForMailTo(t testing.TB, address string) ReceivedMail {
	t.Helper()
	var found ReceivedMail
	waitFor(t, "a mail to "+address, func() bool {
		for _, got := range m.Mails() {
			if len(got.To) == 1 && got.To[0] == address {
				found = got
				return true
			}
		}
		return false
	})
	return found
}

// MailsTo returns the mails received for address.
func (m *MailServer) MailsTo(address string) []ReceivedMail {
	var out []ReceivedMail
	for _, got := range m.Mails() {
		if len(got.To) == 1 && got.To[0] == address {
			out = append(out, got)
		}
	}
	return out
}

var linkPattern = regexp.MustCompile(`https?://\S+#token=(\S+)`)

// Link returns the link in the mail's text, and the token in its
// fragment; the HTML part must carry the same link.
func (r ReceivedMail) Link(t testing.TB) (link, token string) {
	t.Helper()
	found := linkPattern.FindAllStringSubmatch(r.Text, -1)
	if len(found) == 0 {
		t.Fatalf("no link in the mail %q:\n%s", r.Subject, r.Text)
	}
	for _, f := range found[1:] {
		if f[0] != found[0][0] {
			t.Fatalf("the mail %q holds two links: %q and %q", r.Subject, found[0][0], f[0])
		}
	}
	if !strings.Contains(r.HTML, `href="`+found[0][0]+`"`) {
		t.Fatalf("the HTML part of %q does not link to %s:\n%s", r.Subject, found[0][0], r.HTML)
	}
	return found[0][0], found[0][1]
}

type mailSession struct {
	server *MailServer
	authed bool
	from   string
	to     []string
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != mailServerUser || password != mailServerPassword {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.server.mu.Lock()
	defer s.server.mu.Unlock()
	if s.server.refusing {
		s.server.refused++
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	}
	s.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.server.mu.Lock()
	if s.server.holding {
		s.server.held++
		release := s.server.release
		s.server.mu.Unlock()
		<-release
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Held, then refused"}
	}
	s.server.mu.Unlock()
	got, err := parseMail(raw)
	if err != nil {
		return err
	}
	got.From, got.To = s.from, s.to
	s.server.mu.Lock()
	s.server.received = append(s.server.received, got)
	s.server.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        { s.from, s.to = "", nil }
func (s *mailSession) Logout() error { return nil }

// parseMail reads a mail as sent by the service: a text part and an HTML
// alternative.
func parseMail(raw []byte) (ReceivedMail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ReceivedMail{}, err
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return ReceivedMail{}, err
	}
	out := ReceivedMail{Subject: subject, Header: msg.Header}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return ReceivedMail{}, err
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		out.Text, err = decodePart(msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
		return out, err
	}
	parts := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := parts.NextPart()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return ReceivedMail{}, err
		}
		body, err := decodePart(p, p.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return ReceivedMail{}, err
		}
		switch ct := p.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "text/plain"):
			out.Text = body
		case strings.HasPrefix(ct, "text/html"):
			out.HTML = body
		}
	}
}

func decodePart(r io.Reader, encoding string) (string, error) {
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	}
	b, err := io.ReadAll(r)
	return strings.ReplaceAll(string(b), "\r\n", "\n"), err
}
