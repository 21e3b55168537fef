package config

import (
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"strconv"
)

// SMTPServer is the mail server SMTP_URL names.
type SMTPServer struct {
	Host string
	Port int
	// Implicit: TLS from the first byte (smtps://). Otherwise STARTTLS is
	// required, unless NoTLS (?tls=none, for a relay on the same host or a
	// trusted network).
	Implicit, NoTLS    bool
	Username, Password string
}

// ParseSMTPURL reads an SMTP_URL: smtp://[user:pass@]host[:port] (STARTTLS
// required, port 587 by default; ?tls=none for a local relay without TLS)
// or smtps://[user:pass@]host[:port] (TLS from the start, port 465). Its
// errors never repeat the URL, which may hold a password.
func ParseSMTPURL(raw string) (SMTPServer, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return SMTPServer{}, errors.New("SMTP_URL: not a URL")
	}
	s := SMTPServer{Host: u.Hostname()}
	switch u.Scheme {
	case "smtp":
		s.Port = 587
	case "smtps":
		s.Port, s.Implicit = 465, true
	default:
		return SMTPServer{}, errors.New("SMTP_URL: must be an smtp:// or smtps:// URL")
	}
	if s.Host == "" {
		return SMTPServer{}, errors.New("SMTP_URL: names no host")
	}
	if p := u.Port(); p != "" {
		if s.Port, err = strconv.Atoi(p); err != nil || s.Port < 1 || s.Port > 65535 {
			return SMTPServer{}, errors.New("SMTP_URL: the port must be a number from 1 to 65535")
		}
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	if u.Path != "" && u.Path != "/" || u.Fragment != "" {
		return SMTPServer{}, errors.New("SMTP_URL: must have no path")
	}
	q := u.Query()
	for key := range q {
		if key != "tls" {
			return SMTPServer{}, fmt.Errorf("SMTP_URL: unknown parameter %q (only tls=none is known)", key)
		}
	}
	if q.Has("tls") {
		if q.Get("tls") != "none" || s.Implicit {
			return SMTPServer{}, errors.New("SMTP_URL: tls= may only be none, and only for smtp://")
		}
		s.NoTLS = true
	}
	return s, nil
}

// checkMail checks the mail settings.
func (c Config) checkMail() error {
	if c.SMTPURL != "" {
		if _, err := ParseSMTPURL(c.SMTPURL); err != nil {
			return err
		}
	}
	if _, err := netmail.ParseAddress(c.MailFrom); err != nil {
		return fmt.Errorf("MAIL_FROM: %q is not an address such as \"tokenauth <no-reply@example.com>\"", c.MailFrom)
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
		u.User != nil {
		return fmt.Errorf("PUBLIC_URL: %q is not a base URL such as https://app.example.com", c.PublicURL)
	}
	return nil
}
