package middlewares

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/models"
)

// RequestLog gives every request an id (the client's X-Request-ID when it
// is a sane one, else a fresh one), echoes it in the response, and logs one
// line per request with method, route, path, status, latency and user id.
// It never logs headers, bodies or the query string, where a secret could
// hide.
func RequestLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		var id string
		if v := c.Request.Header[requestIDHeader]; len(v) > 0 {
			id = v[0]
		}
		if !saneRequestID(id) {
			id = newRequestID()
		}
		c.Set(requestIDKey, id)
		c.Writer.Header()[requestIDHeader] = []string{id}
		c.Next()
		// With request lines off (LOG_LEVEL=warn or above) there is nothing
		// to build: resolving the client IP and the user costs every request.
		if !log.Enabled(c.Request.Context(), slog.LevelInfo) {
			return
		}
		attrs := []slog.Attr{
			slog.String("request_id", id),
			slog.String("method", c.Request.Method),
			slog.String("route", c.FullPath()),
			slog.String("path", loggablePath(c.Request.URL.Path)),
			slog.Int("status", c.Writer.Status()),
			slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("ip", ClientIP(c)),
		}
		if u, err := CurrentUser(c); err == nil {
			attrs = append(attrs, slog.Uint64("user_id", uint64(u.ID)))
		}
		log.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", attrs...)
	}
}

// requestIDHeader is X-Request-ID in net/http's canonical form, read and
// written as a map key: Header.Get and Set would convert it on every
// request.
const requestIDHeader = "X-Request-Id"

// loggablePath is the path, unless a token or an imported key was put in
// it (RejectTokenInURL refuses such a request, which is still logged).
func loggablePath(path string) string {
	if models.HoldsToken(path) {
		return "[path withheld: it holds a token]"
	}
	return path
}

// RequestID returns the id of the request.
func RequestID(c *gin.Context) string {
	return c.GetString(requestIDKey)
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 64 || models.HoldsToken(id) {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
