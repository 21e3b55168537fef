package controllers

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/config"
	"tokenauth/middlewares"
	"tokenauth/models"
)

// ProfileController serves the authenticated user's own account.
type ProfileController struct {
	db      *gorm.DB
	cfg     config.Config
	hasher  *models.PasswordHasher
	auth    *middlewares.Authenticator
	lockout LoginLockout
}

// NewProfileController returns a ProfileController. Wrong current
// passwords count in lockout as failed logins of the user: both guess the
// same secret, so they share one budget.
func NewProfileController(db *gorm.DB, cfg config.Config, hasher *models.PasswordHasher, auth *middlewares.Authenticator, lockout LoginLockout) *ProfileController {
	return &ProfileController{db: db, cfg: cfg, hasher: hasher, auth: auth, lockout: lockout}
}

// Show returns the user.
func (pc *ProfileController) Show(c *gin.Context) {
	user, _ := middlewares.CurrentUser(c)
	renderUser(c, http.StatusOK, newUserResponse(user))
}

type profileUpdateRequest struct {
	Email string `json:"email" binding:"required,email,max=254"`
}

// Update changes the user's email.
func (pc *ProfileController) Update(c *gin.Context) {
	var req profileUpdateRequest
	if err := bindJSON(c, &req); err != nil {
		apierror.Abort(c, err)
		return
	}
	user, _ := middlewares.CurrentUser(c)
	if err := models.UpdateEmail(requestContext(c), pc.db, user, req.Email); err != nil {
		apierror.Abort(c, err)
		return
	}
	pc.auth.ForgetUser(user.ID)
	renderUser(c, http.StatusOK, newUserResponse(user))
}

type passwordChangeRequest struct {
	CurrentPassword string `json:"current_password" binding:"required,max=256"`
	NewPassword     string `json:"new_password" binding:"required,max=256"`
}

// ChangePassword replaces the password and revokes every other token of the
// user; the token making the request keeps working.
func (pc *ProfileController) ChangePassword(c *gin.Context) {
	var req passwordChangeRequest
	if err := bindJSON(c, &req); err != nil {
		apierror.Abort(c, err)
		return
	}
	tok, _ := middlewares.CurrentToken(c)
	ctx := requestContext(c)
	key := lockoutKey(tok.User.Username)
	wait, err := attemptLockout(ctx, pc.lockout, key)
	if err != nil {
		apierror.Abort(c, err)
		return
	}
	if wait > 0 {
		apierror.Abort(c, apierror.RateLimited(wait))
		return
	}
	revoked, err := models.ChangePassword(ctx, pc.db, pc.hasher,
		models.PasswordPolicy{MinLength: pc.cfg.PasswordMinLength}, &tok.User, req.CurrentPassword, req.NewPassword, tok.ID)
	if currentPasswordRight(err) {
		// The attempt was no guess.
		if err := clearLockout(ctx, pc.lockout, key); err != nil {
			apierror.Abort(c, err)
			return
		}
	}
	if err != nil {
		apierror.Abort(c, err)
		return
	}
	// The user's cached lookups hold the old password hash; drop them all.
	pc.auth.ForgetUser(tok.UserID)
	pc.auth.ForgetTokens(revoked...)
	c.Status(http.StatusNoContent)
}

// currentPasswordRight tells whether a password change got past its
// current password: it succeeded, or only the new password was refused.
// Anything else (a wrong current password, an outage, a timeout) leaves
// the attempt counted.
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
