package mail

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"gorm.io/gorm"

	"tokenauth/metrics"
	"tokenauth/models"
	"tokenauth/outbox"
)

// MailPolicy is how the outbox tries a mail: 10 attempts, 30 seconds apart
// at first and doubling up to an hour, so a mail server down for about
// three hours loses nothing; then the mail is given up (tokenauth mail
// lists it).
var MailPolicy = outbox.Policy{MaxAttempts: 10, FirstRetry: 30 * time.Second, MaxRetry: time.Hour,
	AttemptTimeout: 2 * smtpTimeout, Poll: 5 * time.Second}

// resetPolicy is how a password reset request is answered: a failure is
// the database's, which comes back soon.
var resetPolicy = outbox.Policy{MaxAttempts: 10, FirstRetry: 5 * time.Second, MaxRetry: 5 * time.Minute,
	AttemptTimeout: 30 * time.Second, Poll: 5 * time.Second}

// ResetsPerHour is how many reset links an account is sent in an hour at
// most, however many requests name it.
const ResetsPerHour = 3

// LinksPerHour is how many verification links, and how many requests to
// change the address, an account may have mailed in an hour.
const LinksPerHour = 3

// EmailLinkTTL is how long a link that verifies an address, or confirms
// a new one, works.
const EmailLinkTTL = 24 * time.Hour

// Outbox works in the background: it answers password reset requests
// (finding the accounts, issuing their links and queueing their mails)
// and sends the mail of the outbox.
type Outbox struct {
	db       *gorm.DB
	composer *Composer
	sender   Sender
	metrics  *metrics.Metrics
	resetTTL time.Duration
	mails    *outbox.Worker[models.Mail, *models.Mail]
	resets   *outbox.Worker[models.PasswordResetRequest, *models.PasswordResetRequest]
}

// NewOutbox returns the outbox of db, sending with sender and counting in
// m. Reset links last resetTTL (PASSWORD_RESET_TTL).
func NewOutbox(db *gorm.DB, composer *Composer, sender Sender, m *metrics.Metrics, resetTTL time.Duration,
	policy outbox.Policy, log *slog.Logger) *Outbox {
	o := &Outbox{db: db, composer: composer, sender: sender, metrics: m, resetTTL: resetTTL}
	o.mails = outbox.NewWorker[models.Mail, *models.Mail](db, models.MailTable, policy, o.send, log)
	o.mails.OnGiveUp(map[string]any{"body": ""})
	o.mails.Observe(func(r outbox.Result) {
		switch r {
		case outbox.Delivered:
			m.MailAttempt(metrics.MailSent)
		case outbox.Retrying:
			m.MailAttempt(metrics.MailRetried)
		case outbox.GaveUp:
			m.MailAttempt(metrics.MailFailed)
		}
	})
	o.mails.AfterPass(o.count)
	o.resets = outbox.NewWorker[models.PasswordResetRequest, *models.PasswordResetRequest](db,
		models.ResetRequestTable, resetPolicy, o.answerReset, log)
	return o
}

// Run works until ctx ends. A mail being sent then is released, due at
// once at the next start; the rest wait in the table.
func (o *Outbox) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { o.mails.Run(ctx) })
	wg.Go(func() { o.resets.Run(ctx) })
	wg.Wait()
}

// Wake has the worker of table look for work now (see
// models.ListenForQueued).
func (o *Outbox) Wake(table string) {
	switch table {
	case models.MailTable:
		o.mails.Wake()
	case models.ResetRequestTable:
		o.resets.Wake()
	}
}

// Started tells whether each worker has made its first pass, which
// delivers what an earlier run left.
func (o *Outbox) Started() bool { return o.mails.Passes() > 0 && o.resets.Passes() > 0 }

// WakeAll has every worker look for work now, as a poll would.
func (o *Outbox) WakeAll() {
	o.mails.Wake()
	o.resets.Wake()
}

// send sends one mail of the outbox. A body that cannot be opened (sealed
// under another key) can never be sent: given up at once.
func (o *Outbox) send(ctx context.Context, m *models.Mail) (map[string]any, error) {
	msg, err := o.composer.open(m)
	if err != nil {
		return nil, outbox.Permanent(err)
	}
	if _, err := o.sender.Send(ctx, msg); err != nil {
		return nil, err
	}
	return map[string]any{"body": ""}, nil
}

// answerReset answers one password reset request: a link for every
// account it names, in one transaction that also deletes the request.
func (o *Outbox) answerReset(ctx context.Context, r *models.PasswordResetRequest) (map[string]any, error) {
	users, err := models.ResetAccounts(ctx, o.db, r)
	if err != nil {
		return nil, err
	}
	now := models.Now(o.db)
	links := make([]models.ResetLink, 0, len(users))
	for i := range users {
		link, err := o.composer.ResetLink(&users[i], now, o.resetTTL)
		if err != nil {
			return nil, err
		}
		links = append(links, models.ResetLink{User: &users[i], Link: link})
	}
	_, err = models.IssueResetLinks(ctx, o.db, r, links, ResetsPerHour)
	return nil, err
}

// count reports how many mails wait and how many were given up.
func (o *Outbox) count(ctx context.Context) {
	c, err := models.CountDeliveries(ctx, o.db, models.MailTable)
	if err == nil {
		o.metrics.MailOutbox(c.Pending, c.Failed)
	}
}
