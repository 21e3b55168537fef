package controllers

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/middlewares"
	"tokenauth/models"
	"tokenauth/password"
	"tokenauth/ratelimit"
)

// ReauthController lets the holder of a token prove the password again,
// for the sensitive actions that need a recent proof (step-up
// authentication, RFC 9470).
type ReauthController struct {
	db      *gorm.DB
	hasher  *password.Hasher
	lockout *Lockout
}

// NewReauthController returns a ReauthController whose password checks
// count in lockout as logins of the user do: they guess the same secret.
func NewReauthController(db *gorm.DB, hasher *password.Hasher, lockout *Lockout) *ReauthController {
	return &ReauthController{db: db, hasher: hasher, lockout: lockout}
}

type reauthRequest struct {
	Password string `json:"password" binding:"required,max=256"`
}

// Reauth checks the password of the token's user and, when it is right,
// records on the token that its holder has just proved it (204). It is
// throttled and counted as a login is: the username's lockout (429 while
// locked, whatever the password) and the client IP's budget of logins. A
// wrong password is 400 validation_failed naming "password": a 401 would
// tell the client its token is dead, and it is not.
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
	refused, err := rc.lockout.guard(ctx, tok.User.Username, func() (ratelimit.Outcome, error) {
		_, err := models.Reauthenticate(ctx, rc.db, rc.hasher, tok, req.Password)
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
