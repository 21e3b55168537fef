package cli

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"tokenauth/keyring"
	"tokenauth/models"
	"tokenauth/secondfactor"
)

// mfa-reset turns a user's second factor off, revokes every token of
// theirs, records it as the operator's, and mails the user; a user
// without one is an error that says so.
func TestMFAReset(t *testing.T) {
	c := newCLI(t)
	if _, _, err := c.run("correct horse battery\n", "createuser", "--username", "alice", "--email", "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, c.url).ORM
	u, err := models.FindUserByUsername(t.Context(), db, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.run("", "mfa-reset", "alice"); err == nil || !strings.Contains(err.Error(), "no second factor") {
		t.Fatalf("mfa-reset without a second factor: got %v", err)
	}

	keys, err := keyring.Load(t.Context(), db, "")
	if err != nil {
		t.Fatal(err)
	}
	e, err := secondfactor.NewEnrolment("tokenauth", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := models.StartTOTPEnrolment(t.Context(), db, keys, u.ID, e.Secret); err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(e.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	codes, _ := secondfactor.NewRecoveryCodes()
	tok, err := models.IssueToken(t.Context(), db, u.ID, models.TokenSpec{Name: "laptop", Kind: models.KindPersonal,
		Scopes: models.Scopes{"*"}}, models.TokenPolicy{MaxPerUser: 10}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := models.ConfirmTOTP(t.Context(), db, keys, u.ID, tok.ID, code, codes); err != nil {
		t.Fatal(err)
	}

	out, _, err := c.run("", "mfa-reset", "ALICE")
	if err != nil || !strings.Contains(out, "turned the second factor of alice off") {
		t.Fatalf("mfa-reset: %v %q", err, out)
	}
	var after models.User
	if err := db.Take(&after, u.ID).Error; err != nil {
		t.Fatal(err)
	}
	var creds, recovery, live, mails int64
	db.Model(&models.TOTPCredential{}).Where("user_id = ?", u.ID).Count(&creds)
	db.Model(&models.RecoveryCode{}).Where("user_id = ?", u.ID).Count(&recovery)
	db.Model(&models.APIToken{}).Where("user_id = ? AND revoked_at IS NULL", u.ID).Count(&live)
	db.Model(&models.Mail{}).Where("user_id = ? AND kind = ?", u.ID, models.MailMFADisabled).Count(&mails)
	if after.MFAEnabled() || creds != 0 || recovery != 0 || live != 0 || mails != 1 {
		t.Errorf("after mfa-reset: enabled %v, %d credential(s), %d recovery code(s), %d live token(s), %d notice(s)",
			after.MFAEnabled(), creds, recovery, live, mails)
	}
	out, _, err = c.run("", "events", "alice")
	if err != nil || !regexp.MustCompile(`mfa_disabled\s+operator`).MatchString(out) {
		t.Errorf("events: %v %q", err, out)
	}
}
