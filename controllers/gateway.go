package controllers

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
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
	for _, value := range c.QueryArray("scope") {
		// "?scope=a b" is as good as "?scope=a&scope=b": proxies differ in
		// how easily they repeat a parameter. An empty one is a proxy
		// variable left unset: refused, rather than read as "any token".
		scopes := strings.Fields(value)
		if len(scopes) == 0 {
			return errInvalidScopeParam
		}
		for _, scope := range scopes {
			if !models.ValidScopeName(scope) {
				return errInvalidScopeParam
			}
			if !id.Token.Scopes.Allows(scope) {
				return apierror.InsufficientScope(scope)
			}
		}
	}
	h := c.Writer.Header()
	user := id.User()
	h["X-Auth-User-Id"] = []string{strconv.FormatUint(uint64(user.ID), 10)}
	h["X-Auth-Username"] = []string{user.Username}
	h["X-Auth-Scopes"] = []string{strings.Join(id.Token.Scopes, " ")}
	h["X-Auth-Token-Id"] = []string{strconv.FormatUint(uint64(id.Token.ID), 10)}
	if id.ExpiresAt != nil {
		h["X-Auth-Expires-At"] = []string{id.ExpiresAt.UTC().Format(time.RFC3339)}
	}
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
	return nil
}
