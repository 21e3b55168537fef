package middlewares_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/metrics"
	"tokenauth/middlewares"
)

// BenchmarkMiddlewareCost serves one small JSON answer through each of the
// router's global middlewares alone, through none, and through all of them
// in routes.New's order, so that each one's cost per request is its
// sub-benchmark's time less none's (bench/run.sh middleware prints that
// table). requestlog-warn is the request id alone (LOG_LEVEL=warn writes no
// line, as in the bench's instances); requestlog-info writes the line too.
func BenchmarkMiddlewareCost(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	discard := func(level slog.Level) *slog.Logger {
		return slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: level}))
	}
	quiet := discard(slog.LevelWarn)
	m := metrics.New()
	all := []gin.HandlerFunc{
		middlewares.Measure(m), middlewares.RequestLog(quiet), middlewares.Recovery(quiet), middlewares.Errors(quiet),
		middlewares.Deadline(15 * time.Second), middlewares.SecurityHeaders(), middlewares.CORS(nil),
		middlewares.RejectTokenInURL(), middlewares.LimitBody(1 << 20),
	}
	cases := []struct {
		name  string
		chain []gin.HandlerFunc
	}{
		{"none", nil},
		{"measure", []gin.HandlerFunc{middlewares.Measure(m)}},
		{"requestlog-warn", []gin.HandlerFunc{middlewares.RequestLog(quiet)}},
		{"requestlog-info", []gin.HandlerFunc{middlewares.RequestLog(discard(slog.LevelInfo))}},
		{"recovery", []gin.HandlerFunc{middlewares.Recovery(quiet)}},
		{"errors", []gin.HandlerFunc{middlewares.Errors(quiet)}},
		{"deadline", []gin.HandlerFunc{middlewares.Deadline(15 * time.Second)}},
		{"securityheaders", []gin.HandlerFunc{middlewares.SecurityHeaders()}},
		{"cors", []gin.HandlerFunc{middlewares.CORS(nil)}},
		{"rejecttokeninurl", []gin.HandlerFunc{middlewares.RejectTokenInURL()}},
		{"limitbody", []gin.HandlerFunc{middlewares.LimitBody(1 << 20)}},
		{"all", all},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			r := gin.New()
			r.Use(tc.chain...)
			r.GET("/api/profile/", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"id": 1, "username": "alice"}) })
			req := httptest.NewRequest(http.MethodGet, "/api/profile/", nil)
			req.RemoteAddr = "127.0.0.1:40000"
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				r.ServeHTTP(w, req)
			}
		})
	}
}
