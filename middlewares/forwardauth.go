package middlewares

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
	"tokenauth/metrics"
)

// ForwardAuthAnswer makes every answer of a forward-auth route (GET
// /api/auth/check) one that a proxy understands: 200, 401 or 403. nginx's
// auth_request turns any other status into a 500 for the client, and
// Traefik, Caddy and Envoy pass it on as is, so a malformed Authorization
// header (400), a rate limit (429) or a database that cannot answer (503)
// leave here as a 401 or 403. Every refusal names its reason's code in
// X-Auth-Error, keeps its Retry-After, and a 401 keeps the
// WWW-Authenticate challenge of the API, and the security headers of the
// API's answers (SecurityHeaders leaves the check's 200 without them). It
// counts each answer in m.
//
// It acts on the routes whose pattern starts with path and leaves the
// others alone. It goes inside Errors and ahead of every other middleware
// that may refuse a request (a token in the URL, a body too large), so
// that it sees what the whole chain decided before Errors renders it.
func ForwardAuthAnswer(path string, m *metrics.Metrics, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !strings.HasPrefix(c.FullPath(), path) {
			return
		}
		c.Next()
		if len(c.Errors) == 0 {
			m.GatewayCheck(metrics.CheckAllowed)
			return
		}
		err := c.Errors.Last().Err
		e, known := apierror.From(err)
		if !known {
			log.ErrorContext(c.Request.Context(), "request failed",
				"request_id", RequestID(c), "route", c.FullPath(), "error", err.Error())
		}
		refusal := *e
		switch {
		case e.Status == http.StatusForbidden || e.Status == http.StatusUnauthorized:
		case e.Status == http.StatusTooManyRequests:
			refusal.Status = http.StatusForbidden
		default:
			refusal.Status = http.StatusUnauthorized
		}
		out := refusal.WithHeader("X-Auth-Error", e.Code)
		if _, ok := out.Header["Retry-After"]; !ok && e.Status == http.StatusServiceUnavailable {
			// An outage passes: the proxy's client may try again shortly.
			out = out.WithHeader("Retry-After", "1")
		}
		if _, ok := out.Header["WWW-Authenticate"]; !ok && out.Status == http.StatusUnauthorized {
			out = out.WithHeader("WWW-Authenticate", `Bearer realm="api"`)
		}
		m.GatewayCheck(e.Code)
		SetSecurityHeaders(c.Writer.Header())
		// The error middleware, which runs after this one, renders the last
		// error: the refusal in its proxy-safe form.
		_ = c.Error(out)
	}
}
