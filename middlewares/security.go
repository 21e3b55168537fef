package middlewares

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
	"tokenauth/models"
)

// SecurityHeaders sets the headers every API response carries: JSON is not
// to be sniffed, framed, or allowed to load anything.
func SecurityHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		for _, sh := range securityHeaders {
			h[sh.name] = sh.value
		}
	}
}

// securityHeaders are SecurityHeaders' headers, by canonical name. Every
// response shares the value slices rather than allocating its own:
// net/http only reads them, and setting or adding a header replaces its
// slice instead of writing into it.
var securityHeaders = [...]struct {
	name  string
	value []string
}{
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"Content-Security-Policy", []string{"default-src 'none'; frame-ancestors 'none'"}},
	{"Referrer-Policy", []string{"no-referrer"}},
}

// NoStore marks a response that carries a secret: no cache may keep it.
func NoStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
}

// LimitBody refuses bodies larger than limit bytes with 413 body_too_large,
// without reading them whole: a declared length over the limit is refused
// at once, and an undeclared one is cut off at the limit while it is read.
func LimitBody(limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > limit {
			apierror.Abort(c, apierror.ErrBodyTooLarge)
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	}
}

// RejectTokenInURL refuses a request that carries a token in its URL: in
// the query string (RFC 6750 access_token, or anything that holds one of
// ours or a key imported from Django, in a name or a value) or in the path.
// URLs end up in logs, histories and Referer headers.
func RejectTokenInURL() gin.HandlerFunc {
	return func(c *gin.Context) {
		if models.HoldsToken(c.Request.URL.Path) {
			apierror.Abort(c, apierror.ErrTokenInURL)
			return
		}
		raw := c.Request.URL.RawQuery
		if raw == "" {
			return
		}
		for key, values := range c.Request.URL.Query() {
			if strings.EqualFold(key, "access_token") || models.HoldsToken(key) {
				apierror.Abort(c, apierror.ErrTokenInURL)
				return
			}
			for _, v := range values {
				if models.HoldsToken(v) {
					apierror.Abort(c, apierror.ErrTokenInURL)
					return
				}
			}
		}
	}
}
