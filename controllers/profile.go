package controllers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/config"
	"tokenauth/mail"
	"tokenauth/middlewares"
	"tokenauth/models"
	"tokenauth/password"
	"tokenauth/ratelimit"
)

// ProfileController serves the authenticated user's own account.
type ProfileController struct {
	db      *gorm.DB
	cfg     config.Config
	hasher  *password.Hasher
	lockout *Lockout
	mail    *mail.Composer
}

// NewProfileController returns a ProfileController. Wrong current
// passwords count in lockout as failed logins of the user: both guess the
// same secret, so they share one budget. The links of email changes are
// written by composer.
func NewProfileController(db *gorm.DB, cfg config.Config, hasher *password.Hasher, lockout *Lockout,
	composer *mail.Composer) *ProfileController {
	return &ProfileController{db: db, cfg: cfg, hasher: hasher, lockout: lockout, mail: composer}
}

// Show returns the user.
func (pc *ProfileController) Show(c *gin.Context) error {
	user, err := middlewares.CurrentUser(c)
	if err != nil {
		return err
	}
	renderUser(c, http.StatusOK, newUserResponse(user))
	return nil
}

type profileUpdateRequest struct {
	Email string `json:"email" binding:"required,email,max=254"`
}

// Update asks to change the user's email address. The address changes
// only when the link mailed to the new one is followed (202, with the
// pending address); a notice goes to the old one. A change needs a
// fresh proof of the password (401 reauthentication_required). The same address is 200
// and changes nothing; an address another account verified is 409.
func (pc *ProfileController) Update(c *gin.Context) error {
	var req profileUpdateRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	user, err := middlewares.CurrentUser(c)
	if err != nil {
		return err
	}
	email := strings.TrimSpace(req.Email)
	if models.EmailKey(email) == models.EmailKey(user.Email) {
		renderUser(c, http.StatusOK, newUserResponse(user))
		return nil
	}
	// Whoever controls the address controls the account (password
	// resets): moving it takes a fresh proof of the password.
	if err := middlewares.RequireFreshAuth(c); err != nil {
		return err
	}
	link, notice, err := pc.mail.ChangeLink(user, email, models.Now(pc.db), mail.EmailLinkTTL)
	if err != nil {
		return err
	}
	err = models.RequestEmailChange(requestContext(c), pc.db, user, email, link, notice, mail.LinksPerHour)
	if errors.Is(err, models.ErrConflict) {
		return apierror.ErrEmailTaken
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, emailChangeResponse{PendingEmail: email, User: newUserResponse(user)})
	return nil
}

type passwordChangeRequest struct {
	CurrentPassword string `json:"current_password" binding:"required,max=256"`
	NewPassword     string `json:"new_password" binding:"required,max=256"`
}

// ChangePassword replaces the password and revokes every other token of the
// user; the token making the request keeps working.
func (pc *ProfileController) ChangePassword(c *gin.Context) error {
	var req passwordChangeRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	tok, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	ctx := requestContext(c)
	refused, err := pc.lockout.guard(ctx, tok.User.Username, func() (ratelimit.Outcome, error) {
		err := models.ChangePassword(ctx, pc.db, pc.hasher, passwordPolicy(pc.cfg), &tok.User,
			req.CurrentPassword, req.NewPassword, tok.ID)
		if currentPasswordRight(err) {
			// The attempt was no guess.
			return ratelimit.Succeeded, err
		}
		return outcomeOf(err), err
	})
	if refused != nil {
		return apierror.RateLimited(refused.wait)
	}
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// currentPasswordRight tells whether a password change got past its
// current password: it succeeded, or only the new password was refused.
// Anything else is judged by outcomeOf.
func currentPasswordRight(err error) bool {
	if err == nil {
		return true
	}
	var invalid *models.ValidationError
	if !errors.As(err, &invalid) {
		return false
	}
	_, wrong := invalid.Fields["current_password"]
	return !wrong
}
