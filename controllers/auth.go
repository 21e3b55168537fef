package controllers

import (
	"context"
	"errors"
	"net/http"
	"time"

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
	// sealer opens TOTP secrets and hashes recovery codes (the keyring).
	sealer models.Sealer
}

// NewAuthController returns an AuthController that locks usernames with
// too many failed logins (and wrong second-factor codes) through lockout,
// writes verification links and notices with composer, and checks second
// factors with sealer.
func NewAuthController(db *gorm.DB, cfg config.Config, clk clock.Clock, hasher *password.Hasher, lockout *Lockout,
	composer *mail.Composer, sealer models.Sealer) *AuthController {
	return &AuthController{db: db, cfg: cfg, clock: clk, hasher: hasher, lockout: lockout, mail: composer, sealer: sealer}
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
//
// An account with a second factor gets no token for the password: 401
// mfa_required with an mfa_token for POST /api/login/mfa/. The checks come
// in this order: lockout, password, account active, verified email,
// second factor. The password step of such an account neither counts as a
// failure nor clears the username's failures: only the code does.
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
		if err == nil && user.MFAEnabled() {
			// Half a login: the code decides.
			return ratelimit.Abandoned, nil
		}
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
	if user.MFAEnabled() {
		return ac.challenge(c, user, check, name)
	}
	return ac.issueLogin(c, user, check, name)
}

// mfaRequiredResponse is the answer to a right password on an account with
// a second factor: 401, with what the second step needs.
type mfaRequiredResponse struct {
	Error     string    `json:"error"`
	Code      string    `json:"code"`
	MFAToken  string    `json:"mfa_token"`
	Methods   []string  `json:"methods"`
	ExpiresAt time.Time `json:"expires_at"`
}

// challenge answers a right password on an account with a second factor:
// 401 mfa_required with a fresh mfa_token, and no API token.
func (ac *AuthController) challenge(c *gin.Context, user *models.User, check *models.PasswordCheck, name string) error {
	secret, expires, err := models.NewMFAChallenge(requestContext(c), ac.db, user.ID, check, name)
	if err != nil {
		return err
	}
	middlewares.NoStore(c)
	c.JSON(http.StatusUnauthorized, mfaRequiredResponse{
		Error: "Your password is right; your account also needs a code from your authenticator app (or a recovery code): " +
			"send it with the mfa_token to POST /api/login/mfa/.",
		Code: "mfa_required", MFAToken: secret, Methods: []string{"totp", "recovery_code"},
		ExpiresAt: expires.UTC().Truncate(time.Second)})
	return nil
}

type loginMFARequest struct {
	MFAToken     string `json:"mfa_token" binding:"required,max=100"`
	Code         string `json:"code" binding:"max=16"`
	RecoveryCode string `json:"recovery_code" binding:"max=32"`
}

// LoginMFA is the second step of a login on an account with a second
// factor: the mfa_token of the first, and a TOTP code or a recovery code.
// It answers exactly what a login answers. A wrong code is 401
// invalid_mfa_code and counts against the mfa_token (five kill it) and in
// the username's lockout, which only a right code clears; a used,
// expired, dead or unknown mfa_token is 401 invalid_mfa_token.
func (ac *AuthController) LoginMFA(c *gin.Context) error {
	var req loginMFARequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	proof, err := secondFactorOf(req.Code, req.RecoveryCode)
	if err != nil {
		return err
	}
	ctx := requestContext(c)
	ch, user, err := models.FindMFAChallenge(ctx, ac.db, req.MFAToken)
	if err != nil {
		return err
	}
	var notice *models.Mail
	if proof.RecoveryCode != "" {
		if notice, err = ac.mail.MFANotice(user, models.MailRecoveryCodeUsed, ac.clock.Now()); err != nil {
			return err
		}
	}
	refused, err := ac.lockout.guard(ctx, user.Username, func() (ratelimit.Outcome, error) {
		err := models.VerifySecondFactor(ctx, ac.db, ac.sealer, user.ID, proof, notice)
		if errors.Is(err, models.ErrInvalidMFACode) {
			if err := models.MFAChallengeFailed(ctx, ac.db, ch); err != nil {
				return ratelimit.Failed, err
			}
			return ratelimit.Failed, err
		}
		return outcomeOf(err), err
	})
	if refused != nil {
		if err := models.RecordLoginRateLimited(ctx, ac.db, user.Username, refused.digest); err != nil {
			return err
		}
		return apierror.RateLimited(refused.wait)
	}
	if err != nil {
		return err
	}
	check, err := models.ClaimMFAChallenge(ctx, ac.db, ch, user)
	if err != nil {
		return err
	}
	return ac.issueLogin(c, user, check, ch.TokenName)
}

// secondFactorOf is the proof a request carries: a TOTP code or a
// recovery code, exactly one of them.
func secondFactorOf(code, recovery string) (models.SecondFactor, error) {
	switch {
	case code != "" && recovery != "":
		return models.SecondFactor{}, apierror.Validation(map[string]string{"code": "send code or recovery_code, not both"})
	case code == "" && recovery == "":
		return models.SecondFactor{}, apierror.Validation(map[string]string{
			"code": "is required: the code your authenticator app shows (or a recovery_code)"})
	}
	return models.SecondFactor{Code: code, RecoveryCode: recovery}, nil
}

// issueLogin issues the full-scope login token of a login whose password
// (and second factor, when the account has one) was right, and answers it.
func (ac *AuthController) issueLogin(c *gin.Context, user *models.User, check *models.PasswordCheck, name string) error {
	expires := ac.clock.Now().Add(ac.cfg.TokenTTL)
	tok, err := models.IssueToken(requestContext(c), ac.db, user.ID,
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
