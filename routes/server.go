package routes

import (
	"log"
	"net/http"
	"time"

	"tokenauth/config"
)

// Server limits beyond READ_HEADER_TIMEOUT: a slow client cannot hold a
// connection for long, and no request head (request line and headers) may
// exceed 16 KiB: Go answers 431 beyond it.
const (
	readTimeout  = 30 * time.Second
	writeTimeout = config.WriteTimeout
	idleTimeout  = 120 * time.Second
	// maxHeadBytes is the limit the docs promise. Go reads up to
	// MaxHeaderBytes plus 4 KiB of slack for its buffer before it answers
	// 431, so MaxHeaderBytes is set that much lower.
	maxHeadBytes   = 16 << 10
	headerReadSlop = 4 << 10
)

// NewHTTPServer returns the http.Server that serves handler with the
// service's timeouts and limits.
func NewHTTPServer(cfg config.Config, handler http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Addr:              cfg.Addr,
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeadBytes - headerReadSlop,
		ErrorLog:          errorLog,
	}
}
