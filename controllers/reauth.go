package controllers

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/mail"
	"tokenauth/middlewares"
	"tokenauth/models"
	"tokenauth/password"
	"tokenauth/ratelimit"
)

// ReauthController lets the holder of a token prove the password (and the
// second factor, when the account has one) again, for the sensitive
// actions that need a recent proof (step-up authentication, RFC 9470).
type ReauthController struct {
	db      *gorm.DB
	hasher  *password.Hasher
	lockout *Lockout
	sealer  models.Sealer
	mail    *mail.Composer
}

// NewReauthController returns a ReauthController whose password and code
// checks count in lockout as logins of the user do: they guess the same
// secrets. Second factors are checked with sealer, and the notice of a
// used recovery code written by composer.
func NewReauthController(db *gorm.DB, hasher *password.Hasher, lockout *Lockout, sealer models.Sealer,
	composer *mail.Composer) *ReauthController {
	return &ReauthController{db: db, hasher: hasher, lockout: lockout, sealer: sealer, mail: composer}
}

type reauthRequest struct {
	Password     string `json:"password" binding:"required,max=256"`
	Code         string `json:"code" binding:"max=16"`
	RecoveryCode string `json:"recovery_code" binding:"max=32"`
}

// Reauth checks the password of the token's user (and a TOTP code or
// recovery code, when the account has a second factor) and, when right,
// records on the token that its holder has just proved it (204). It is
// throttled and counted as a login is: the username's lockout (429 while
// locked, whatever the password) and the client IP's budget of logins. A
// wrong password is 400 validation_failed naming "password", a wrong code
// naming "code": a 401 would tell the client its token is dead, and it is
// not.
func (rc *ReauthController) Reauth(c *gin.Context) error {
	var req reauthRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	tok, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	ctx := requestContext(c)
	var secondFactor func() error
	if tok.User.MFAEnabled() {
		proof, err := secondFactorOf(req.Code, req.RecoveryCode)
		if err != nil {
			return err
		}
		var notice *models.Mail
		if proof.RecoveryCode != "" {
			if notice, err = rc.mail.MFANotice(&tok.User, models.MailRecoveryCodeUsed, models.Now(rc.db)); err != nil {
				return err
			}
		}
		secondFactor = func() error {
			err := models.VerifySecondFactor(ctx, rc.db, rc.sealer, tok.UserID, proof, notice)
			if errors.Is(err, models.ErrInvalidMFACode) {
				field := "code"
				if proof.RecoveryCode != "" {
					field = "recovery_code"
				}
				return apierror.Validation(map[string]string{field: "is wrong or used already"})
			}
			return err
		}
	}
	refused, err := rc.lockout.guard(ctx, tok.User.Username, func() (ratelimit.Outcome, error) {
		_, err := models.Reauthenticate(ctx, rc.db, rc.hasher, tok, req.Password, secondFactor)
		return outcomeOf(err), err
	})
	if refused != nil {
		if err := models.RecordLoginRateLimited(ctx, rc.db, tok.User.Username, refused.digest); err != nil {
			return err
		}
		return apierror.RateLimited(refused.wait)
	}
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
