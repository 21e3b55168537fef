package controllers

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/auth"
	"tokenauth/clock"
	"tokenauth/config"
	"tokenauth/middlewares"
	"tokenauth/models"
)

// TokenController lets a user manage their own tokens.
type TokenController struct {
	db       *gorm.DB
	cfg      config.Config
	clock    clock.Clock
	resolver *auth.Resolver
	scopes   *models.ScopeCatalogue
}

// NewTokenController returns a TokenController that limits created tokens
// to the scopes of the catalogue, and shows last uses as the resolver
// knows them.
func NewTokenController(db *gorm.DB, cfg config.Config, clk clock.Clock, resolver *auth.Resolver, scopes *models.ScopeCatalogue) *TokenController {
	return &TokenController{db: db, cfg: cfg, clock: clk, resolver: resolver, scopes: scopes}
}

// List returns the user's live tokens, newest first, marking the current one.
func (tc *TokenController) List(c *gin.Context) error {
	cur, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	tokens, err := models.ListTokens(requestContext(c), tc.db, cur.UserID, tc.cfg.TokenIdleTimeout)
	if err != nil {
		return err
	}
	out := make([]tokenResponse, len(tokens))
	for i := range tokens {
		out[i] = newTokenResponse(&tokens[i], tc.resolver.LastUsed(&tokens[i]), cur.ID)
	}
	c.JSON(http.StatusOK, gin.H{"tokens": out})
	return nil
}

// Current describes the token making the request.
func (tc *TokenController) Current(c *gin.Context) error {
	cur, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, newTokenResponse(cur, tc.resolver.LastUsed(cur), cur.ID))
	return nil
}

type tokenCreateRequest struct {
	Name          string   `json:"name" binding:"required,max=100,nocontrol"`
	Scopes        []string `json:"scopes" binding:"omitempty,max=20,dive,max=64"`
	ExpiresInDays *int     `json:"expires_in_days" binding:"omitnil,min=1"`
}

// Create issues a named token, limited to the scopes asked for, and returns
// its secret this once. The new token inherits its creator's
// authentication time: it proves no more than the token that made it.
func (tc *TokenController) Create(c *gin.Context) error {
	var req tokenCreateRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Scopes != nil && len(req.Scopes) == 0 {
		return apierror.Validation(map[string]string{"scopes": "must name at least one scope; leave it out for a full-access token"})
	}
	scopes, err := tc.scopes.Normalize(req.Scopes)
	if err != nil {
		return err
	}
	ttl := tc.cfg.TokenTTL
	if req.ExpiresInDays != nil {
		maxDays := int(tc.cfg.TokenMaxTTL / (24 * time.Hour))
		if *req.ExpiresInDays > maxDays {
			return apierror.Validation(map[string]string{"expires_in_days": fmt.Sprintf("must be at most %d", maxDays)})
		}
		ttl = time.Duration(*req.ExpiresInDays) * 24 * time.Hour
	}
	cur, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	expires := tc.clock.Now().Add(ttl)
	tok, err := models.IssueToken(requestContext(c), tc.db, cur.UserID,
		models.TokenSpec{Name: req.Name, Kind: models.KindPersonal, Scopes: scopes, ExpiresAt: &expires,
			AuthenticatedAt: cur.AuthenticatedAt},
		tokenPolicy(tc.cfg), false)
	if err != nil {
		return err
	}
	middlewares.NoStore(c)
	c.JSON(http.StatusCreated, newTokenResponse(tok, nil, cur.ID))
	return nil
}

type tokenRenameRequest struct {
	Name string `json:"name" binding:"required,max=100,nocontrol"`
}

// Rename changes a token's name.
func (tc *TokenController) Rename(c *gin.Context) error {
	tok, cur, err := tc.find(c)
	if err != nil {
		return err
	}
	var req tokenRenameRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if err := models.RenameToken(requestContext(c), tc.db, tok, req.Name); err != nil {
		return err
	}
	c.JSON(http.StatusOK, newTokenResponse(tok, tc.resolver.LastUsed(tok), cur.ID))
	return nil
}

// Rotate replaces a token's secret: the new one is returned this once, and
// the old one stops working in the same transaction.
func (tc *TokenController) Rotate(c *gin.Context) error {
	tok, cur, err := tc.find(c)
	if err != nil {
		return err
	}
	next, err := models.RotateToken(requestContext(c), tc.db, tok)
	if err != nil {
		return err
	}
	middlewares.NoStore(c)
	c.JSON(http.StatusCreated, newTokenResponse(next, nil, cur.ID))
	return nil
}

// Revoke revokes one of the user's tokens.
func (tc *TokenController) Revoke(c *gin.Context) error {
	tok, _, err := tc.find(c)
	if err != nil {
		return err
	}
	if _, err := models.RevokeTokens(requestContext(c), tc.db,
		models.RevokeQuery{UserID: tok.UserID, TokenID: tok.ID, Reason: models.RevokedByUser}); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// find loads the live token named by the :id parameter if it belongs to
// the user, and returns it with the token making the request. A
// non-numeric id, another user's token and a dead one are all 404: nothing
// tells them apart.
func (tc *TokenController) find(c *gin.Context) (tok, cur *models.APIToken, err error) {
	cur, err = middlewares.CurrentToken(c)
	if err != nil {
		return nil, nil, err
	}
	id, err := idParam(c)
	if err != nil {
		return nil, nil, err
	}
	tok, err = models.FindUserToken(requestContext(c), tc.db, cur.UserID, id, tc.cfg.TokenIdleTimeout)
	return tok, cur, err
}
