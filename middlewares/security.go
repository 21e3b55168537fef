package middlewares

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
	"tokenauth/models"
)

// SecurityHeaders sets the headers every API response carries: JSON is not
// to be sniffed, framed, or allowed to load anything. The routes whose
// pattern starts with one of exempt set them themselves: the forward-auth
// check's empty 200 is read by a proxy only, and ForwardAuthAnswer gives
// its refusals, which some proxies pass on to their client, the headers
// with SetSecurityHeaders.
func SecurityHeaders(exempt ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		for _, prefix := range exempt {
			if strings.HasPrefix(c.FullPath(), prefix) {
				return
			}
		}
		SetSecurityHeaders(c.Writer.Header())
	}
}

// SetSecurityHeaders sets SecurityHeaders' headers in h.
func SetSecurityHeaders(h http.Header) {
	for _, sh := range securityHeaders {
		h[sh.name] = sh.value
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
		if queryHoldsToken(c.Request.URL.RawQuery) {
			apierror.Abort(c, apierror.ErrTokenInURL)
		}
	}
}

// queryHoldsToken tells whether a raw query names access_token or holds a
// token in a parameter's name or value. It reads the query in place rather
// than through url.ParseQuery, which builds a map on every request, and
// unescapes only the parts that are escaped.
func queryHoldsToken(raw string) bool {
	for raw != "" {
		var param string
		param, raw, _ = strings.Cut(raw, "&")
		key, value, _ := strings.Cut(param, "=")
		key, value = queryUnescape(key), queryUnescape(value)
		if strings.EqualFold(key, "access_token") || models.HoldsToken(key) || models.HoldsToken(value) {
			return true
		}
	}
	return false
}

// queryUnescape unescapes a part of a query as url.QueryUnescape does,
// but leniently: a malformed escape is kept as it is rather than failing
// the whole part, so that "tka%5F…%zz" is still seen to hold a token
// (url.ParseQuery would drop such a parameter, and the URL would still
// reach the logs). It allocates only for a part that is escaped.
func queryUnescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '+':
			b.WriteByte(' ')
		case s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
