package controllers

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/config"
	"tokenauth/middlewares"
	"tokenauth/models"
)

// TokenController lets a user manage their own tokens.
type TokenController struct {
	db     *gorm.DB
	cfg    config.Config
	auth   *middlewares.Authenticator
	scopes *models.ScopeCatalogue
}

// NewTokenController returns a TokenController that limits created tokens
// to the scopes of the catalogue.
func NewTokenController(db *gorm.DB, cfg config.Config, auth *middlewares.Authenticator, scopes *models.ScopeCatalogue) *TokenController {
	return &TokenController{db: db, cfg: cfg, auth: auth, scopes: scopes}
}

// List returns the user's live tokens, newest first, marking the current one.
func (tc *TokenController) List(c *gin.Context) {
	cur, _ := middlewares.CurrentToken(c)
	tokens, err := models.ListTokens(requestContext(c), tc.db, cur.UserID, tc.cfg.TokenIdleTimeout)
	if err != nil {
		apierror.Abort(c, err)
		return
	}
	out := make([]tokenResponse, len(tokens))
	for i := range tokens {
		out[i] = newTokenResponse(&tokens[i], tc.auth.LastUsed(&tokens[i]), cur.ID)
	}
	c.JSON(http.StatusOK, gin.H{"tokens": out})
}

// Current describes the token making the request.
func (tc *TokenController) Current(c *gin.Context) {
	cur, _ := middlewares.CurrentToken(c)
	c.JSON(http.StatusOK, newTokenResponse(cur, tc.auth.LastUsed(cur), cur.ID))
}

type tokenCreateRequest struct {
	Name          string   `json:"name" binding:"required,max=100,nocontrol"`
	Scopes        []string `json:"scopes" binding:"omitempty,max=20,dive,max=64"`
	ExpiresInDays *int     `json:"expires_in_days" binding:"omitnil,min=1"`
}

// Create issues a named token, limited to the scopes asked for, and returns
// its secret this once.
func (tc *TokenController) Create(c *gin.Context) {
	var req tokenCreateRequest
	if err := bindJSON(c, &req); err != nil {
		apierror.Abort(c, err)
		return
	}
	if req.Scopes != nil && len(req.Scopes) == 0 {
		apierror.Abort(c, apierror.Validation(map[string]string{"scopes": "must name at least one scope; leave it out for a full-access token"}))
		return
	}
	scopes, err := tc.scopes.Normalize(req.Scopes)
	if err != nil {
		apierror.Abort(c, err)
		return
	}
	ttl := tc.cfg.TokenTTL
	if req.ExpiresInDays != nil {
		maxDays := int(tc.cfg.TokenMaxTTL / (24 * time.Hour))
		if *req.ExpiresInDays > maxDays {
			apierror.Abort(c, apierror.Validation(map[string]string{"expires_in_days": fmt.Sprintf("must be at most %d", maxDays)}))
			return
		}
		ttl = time.Duration(*req.ExpiresInDays) * 24 * time.Hour
	}
	cur, _ := middlewares.CurrentToken(c)
	expires := time.Now().UTC().Add(ttl)
	tok, _, err := models.IssueToken(requestContext(c), tc.db, cur.UserID,
		models.TokenSpec{Name: req.Name, Kind: models.KindPersonal, Scopes: scopes, ExpiresAt: &expires},
		tokenPolicy(tc.cfg), false)
	if err != nil {
		apierror.Abort(c, err)
		return
	}
	middlewares.NoStore(c)
	c.JSON(http.StatusCreated, newTokenResponse(tok, nil, cur.ID))
}

type tokenRenameRequest struct {
	Name string `json:"name" binding:"required,max=100,nocontrol"`
}

// Rename changes a token's name.
func (tc *TokenController) Rename(c *gin.Context) {
	tok, ok := tc.find(c)
	if !ok {
		return
	}
	var req tokenRenameRequest
	if err := bindJSON(c, &req); err != nil {
		apierror.Abort(c, err)
		return
	}
	if err := models.RenameToken(requestContext(c), tc.db, tok, req.Name); err != nil {
		apierror.Abort(c, err)
		return
	}
	tc.auth.ForgetTokens(tok.ID)
	cur, _ := middlewares.CurrentToken(c)
	c.JSON(http.StatusOK, newTokenResponse(tok, tc.auth.LastUsed(tok), cur.ID))
}

// Rotate replaces a token's secret: the new one is returned this once, and
// the old one stops working in the same transaction.
func (tc *TokenController) Rotate(c *gin.Context) {
	tok, ok := tc.find(c)
	if !ok {
		return
	}
	next, err := models.RotateToken(requestContext(c), tc.db, tok)
	if err != nil {
		apierror.Abort(c, err)
		return
	}
	tc.auth.ForgetTokens(tok.ID)
	cur, _ := middlewares.CurrentToken(c)
	middlewares.NoStore(c)
	c.JSON(http.StatusCreated, newTokenResponse(next, nil, cur.ID))
}

// Revoke revokes one of the user's tokens.
func (tc *TokenController) Revoke(c *gin.Context) {
	tok, ok := tc.find(c)
	if !ok {
		return
	}
	ids, err := models.RevokeTokens(requestContext(c), tc.db,
		models.RevokeQuery{UserID: tok.UserID, TokenID: tok.ID, Reason: models.RevokedByUser})
	if err != nil {
		apierror.Abort(c, err)
		return
	}
	tc.auth.ForgetTokens(ids...)
	c.Status(http.StatusNoContent)
}

// find loads the live token named by the :id parameter if it belongs to
// the user. A non-numeric id, another user's token and a dead one are all
// 404: nothing tells them apart.
func (tc *TokenController) find(c *gin.Context) (*models.APIToken, bool) {
	id, ok := idParam(c)
	if !ok {
		return nil, false
	}
	cur, _ := middlewares.CurrentToken(c)
	tok, err := models.FindUserToken(requestContext(c), tc.db, cur.UserID, id, tc.cfg.TokenIdleTimeout)
	if err != nil {
		apierror.Abort(c, err)
		return nil, false
	}
	return tok, true
}
