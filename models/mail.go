package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Kinds of mail the service sends.
const (
	MailPasswordReset     = "password_reset"
	MailVerifyEmail       = "verify_email"
	MailEmailChange       = "email_change"
	MailEmailChangeNotice = "email_change_notice"
)

// MailTable is the table of the outbox.
const MailTable = "mails"

// Mail is a message in the outbox. It is written in the same transaction
// as the change that causes it (a reset link with its token, a
// registration with its user), and a worker sends it afterwards (package
// mail), retrying while the mail server refuses.
//
// Body holds the message, link included, sealed under the server's secret
// key (package keyring) by whoever wrote the row: a copy of the database
// yields no link. Once the mail is sent, or given up, the body is
// emptied; the rest stays for the operator (tokenauth mail) until prune.
type Mail struct {
	ID uint `gorm:"primaryKey"`
	// UserID is the account the mail is about.
	UserID    *uint  `gorm:"index"`
	User      *User  `gorm:"constraint:OnDelete:CASCADE"`
	Kind      string `gorm:"size:32;not null"`
	Recipient string `gorm:"size:254;not null"`
	Subject   string `gorm:"size:200;not null"`
	Body      string `gorm:"type:text;not null" json:"-"`
	CreatedAt time.Time
	Delivery
}

// DeliveryRow returns the mail's id and delivery state.
func (m *Mail) DeliveryRow() (uint, *Delivery) { return m.ID, &m.Delivery }

// queueMail puts m in the outbox, in the transaction tx of commit.
func queueMail(tx *gorm.DB, m *Mail) error {
	return enqueue(tx, m, &m.Delivery)
}

// MailDelivered records that the mail went out, under the claim that took
// it, and forgets its body.
func MailDelivered(ctx context.Context, db *gorm.DB, m *Mail, claim string) (bool, error) {
	return Settle(ctx, db, MailTable, m.ID, claim, Outcome{Delivered: true, Columns: map[string]any{"body": ""}})
}

// ListMail returns the mails still to send and those given up, oldest
// first, at most limit of them.
func ListMail(ctx context.Context, db *gorm.DB, limit int) ([]Mail, error) {
	mails := []Mail{}
	err := db.WithContext(ctx).Omit("body").Where("delivered_at IS NULL").Order("id").Limit(limit).Find(&mails).Error
	return mails, translate(err)
}

// PruneMail deletes mail sent or given up before before, and password
// reset requests given up before then (an answered request is deleted
// when it is answered), and returns how many rows it deleted.
func PruneMail(ctx context.Context, db *gorm.DB, before time.Time) (int64, error) {
	res := db.WithContext(ctx).Where("delivered_at < ? OR failed_at < ?", before.UTC(), before.UTC()).Delete(&Mail{})
	if res.Error != nil {
		return 0, translate(res.Error)
	}
	requests := db.WithContext(ctx).Where("failed_at < ?", before.UTC()).Delete(&PasswordResetRequest{})
	return res.RowsAffected + requests.RowsAffected, translate(requests.Error)
}
