package controllers

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/config"
	"tokenauth/mail"
	"tokenauth/middlewares"
	"tokenauth/models"
	"tokenauth/password"
)

// EmailController handles the links sent by mail: password resets, and
// verifying an address.
type EmailController struct {
	db      *gorm.DB
	cfg     config.Config
	hasher  *password.Hasher
	lockout *Lockout
	mail    *mail.Composer
}

// NewEmailController returns an EmailController that writes its mails
// with composer. A reset clears the user's login lockout in lockout.
func NewEmailController(db *gorm.DB, cfg config.Config, hasher *password.Hasher, lockout *Lockout,
	composer *mail.Composer) *EmailController {
	return &EmailController{db: db, cfg: cfg, hasher: hasher, lockout: lockout, mail: composer}
}

type resetRequest struct {
	Email    string `json:"email" binding:"omitempty,email,max=254"`
	Username string `json:"username" binding:"omitempty,max=150"`
}

// resetAccepted is the one answer to every well-formed reset request.
var resetAccepted = gin.H{"message": "If an account matches, a link to reset its password has been mailed to its address."}

// RequestReset takes a request for a password reset link by address or
// username. The answer, and the work done before it, are the same
// whether an account matches or not: the request is stored, and the
// outbox worker finds the accounts and mails their links (mail.Outbox).
func (ec *EmailController) RequestReset(c *gin.Context) error {
	var req resetRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	switch {
	case req.Email == "" && req.Username == "":
		return apierror.Validation(map[string]string{"email": "is required, or username"})
	case req.Email != "" && req.Username != "":
		return apierror.Validation(map[string]string{"username": "must not be given with email: give one of them"})
	}
	if err := models.QueueResetRequest(requestContext(c), ec.db, req.Email, req.Username); err != nil {
		return err
	}
	c.JSON(http.StatusAccepted, resetAccepted)
	return nil
}

type resetConfirmRequest struct {
	Token       string `json:"token" binding:"required,max=100"`
	NewPassword string `json:"new_password" binding:"required,max=256"`
}

// ConfirmReset sets a new password through a reset link, revokes every
// token of the user and clears their login lockout. It answers 204 and
// no token: whoever holds the link signs in next like anyone else.
func (ec *EmailController) ConfirmReset(c *gin.Context) error {
	var req resetConfirmRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	ctx := requestContext(c)
	u, err := models.ResetPassword(ctx, ec.db, ec.hasher, passwordPolicy(ec.cfg), req.Token, req.NewPassword)
	if errors.Is(err, models.ErrInvalidLink) {
		return apierror.ErrInvalidResetToken
	}
	if err != nil {
		return err
	}
	if err := ec.lockout.clear(ctx, u.Username); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// RequestVerification mails a link that verifies the user's address.
func (ec *EmailController) RequestVerification(c *gin.Context) error {
	user, err := middlewares.CurrentUser(c)
	if err != nil {
		return err
	}
	ctx := requestContext(c)
	switch err := sendVerification(ctx, ec.db, ec.mail, user); {
	case errors.Is(err, models.ErrNoEmail):
		return apierror.New(http.StatusConflict, "conflict", "Your account has no email address: set one first (PATCH /api/profile/).")
	case errors.Is(err, models.ErrAlreadyVerified):
		return apierror.New(http.StatusConflict, "conflict", "Your email address is verified already.")
	case err != nil:
		return err
	}
	c.JSON(http.StatusAccepted, gin.H{"message": "A link to verify your address has been mailed to " + user.Email + "."})
	return nil
}

// sendVerification mails user a link that verifies their address, within
// the hourly budget.
func sendVerification(ctx context.Context, db *gorm.DB, composer *mail.Composer, user *models.User) error {
	if user.Email == "" {
		return models.ErrNoEmail
	}
	link, err := composer.VerificationLink(user, models.Now(db), mail.EmailLinkTTL)
	if err != nil {
		return err
	}
	return models.RequestVerification(ctx, db, user, link, mail.LinksPerHour)
}

type emailConfirmRequest struct {
	Token string `json:"token" binding:"required,max=100"`
}

// ConfirmEmail follows an email link: it verifies the address, or
// switches to the new address of a change.
func (ec *EmailController) ConfirmEmail(c *gin.Context) error {
	var req emailConfirmRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	_, err := models.ConfirmEmail(requestContext(c), ec.db, req.Token)
	switch {
	case errors.Is(err, models.ErrInvalidLink):
		return apierror.ErrInvalidVerificationToken
	case errors.Is(err, models.ErrConflict):
		return apierror.ErrEmailTaken
	case err != nil:
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
