// Package middlewares holds the Gin middlewares of tokenauth: token
// authentication and scope checks, error rendering, recovery, request logs,
// security headers and body limits. It also owns the context key under
// which the authenticated user and token live.
package middlewares

import (
	"github.com/gin-gonic/gin"

	"tokenauth/models"
)

// contextKey is unexported so that only this package can read or write the
// values; everything else goes through the helpers below.
type contextKey int

const (
	tokenKey contextKey = iota
	authErrorKey
	requestIDKey
)

// CurrentToken returns the token that authenticated the request.
func CurrentToken(c *gin.Context) (*models.APIToken, bool) {
	v, ok := c.Get(tokenKey)
	if !ok {
		return nil, false
	}
	t, ok := v.(*models.APIToken)
	return t, ok
}

// CurrentUser returns the authenticated user of the request. It carries
// what requests need (id, username, email, is_active, created_at,
// last_login_at), not its password hash, folded username or updated_at
// (models.FindTokenByHash says why): load the row for those. The same
// goes for the token's revoked_reason.
func CurrentUser(c *gin.Context) (*models.User, bool) {
	t, ok := CurrentToken(c)
	if !ok {
		return nil, false
	}
	return &t.User, true
}

// setToken attaches t, which must be the request's own: a handler may
// change it freely.
func setToken(c *gin.Context, t *models.APIToken) {
	c.Set(tokenKey, t)
}
