package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/middlewares"
	"tokenauth/models"
	"tokenauth/routes"
)

// usageFlushInterval is how often pending last-used times are written.
const usageFlushInterval = 5 * time.Second

// serve runs the API until ctx ends (SIGINT or SIGTERM), then stops
// accepting, lets in-flight requests finish within SHUTDOWN_GRACE, writes
// pending token usage, and returns (main closes the database).
func serve(ctx context.Context, e *env, _ []string) error {
	usage := models.NewUsageRecorder(e.db)
	flushCtx, stopFlushing := context.WithCancel(context.WithoutCancel(ctx))
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		usage.Run(flushCtx, usageFlushInterval, func(err error) {
			e.log.Warn("token usage not written yet; will retry", "error", err.Error())
		})
	}()
	defer func() {
		stopFlushing()
		<-flushed
	}()

	gin.SetMode(gin.ReleaseMode)
	auth := middlewares.NewAuthenticator(e.db, e.cfg, usage)
	router := routes.New(routes.Deps{DB: e.db, Config: e.cfg, Logger: e.log, Passwords: e.passwords, Auth: auth})
	srv := routes.NewHTTPServer(e.cfg, router, slog.NewLogLogger(e.log.Handler(), slog.LevelWarn))
	ln, err := net.Listen("tcp", e.cfg.Addr)
	if err != nil {
		return err
	}
	e.log.Info("listening", "addr", ln.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	e.log.Info("shutting down", "grace", e.cfg.ShutdownGrace.String())
	graceCtx, cancel := context.WithTimeout(context.Background(), e.cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(graceCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
