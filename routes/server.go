package routes

import (
	"log"
	"net/http"
	"time"

	"tokenauth/config"
)

// Server limits beyond READ_HEADER_TIMEOUT: a slow client cannot hold a
// connection for long, and no header block may exceed 16 KiB (Go answers
// 431 beyond MaxHeaderBytes).
const (
	readTimeout    = 30 * time.Second
	writeTimeout   = 30 * time.Second
	idleTimeout    = 120 * time.Second
	maxHeaderBytes = 16 << 10
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
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errorLog,
	}
}
