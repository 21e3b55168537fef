package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"regexp"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"tokenauth/config"
	"tokenauth/outbox"
)

// Sender hands a message to whatever delivers mail, and returns what it
// answered.
type Sender interface {
	Send(ctx context.Context, m Message) (reply string, err error)
}

// NewSender returns the sender SMTP_URL names, sending as from
// (MAIL_FROM): an SMTP server, or, when the URL is empty, the log. tlsConfig,
// when not nil, is used to talk TLS to the server (tests trust their own
// server's certificate with it); nil means the system's roots.
func NewSender(smtpURL, from string, tlsConfig *tls.Config, log *slog.Logger) (Sender, error) {
	if smtpURL == "" {
		return &LogSender{log: log}, nil
	}
	return NewSMTP(smtpURL, from, tlsConfig)
}

// LogSender writes mail to the log at INFO instead of sending it, links
// and all, like Django's console backend: with nothing configured, a
// developer still gets the links.
type LogSender struct {
	log *slog.Logger
}

// links finds the links of a mail's text that carry a token.
var links = regexp.MustCompile(`https?://\S+#token=\S+`)

// Send logs m.
func (s *LogSender) Send(ctx context.Context, m Message) (string, error) {
	s.log.LogAttrs(ctx, slog.LevelInfo, "mail (not sent: SMTP_URL is empty)",
		slog.String("kind", m.Kind), slog.String("to", m.To), slog.String("subject", m.Subject),
		slog.Any("links", links.FindAllString(m.Text, -1)), slog.String("text", m.Text))
	return "written to the log", nil
}

// SMTP sends mail through an SMTP server, one connection per mail (the
// outbox sends one at a time, and a connection kept open would be cut by
// the server's idle timeout between them).
type SMTP struct {
	server config.SMTPServer
	from   string
	tls    *tls.Config
}

// smtpTimeout bounds the conversation with the server.
const smtpTimeout = 30 * time.Second

// NewSMTP returns a sender for the server of SMTP_URL, sending as from
// (MAIL_FROM).
func NewSMTP(smtpURL, from string, tlsConfig *tls.Config) (*SMTP, error) {
	server, err := config.ParseSMTPURL(smtpURL)
	if err != nil {
		return nil, err
	}
	if _, err := netmail.ParseAddress(from); err != nil {
		return nil, fmt.Errorf("MAIL_FROM: %q is not an address such as \"tokenauth <no-reply@example.com>\"", from)
	}
	if tlsConfig == nil {
		tlsConfig = &tls.Config{}
	}
	s := &SMTP{server: server, from: from, tls: tlsConfig.Clone()}
	if s.tls.ServerName == "" {
		s.tls.ServerName = server.Host
	}
	s.tls.MinVersion = max(s.tls.MinVersion, tls.VersionTLS12)
	return s, nil
}

// dialer returns the function that opens the connection of one send: a
// TCP connection (TLS from the start for smtps://) that is closed as soon
// as ctx ends. go-mail honours a context only while it dials; closing the
// connection is what stops a conversation under way, so that a shutdown
// does not wait for a slow server.
func (s *SMTP) dialer(ctx context.Context) gomail.DialContextFunc {
	return func(dialCtx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(dialCtx, network, address)
		if err != nil {
			return nil, err
		}
		if s.server.Implicit {
			tlsConn := tls.Client(conn, s.tls)
			if err := tlsConn.HandshakeContext(dialCtx); err != nil {
				conn.Close()
				return nil, err
			}
			conn = tlsConn
		}
		context.AfterFunc(ctx, func() { conn.Close() })
		return conn, nil
	}
}

// Send sends m and returns the server's answer to it. A recipient the
// server refuses for good (5xx) is a permanent failure (outbox.Permanent);
// anything else may pass if tried again.
func (s *SMTP) Send(ctx context.Context, m Message) (string, error) {
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return "", outbox.Permanent(fmt.Errorf("MAIL_FROM: %w", err))
	}
	if err := msg.To(m.To); err != nil {
		return "", outbox.Permanent(fmt.Errorf("recipient: %w", err))
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	opts := []gomail.Option{gomail.WithPort(s.server.Port), gomail.WithTimeout(smtpTimeout), gomail.WithTLSConfig(s.tls),
		gomail.WithDialContextFunc(s.dialer(ctx))}
	switch {
	case s.server.Implicit:
		opts = append(opts, gomail.WithSSL())
	case s.server.NoTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.server.Username != "" {
		// go-mail picks the best mechanism the server offers, but only
		// among those safe without TLS when it did not set up the TLS
		// itself, as with smtps:// through our dialer (the connection is
		// encrypted all the same): there PLAIN is asked for by name.
		mech := gomail.SMTPAuthAutoDiscover
		if s.server.Implicit {
			mech = gomail.SMTPAuthPlain
		}
		opts = append(opts, gomail.WithSMTPAuth(mech),
			gomail.WithUsername(s.server.Username), gomail.WithPassword(s.server.Password))
	}
	client, err := gomail.NewClient(s.server.Host, opts...)
	if err != nil {
		return "", err
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		var sendErr *gomail.SendError
		if errors.As(err, &sendErr) && sendErr.Reason == gomail.ErrSMTPRcptTo && !sendErr.IsTemp() {
			return "", outbox.Permanent(err)
		}
		return "", err
	}
	return strings.TrimSpace(msg.ServerResponse()), nil
}
