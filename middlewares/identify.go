package middlewares

import (
	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
	"tokenauth/auth"
	"tokenauth/clock"
)

// Identify resolves the request's bearer token and puts who is calling on
// the context. A request it cannot authenticate gets nothing but the
// reason, which RequireAuth reports; only a database that cannot answer
// stops the request here.
func Identify(r *auth.Resolver, clk clock.Clock) gin.HandlerFunc { return identify(r, clk, true) }

// IdentifyForProxy is Identify for a forward-auth route: its answer is
// read by a proxy, which passes on what the X-Auth-* headers say, so the
// headers of an authenticated response to a client (Cache-Control,
// Token-Expires-At, which X-Auth-Expires-At says again) are left out.
func IdentifyForProxy(r *auth.Resolver, clk clock.Clock) gin.HandlerFunc {
	return identify(r, clk, false)
}

func identify(r *auth.Resolver, clk clock.Clock, clientHeaders bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		secret, err := auth.ParseBearer(c.Request.Header.Values("Authorization"))
		var id *auth.Identity
		if err == nil {
			id, err = r.Resolve(c.Request.Context(), auth.Request{Secret: secret, IP: ClientIP(c),
				UserAgent: c.Request.UserAgent(), Now: clk.Now()})
		}
		switch {
		case err == nil:
			setRateLimitHeaders(c, id.Limits)
			setIdentity(c, id, clientHeaders)
		case auth.Refused(err):
			setRateLimitHeaders(c, auth.LimitsOf(err))
			c.Set(authErrorKey, err)
		default:
			apierror.Abort(c, err)
		}
	}
}

// setRateLimitHeaders tells the client the rate limits its request
// counted against, if any (draft-ietf-httpapi-ratelimit-headers).
func setRateLimitHeaders(c *gin.Context, limits auth.Limits) {
	if len(limits) == 0 {
		return
	}
	h := c.Writer.Header()
	h.Set("RateLimit-Policy", limits.PolicyHeader())
	h.Set("RateLimit", limits.StateHeader())
}

// RequireAuth stops a request that Identify could not authenticate, with
// 401 and the WWW-Authenticate header of RFC 6750 (or 400 for a malformed
// Authorization header).
func RequireAuth() gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, err := CurrentIdentity(c); err != nil {
			apierror.Abort(c, err)
		}
	}
}

// RequireScope is RequireAuth, then 403 insufficient_scope unless the
// token grants scope.
func RequireScope(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, err := CurrentIdentity(c)
		switch {
		case err != nil:
			apierror.Abort(c, err)
		case !id.Token.Scopes.Allows(scope):
			apierror.Abort(c, apierror.InsufficientScope(scope))
		}
	}
}

// RequireFreshAuth returns nil when the request's token proved the password
// within REAUTH_MAX_AGE (see auth.Identity.RequireFreshAuth), and the
// error to return otherwise: 401 reauthentication_required, or why the
// request is not authenticated at all. A handler whose need for a fresh
// proof depends on the request calls it before it changes anything:
//
//	if loosens {
//		if err := middlewares.RequireFreshAuth(c); err != nil {
//			return err
//		}
//	}
//
// Routes that always need it say so in their routes.Access (Fresh), which
// runs RequireFresh.
func RequireFreshAuth(c *gin.Context) error {
	id, err := CurrentIdentity(c)
	if err != nil {
		return err
	}
	return id.RequireFreshAuth()
}

// RequireFresh stops a request whose token did not prove the password
// within REAUTH_MAX_AGE (see RequireFreshAuth). It runs after RequireAuth
// or RequireScope, so that a token lacking the scope hears that first.
func RequireFresh() gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := RequireFreshAuth(c); err != nil {
			apierror.Abort(c, err)
		}
	}
}
