// Package mail writes and sends the service's mail: the links that reset
// a password, verify an address or confirm a change of address, and the
// notice that goes to the old address. Templates (text and HTML) are
// embedded; mail waits in the outbox (models.Mail, written in the same
// transaction as its cause) until the Outbox sends it through SMTP, or to
// the log when SMTP_URL is empty.
package mail

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"tokenauth/keyring"
	"tokenauth/models"
)

// sealPurpose is the keyring purpose under which mail bodies are sealed.
const sealPurpose = "mail body"

// Composer writes the mails of links, sealed for the outbox.
type Composer struct {
	keyring   *keyring.Keyring
	publicURL string
}

// NewComposer returns a Composer whose links start with publicURL
// (PUBLIC_URL) and whose mails are sealed under kr.
func NewComposer(kr *keyring.Keyring, publicURL string) *Composer {
	return &Composer{keyring: kr, publicURL: strings.TrimRight(publicURL, "/")}
}

// Pages of the web page that links lead to. The secret is in the
// fragment: browsers never send a fragment to a server, so it reaches no
// access log and no Referer.
const (
	resetPage  = "/reset"
	verifyPage = "/verify"
)

// link returns the URL of a page with the secret in its fragment.
func (c *Composer) link(page, secret string) string {
	return c.publicURL + page + "#token=" + secret
}

// compose renders a mail of kind to to, and seals it.
func (c *Composer) compose(kind, to string, body content) (*models.Mail, error) {
	body.PublicURL = c.publicURL
	msg, err := render(kind, to, body)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	sealed, err := c.keyring.Seal(sealPurpose, plain)
	if err != nil {
		return nil, err
	}
	return &models.Mail{Kind: kind, Recipient: to, Subject: msg.Subject, Body: sealed}, nil
}

// open reads the message of a mail from the outbox.
func (c *Composer) open(m *models.Mail) (Message, error) {
	plain, err := c.keyring.Open(sealPurpose, m.Body)
	if err != nil {
		return Message{}, fmt.Errorf("opening the body of mail %d: %w", m.ID, err)
	}
	var msg Message
	if err := json.Unmarshal(plain, &msg); err != nil {
		return Message{}, fmt.Errorf("reading the body of mail %d: %w", m.ID, err)
	}
	msg.Kind, msg.To, msg.Subject = m.Kind, m.Recipient, m.Subject
	return msg, nil
}

// newLink makes a link of kind to page for u, mailed to to, valid for
// ttl from now.
func (c *Composer) newLink(kind, prefix, page string, u *models.User, to string, now time.Time, ttl time.Duration) (models.Link, error) {
	secret, err := models.NewLinkSecret(prefix)
	if err != nil {
		return models.Link{}, err
	}
	expires := now.Add(ttl)
	m, err := c.compose(kind, to, content{Username: u.Username, Email: to, Link: c.link(page, secret),
		Expires: timeText(expires), ValidFor: durationText(ttl)})
	if err != nil {
		return models.Link{}, err
	}
	return models.Link{Secret: secret, ExpiresAt: expires, Mail: m}, nil
}

// ResetLink makes a password reset link for u, mailed to their address.
func (c *Composer) ResetLink(u *models.User, now time.Time, ttl time.Duration) (models.Link, error) {
	return c.newLink(models.MailPasswordReset, models.ResetSecretPrefix, resetPage, u, u.Email, now, ttl)
}

// VerificationLink makes a link that verifies u's address, mailed to it.
func (c *Composer) VerificationLink(u *models.User, now time.Time, ttl time.Duration) (models.Link, error) {
	return c.newLink(models.MailVerifyEmail, models.EmailSecretPrefix, verifyPage, u, u.Email, now, ttl)
}

// ChangeLink makes a link that makes email u's address, mailed to email,
// and the notice (without a link) for u's present address.
func (c *Composer) ChangeLink(u *models.User, email string, now time.Time, ttl time.Duration) (models.Link, *models.Mail, error) {
	link, err := c.newLink(models.MailEmailChange, models.EmailSecretPrefix, verifyPage, u, email, now, ttl)
	if err != nil {
		return models.Link{}, nil, err
	}
	notice, err := c.compose(models.MailEmailChangeNotice, u.Email, content{Username: u.Username, Email: email})
	if err != nil {
		return models.Link{}, nil, err
	}
	return link, notice, nil
}

// ExpiryNotice writes the mail of a notice of a token's expiry to u, or
// nil when u has no verified address.
func (c *Composer) ExpiryNotice(u *models.User, n models.ExpiryNotice) (*models.Mail, error) {
	if u.Email == "" || !u.EmailVerified() || n.Token.ExpiresAt == nil {
		return nil, nil
	}
	kind := models.MailTokenExpiring
	if n.Type == models.EventTokenExpired {
		kind = models.MailTokenExpired
	}
	return c.compose(kind, u.Email, content{Username: u.Username, TokenName: n.Token.Name,
		Expires: timeText(*n.Token.ExpiresAt)})
}

// MFANotice is the notice (without a link) that tells u of a change to
// their second factor: models.MailMFADisabled or
// models.MailRecoveryCodeUsed. It is nil when u has no address to tell.
func (c *Composer) MFANotice(u *models.User, kind string, now time.Time) (*models.Mail, error) {
	if u.Email == "" {
		return nil, nil
	}
	return c.compose(kind, u.Email, content{Username: u.Username, Email: u.Email, SentAt: timeText(now)})
}

// TestMessage is the mail of tokenauth sendtestmail.
func (c *Composer) TestMessage(to string, now time.Time) (Message, error) {
	return render(kindTest, to, content{PublicURL: c.publicURL, SentAt: timeText(now)})
}
