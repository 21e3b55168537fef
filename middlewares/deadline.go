package middlewares

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"
)

// Deadline bounds how long a request may wait for what it depends on (a
// database connection, a query, a password-hash slot): past d they give up
// with the context's error, which the service answers with 503
// unavailable. Without it, a database that stops answering without closing
// its connections would hold every request until the client gave up.
func Deadline(d time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), d)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}
