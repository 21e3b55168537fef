package middlewares

import (
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
)

// Errors renders the error that a handler or middleware recorded with
// apierror.Abort. Errors the service does not know become 500
// internal_error (503 unavailable for a database outage) and are logged
// with the request id; their detail never reaches the client.
func Errors(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if len(c.Errors) == 0 || c.Writer.Written() {
			return
		}
		err := c.Errors.Last().Err
		resp, known := apierror.From(err)
		if !known {
			log.ErrorContext(c.Request.Context(), "request failed",
				"request_id", RequestID(c), "route", c.FullPath(), "error", err.Error())
		}
		apierror.Write(c, resp)
	}
}

// Recovery turns a panic into the JSON 500 and a log line with the request
// id and the stack; the client sees neither.
func Recovery(log *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, recovered any) {
		log.ErrorContext(c.Request.Context(), "panic while serving a request",
			"request_id", RequestID(c), "route", c.FullPath(), "panic", recovered, "stack", string(debug.Stack()))
		apierror.Write(c, apierror.ErrInternal)
	})
}

// NotFound answers a request for no route with the JSON 404.
func NotFound(c *gin.Context) { apierror.Write(c, apierror.ErrNotFound) }

// MethodNotAllowed answers the JSON 405; Gin has set the Allow header.
func MethodNotAllowed(c *gin.Context) { apierror.Write(c, apierror.ErrMethod) }
