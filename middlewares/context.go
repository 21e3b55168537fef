// Package middlewares holds the Gin middlewares of tokenauth: thin adapters
// over the token resolver (identify, then require), error rendering,
// recovery, request logs and metrics, security headers, rate limits and
// body limits. It also owns the context key under which the caller's
// identity lives.
package middlewares

import (
	"github.com/gin-gonic/gin"

	"tokenauth/auth"
	"tokenauth/models"
)

// contextKey is unexported so that only this package can read or write the
// values; everything else goes through the helpers below.
type contextKey int

const (
	identityKey contextKey = iota
	authErrorKey
	requestIDKey
)

// CurrentIdentity returns who made the request. A request that is not
// authenticated gets the reason as the error (auth.ErrNoToken when the
// route never identified it), ready to be returned: it renders as 401 (or
// 400 for a malformed header).
func CurrentIdentity(c *gin.Context) (*auth.Identity, error) {
	if v, ok := c.Get(identityKey); ok {
		return v.(*auth.Identity), nil
	}
	if v, ok := c.Get(authErrorKey); ok {
		return nil, v.(error)
	}
	return nil, auth.ErrNoToken
}

// CurrentToken returns the token that authenticated the request, or why
// there is none (see CurrentIdentity).
func CurrentToken(c *gin.Context) (*models.APIToken, error) {
	id, err := CurrentIdentity(c)
	if err != nil {
		return nil, err
	}
	return &id.Token, nil
}

// CurrentUser returns the authenticated user of the request, or why there
// is none (see CurrentIdentity). It carries what requests need (id,
// username, email, is_active, created_at, last_login_at), not its password
// hash, folded username or updated_at (models.FindTokenByHash says why):
// load the row for those. The same goes for the token's revoked_reason.
func CurrentUser(c *gin.Context) (*models.User, error) {
	id, err := CurrentIdentity(c)
	if err != nil {
		return nil, err
	}
	return id.User(), nil
}

// noStore is the Cache-Control of every authenticated response, one value
// shared by all of them rather than allocated per request (net/http only
// reads header values).
var noStore = []string{"no-store"}

// setIdentity attaches id, which must be the request's own (a handler may
// change it freely), and, with clientHeaders, the headers every
// authenticated response to a client carries.
func setIdentity(c *gin.Context, id *auth.Identity, clientHeaders bool) {
	c.Set(identityKey, id)
	if !clientHeaders {
		return
	}
	h := c.Writer.Header()
	h["Cache-Control"] = noStore
	if v := id.ExpiresHeader(); v != nil {
		h["Token-Expires-At"] = v
	}
}

// ClientIP is the request's client address as far as the service trusts
// proxies: Gin's ClientIP (the peer, or what X-Forwarded-For says when the
// peer is one of TRUSTED_PROXIES). A request without X-Forwarded-For is
// answered with the peer's address as net/http wrote it, which is what
// Gin would answer after parsing and writing it again.
func ClientIP(c *gin.Context) string {
	if len(c.Request.Header["X-Forwarded-For"]) == 0 {
		if ip := c.RemoteIP(); ip != "" {
			return ip
		}
	}
	return c.ClientIP()
}
