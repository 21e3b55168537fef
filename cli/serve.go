package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/app"
	"tokenauth/config"
	"tokenauth/password"
	"tokenauth/routes"
)

func serveCommand(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	flushEvery := fs.Duration("usage-flush-interval", 5*time.Second,
		"how often pending last-used times of tokens are written (they are also written on shutdown)")
	return func(ctx context.Context, e *env, _ []string) error {
		if *flushEvery <= 0 {
			return usageError{errors.New("--usage-flush-interval must be positive")}
		}
		return serve(ctx, e, *flushEvery)
	}
}

// limitMemory bounds the heap, unless GOMEMLIMIT or GOGC say otherwise.
// Every login hashes with argon2id, which allocates its whole memory cost
// (19 MiB) afresh. Left to the default GOGC of 100, the garbage of finished
// hashes lets the heap grow to twice what is live before a collection: a
// burst of logins costs more than twice the memory the hashes need, most
// of it spent faulting in fresh pages. So:
//   - a soft limit of twice the memory of the hashes that may run at once,
//     plus a base for everything else, keeps the pages reused;
//   - while hashes run or wait, GOGC is 50: a collection comes at one and
//     a half times what is live, which keeps a burst's peak lower at the
//     same throughput, where a lower limit would cost throughput.
//
// The blocks of a hash hold no pointers, so a collection costs little
// then. Between logins GOGC goes back to 100: requests that hash nothing
// allocate a little each, and collecting twice as often would cost them.
// docs/BENCHMARKS.md has the measurements behind each choice.
func limitMemory(passwords *password.Hasher) {
	// The runtime reads GOGC from the process's environment, so that is
	// where to look.
	if _, set := os.LookupEnv("GOGC"); !set {
		passwords.OnBusy(func(busy bool) {
			if busy {
				debug.SetGCPercent(50)
			} else {
				debug.SetGCPercent(100)
			}
		})
	}
	if debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return
	}
	debug.SetMemoryLimit(memoryBase + 2*passwords.Memory())
}

// memoryBase is the memory the service needs besides password hashes: the
// token cache (10,000 entries of about 1 KiB), buffers, connections.
const memoryBase = 32 << 20

// serve runs the API until ctx ends (SIGINT or SIGTERM), then stops
// accepting, lets in-flight requests finish within SHUTDOWN_GRACE, writes
// pending token usage, and returns (run closes the database).
func serve(ctx context.Context, e *env, flushEvery time.Duration) error {
	limitMemory(e.passwords)
	gin.SetMode(gin.ReleaseMode)
	a, err := app.New(ctx, e.cfg, e.database, e.log,
		app.WithPasswordHasher(e.passwords), app.WithUsageFlushInterval(flushEvery))
	if err != nil {
		return err
	}
	srv := routes.NewHTTPServer(e.cfg, a.Router, slog.NewLogLogger(e.log.Handler(), slog.LevelWarn))
	a.Start(ctx)
	// Runs after the server has drained: the last requests' uses are
	// pending by then, and the app's final flush writes them.
	defer a.Shutdown()
	e.log.Info("listening", "addr", e.listener.Addr().String(), "database", config.DescribeDatabase(e.cfg.DatabaseURL))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(e.listener) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	e.log.Info("shutting down", "grace", e.cfg.ShutdownGrace.String())
	graceCtx, cancel := context.WithTimeout(context.Background(), e.cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(graceCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		// The grace is over: cut what is left rather than let handlers run
		// on against a database that is about to close.
		_ = srv.Close()
		return fmt.Errorf("requests still running after SHUTDOWN_GRACE (%s) were cut off: %w", e.cfg.ShutdownGrace, err)
	}
	e.log.Info("stopped")
	return nil
}
