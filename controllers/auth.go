package controllers

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/clock"
	"tokenauth/config"
	"tokenauth/mail"
	"tokenauth/middlewares"
	"tokenauth/models"
	"tokenauth/password"
	"tokenauth/ratelimit"
)

// AuthController handles logging in and out and registering.
type AuthController struct {
	db      *gorm.DB
	cfg     config.Config
	clock   clock.Clock
	hasher  *password.Hasher
	lockout *Lockout
	mail    *mail.Composer
}

// NewAuthController returns an AuthController that locks usernames with
// too many failed logins through lockout, and writes verification links
// with composer.
func NewAuthController(db *gorm.DB, cfg config.Config, clk clock.Clock, hasher *password.Hasher, lockout *Lockout,
	composer *mail.Composer) *AuthController {
	return &AuthController{db: db, cfg: cfg, clock: clk, hasher: hasher, lockout: lockout, mail: composer}
}

type loginRequest struct {
	Username  string `json:"username" binding:"required,max=150"`
	Password  string `json:"password" binding:"required,max=256"`
	TokenName string `json:"token_name" binding:"max=100,nocontrol"`
}

// Login checks a username and password and issues a new full-scope token.
// Unknown user and wrong password get the same answer after the same work.
// A username with LOGIN_USER_FAILURES failures within LOGIN_USER_WINDOW is
// locked, whatever the password, until its window ends (429), known or
// not. Logins of one username beyond what is left of its budget wait for
// the ones in flight (see Lockout.guard).
func (ac *AuthController) Login(c *gin.Context) error {
	var req loginRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	ctx := requestContext(c)
	var (
		user  *models.User
		check *models.PasswordCheck
	)
	refused, err := ac.lockout.guard(ctx, req.Username, func() (ratelimit.Outcome, error) {
		var err error
		user, check, err = models.Authenticate(ctx, ac.db, ac.hasher, req.Username, req.Password)
		return outcomeOf(err), err
	})
	if refused != nil {
		// Recorded whether the account exists or not: the same work either
		// way, so that the time of the answer does not tell.
		if err := models.RecordLoginRateLimited(ctx, ac.db, req.Username, refused.digest); err != nil {
			return err
		}
		return apierror.RateLimited(refused.wait)
	}
	if err != nil {
		return err
	}
	if ac.cfg.RequireVerifiedEmail && !user.EmailVerified() {
		return ac.refuseUnverified(ctx, user)
	}
	name := req.TokenName
	if name == "" {
		name = "login"
	}
	expires := ac.clock.Now().Add(ac.cfg.TokenTTL)
	tok, err := models.IssueToken(ctx, ac.db, user.ID,
		models.TokenSpec{Name: name, Kind: models.KindLogin, Scopes: models.Scopes{models.ScopeAll}, ExpiresAt: &expires, Login: check},
		tokenPolicy(ac.cfg), true)
	if err != nil {
		return err
	}
	middlewares.NoStore(c)
	c.JSON(http.StatusOK, loginResponse{
		Token: tok.Secret, TokenType: "Bearer", ExpiresAt: utc(tok.ExpiresAt), NewClient: tok.NewClient,
		User: loginUser{ID: user.ID, Username: user.Username, Email: user.Email, EmailVerified: user.EmailVerified()},
	})
	return nil
}

// refuseUnverified answers a login with the right password for an
// account whose address is not verified, when REQUIRE_VERIFIED_EMAIL is
// on: 403, after mailing a fresh link within the account's hourly budget.
// Only someone who knows the password learns this (a wrong one is 401 as
// always), and the answer is how they get a new link.
func (ac *AuthController) refuseUnverified(ctx context.Context, user *models.User) error {
	if user.Email == "" {
		return apierror.ErrNoEmailToVerify
	}
	var tooMany *models.TooManyLinksError
	err := sendVerification(ctx, ac.db, ac.mail, user)
	if err != nil && !errors.As(err, &tooMany) && !errors.Is(err, models.ErrAlreadyVerified) {
		return err
	}
	return apierror.ErrEmailNotVerified
}

type registerRequest struct {
	Username string `json:"username" binding:"required,max=150"`
	Email    string `json:"email" binding:"required,email,max=254"`
	Password string `json:"password" binding:"required,max=256"`
}

// Register creates an account when registration is enabled (404
// otherwise, as if the route did not exist), and mails a link that
// verifies its address. It issues no token: the client logs in next.
func (ac *AuthController) Register(c *gin.Context) error {
	if !ac.cfg.AllowRegistration {
		return apierror.ErrNotFound
	}
	var req registerRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	ctx := requestContext(c)
	user, err := models.NewUser(ctx, ac.hasher, passwordPolicy(ac.cfg), req.Username, req.Email, req.Password)
	if err != nil {
		return err
	}
	link, err := ac.mail.VerificationLink(user, ac.clock.Now(), mail.EmailLinkTTL)
	if err != nil {
		return err
	}
	if err := models.CreateUserWithVerification(ctx, ac.db, user, link); err != nil {
		return err
	}
	c.JSON(http.StatusCreated, gin.H{"user": newUserResponse(user)})
	return nil
}

// Logout revokes the token that made the request.
func (ac *AuthController) Logout(c *gin.Context) error {
	tok, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	return ac.revoke(c, models.RevokeQuery{UserID: tok.UserID, TokenID: tok.ID, Reason: models.RevokedByLogout})
}

// LogoutAll revokes every token of the user, the current one included.
func (ac *AuthController) LogoutAll(c *gin.Context) error {
	tok, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	return ac.revoke(c, models.RevokeQuery{UserID: tok.UserID, Reason: models.RevokedByLogout})
}

// LogoutOthers revokes every token of the user but the current one.
func (ac *AuthController) LogoutOthers(c *gin.Context) error {
	tok, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	return ac.revoke(c, models.RevokeQuery{UserID: tok.UserID, ExceptID: tok.ID, Reason: models.RevokedByLogout})
}

func (ac *AuthController) revoke(c *gin.Context, q models.RevokeQuery) error {
	if _, err := models.RevokeTokens(requestContext(c), ac.db, q); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
