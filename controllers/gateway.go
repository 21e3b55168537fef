package controllers

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
	"tokenauth/auth"
	"tokenauth/middlewares"
	"tokenauth/models"
)

// GatewayController answers the forward-auth checks of a proxy (nginx
// auth_request, Traefik forwardAuth, Caddy forward_auth, Envoy ext_authz)
// for the services behind it (docs/GATEWAY.md).
type GatewayController struct{}

// NewGatewayController returns a GatewayController.
func NewGatewayController() *GatewayController { return &GatewayController{} }

// errInvalidScopeParam answers a ?scope= that names no possible scope: the
// proxy's configuration is wrong, and no token can pass it.
var errInvalidScopeParam = apierror.New(http.StatusForbidden, "invalid_scope",
	"The scope parameter names no scope: 1 to 64 letters, digits and . _ - : /.")

// Check lets the request through (200, empty) when its token is live and
// holds every scope the query's scope parameters name, and tells the
// proxy who is calling in X-Auth-* headers, for it to pass upstream. The
// token was resolved (through the cache, its use recorded) by the route's
// Identify; a refusal is returned as an error, which
// middlewares.ForwardAuthAnswer shapes for the proxy.
func (gc *GatewayController) Check(c *gin.Context) error {
	id, err := middlewares.CurrentIdentity(c)
	if err != nil {
		return err
	}
	if err := requireScopes(id.Token.Scopes, c.Request.URL.RawQuery); err != nil {
		return err
	}
	h := c.Writer.Header()
	ih := identityHeadersOf(id)
	h["X-Auth-User-Id"] = ih.userID
	h["X-Auth-Username"] = ih.username
	h["X-Auth-Scopes"] = ih.scopes
	h["X-Auth-Token-Id"] = ih.tokenID
	if v := id.ExpiresHeader(); v != nil {
		h["X-Auth-Expires-At"] = v
	}
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
	return nil
}

// identityHeaders are the values of the X-Auth-* headers that depend only
// on the token as stored: made once per cached token and shared by the
// checks that hit it (net/http only reads header values).
type identityHeaders struct {
	userID, username, scopes, tokenID []string
}

func identityHeadersOf(id *auth.Identity) *identityHeaders {
	memo := id.Memo()
	if ih, ok := memo.Load().(*identityHeaders); ok {
		return ih
	}
	user := id.User()
	ih := &identityHeaders{
		userID:   []string{strconv.FormatUint(uint64(user.ID), 10)},
		username: []string{user.Username},
		scopes:   []string{strings.Join(id.Token.Scopes, " ")},
		tokenID:  []string{strconv.FormatUint(uint64(id.Token.ID), 10)},
	}
	memo.Store(ih)
	return ih
}

// requireScopes checks the scope parameters of a raw query against
// scopes. It reads the query itself rather than through url.ParseQuery,
// which would build a map on every check: the other parameters are not
// looked at. "?scope=a+b" is as good as "?scope=a&scope=b", since proxies
// differ in how easily they repeat a parameter; an empty one is a proxy
// variable left unset, refused rather than read as "any token".
func requireScopes(scopes models.Scopes, rawQuery string) error {
	for rawQuery != "" {
		var param string
		param, rawQuery, _ = strings.Cut(rawQuery, "&")
		value, ok := strings.CutPrefix(param, "scope=")
		if !ok {
			continue
		}
		if strings.ContainsAny(value, "%+") {
			unescaped, err := url.QueryUnescape(value)
			if err != nil {
				return errInvalidScopeParam
			}
			value = unescaped
		}
		if strings.TrimSpace(value) == "" {
			return errInvalidScopeParam
		}
		for value != "" {
			var scope string
			scope, value, _ = strings.Cut(value, " ")
			if scope == "" {
				continue
			}
			if !models.ValidScopeName(scope) {
				return errInvalidScopeParam
			}
			if !scopes.Allows(scope) {
				return apierror.InsufficientScope(scope)
			}
		}
	}
	return nil
}
