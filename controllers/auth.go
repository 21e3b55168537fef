package controllers

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/config"
	"tokenauth/middlewares"
	"tokenauth/models"
)

// AuthController handles logging in and out and registering.
type AuthController struct {
	db      *gorm.DB
	cfg     config.Config
	hasher  *models.PasswordHasher
	auth    *middlewares.Authenticator
	lockout LoginLockout
}

// NewAuthController returns an AuthController that locks usernames with
// too many failed logins through lockout.
func NewAuthController(db *gorm.DB, cfg config.Config, hasher *models.PasswordHasher, auth *middlewares.Authenticator, lockout LoginLockout) *AuthController {
	return &AuthController{db: db, cfg: cfg, hasher: hasher, auth: auth, lockout: lockout}
}

type loginRequest struct {
	Username  string `json:"username" binding:"required,max=150"`
	Password  string `json:"password" binding:"required,max=256"`
	TokenName string `json:"token_name" binding:"max=100,nocontrol"`
}

// Login checks a username and password and issues a new full-scope token.
// Unknown user and wrong password get the same answer after the same work.
// A username with LOGIN_USER_FAILURES failures within LOGIN_USER_WINDOW is
// locked, whatever the password, until its window ends (429).
func (ac *AuthController) Login(c *gin.Context) {
	var req loginRequest
	if err := bindJSON(c, &req); err != nil {
		apierror.Abort(c, err)
		return
	}
	ctx := requestContext(c)
	lockKey := lockoutKey(req.Username)
	wait, err := attemptLockout(ctx, ac.lockout, lockKey)
	if err != nil {
		apierror.Abort(c, err)
		return
	}
	if wait > 0 {
		if err := models.RecordLoginRateLimited(ctx, ac.db, req.Username); err != nil {
			apierror.Abort(c, err)
			return
		}
		apierror.Abort(c, apierror.RateLimited(wait))
		return
	}
	user, check, err := models.Authenticate(ctx, ac.db, ac.hasher, req.Username, req.Password)
	if err != nil {
		apierror.Abort(c, err)
		return
	}
	if err := clearLockout(ctx, ac.lockout, lockKey); err != nil {
		apierror.Abort(c, err)
		return
	}
	name := req.TokenName
	if name == "" {
		name = "login"
	}
	expires := time.Now().UTC().Add(ac.cfg.TokenTTL)
	tok, evicted, err := models.IssueToken(ctx, ac.db, user.ID,
		models.TokenSpec{Name: name, Kind: models.KindLogin, Scopes: models.Scopes{models.ScopeAll}, ExpiresAt: &expires, Login: check},
		ac.tokenPolicy(), true)
	if err != nil {
		apierror.Abort(c, err)
		return
	}
	ac.auth.ForgetTokens(evicted...)
	middlewares.NoStore(c)
	c.JSON(http.StatusOK, loginResponse{
		Token: tok.Secret, TokenType: "Bearer", ExpiresAt: utc(tok.ExpiresAt), NewClient: tok.NewClient,
		User: loginUser{ID: user.ID, Username: user.Username, Email: user.Email},
	})
}

func (ac *AuthController) tokenPolicy() models.TokenPolicy {
	return tokenPolicy(ac.cfg)
}

type registerRequest struct {
	Username string `json:"username" binding:"required,max=150"`
	Email    string `json:"email" binding:"required,email,max=254"`
	Password string `json:"password" binding:"required,max=256"`
}

// Register creates an account when registration is enabled (404
// otherwise, as if the route did not exist). It issues no token: the
// client logs in next.
func (ac *AuthController) Register(c *gin.Context) {
	if !ac.cfg.AllowRegistration {
		apierror.Abort(c, apierror.ErrNotFound)
		return
	}
	var req registerRequest
	if err := bindJSON(c, &req); err != nil {
		apierror.Abort(c, err)
		return
	}
	user := models.NewUser(ac.hasher, req.Username, req.Email, req.Password)
	if err := models.CreateUser(requestContext(c), ac.db, user, models.PasswordPolicy{MinLength: ac.cfg.PasswordMinLength}); err != nil {
		apierror.Abort(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"user": newUserResponse(user)})
}

// Logout revokes the token that made the request.
func (ac *AuthController) Logout(c *gin.Context) {
	tok, _ := middlewares.CurrentToken(c)
	ac.revoke(c, models.RevokeQuery{UserID: tok.UserID, TokenID: tok.ID, Reason: models.RevokedByLogout})
}

// LogoutAll revokes every token of the user, the current one included.
func (ac *AuthController) LogoutAll(c *gin.Context) {
	tok, _ := middlewares.CurrentToken(c)
	ac.revoke(c, models.RevokeQuery{UserID: tok.UserID, Reason: models.RevokedByLogout})
}

// LogoutOthers revokes every token of the user but the current one.
func (ac *AuthController) LogoutOthers(c *gin.Context) {
	tok, _ := middlewares.CurrentToken(c)
	ac.revoke(c, models.RevokeQuery{UserID: tok.UserID, ExceptID: tok.ID, Reason: models.RevokedByLogout})
}

func (ac *AuthController) revoke(c *gin.Context, q models.RevokeQuery) {
	ids, err := models.RevokeTokens(requestContext(c), ac.db, q)
	if err != nil {
		apierror.Abort(c, err)
		return
	}
	ac.auth.ForgetTokens(ids...)
	c.Status(http.StatusNoContent)
}
