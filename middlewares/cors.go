package middlewares

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
)

// corsMaxAge is how long a browser may reuse a preflight answer; Chromium
// caps it at two hours. Caching costs nothing in safety: an origin taken
// off the list gets 403 on its next real request whatever the cache says.
const corsMaxAge = 2 * time.Hour

// CORS lets pages served from the listed origins call the API from a
// browser with the Bearer header. A cross-origin request from any other
// origin is refused with 403 origin_not_allowed before it does any work,
// so a page elsewhere cannot even spend a visitor's browser on login
// attempts; with no origins listed, every cross-origin request is refused.
// Requests without an Origin header (curl, servers, mobile apps) and the
// service's own page are not cross-origin and pass untouched.
//
// Credentials (cookies) are never allowed: the API reads its token only
// from the Authorization header.
//
// Paths starting with one of exempt are left alone: a forward-auth check
// is asked by a proxy, which copies the Origin of the browser request it
// checks; the browser never calls the check itself, and the service behind
// the proxy answers for its own CORS.
func CORS(origins []string, exempt ...string) gin.HandlerFunc {
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		// Browsers send an origin without a path, in lower case.
		allowed[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	isAllowed := func(origin string) bool { return allowed[strings.ToLower(origin)] }
	grant := func(*gin.Context) {}
	if len(allowed) > 0 {
		grant = cors.New(cors.Config{
			AllowOriginFunc: isAllowed,
			AllowMethods:    []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
			AllowHeaders:    []string{"Authorization", "Content-Type", "X-Request-ID"},
			// Headers a page needs that are not readable by default: the
			// wait of a 429, the expiry of the token, why a token was
			// refused, and the id to quote in a bug report.
			ExposeHeaders: []string{"Retry-After", "Token-Expires-At", "WWW-Authenticate", "X-Request-ID"},
			MaxAge:        corsMaxAge,
		})
	}
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if origin == "" || sameOrigin(c.Request, origin) {
			return
		}
		for _, prefix := range exempt {
			if strings.HasPrefix(c.Request.URL.Path, prefix) {
				return
			}
		}
		if !isAllowed(origin) {
			apierror.Abort(c, apierror.ErrOrigin)
			return
		}
		grant(c)
	}
}

// sameOrigin tells whether a request with an Origin header comes from a
// page of this service. Browsers say so in Sec-Fetch-Site, which still
// holds behind a proxy that rewrites the Host header; older browsers are
// judged by comparing the origin with the Host.
func sameOrigin(r *http.Request, origin string) bool {
	if r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return true
	}
	return strings.EqualFold(origin, "http://"+r.Host) || strings.EqualFold(origin, "https://"+r.Host)
}
