package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
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
		"how often pending last-used times of tokens are written (they are also written on shutdown); "+
			"TOKEN_IDLE_TIMEOUT must be at least twice this")
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
// pending token usage, and returns (run closes the database). The metrics
// are served on a listener of their own (METRICS_ADDR), started and
// stopped with the API's.
func serve(ctx context.Context, e *env, flushEvery time.Duration) error {
	limitMemory(e.passwords)
	gin.SetMode(gin.ReleaseMode)
	a, err := app.New(ctx, e.cfg, e.database, e.log,
		app.WithPasswordHasher(e.passwords), app.WithUsageFlushInterval(flushEvery))
	if err != nil {
		return err
	}
	errorLog := slog.NewLogLogger(e.log.Handler(), slog.LevelWarn)
	servers := []*server{{srv: routes.NewHTTPServer(e.cfg, a.Router, errorLog), ln: e.listener, setting: "ADDR"}}
	if e.metricsListener != nil {
		msrv := routes.NewHTTPServer(e.cfg, a.MetricsHandler(), errorLog)
		msrv.Addr = e.cfg.MetricsAddr
		servers = append(servers, &server{srv: msrv, ln: e.metricsListener, setting: "METRICS_ADDR"})
	}
	a.Start(ctx)
	// Runs after the servers have drained: the last requests' uses are
	// pending by then, and the app's final flush writes them.
	defer a.Shutdown()
	if e.metricsListener != nil {
		e.log.Info("serving metrics", "addr", e.metricsListener.Addr().String())
	} else {
		e.log.Info("metrics not served: METRICS_ADDR is empty")
	}
	served := make(chan error, len(servers))
	for _, s := range servers {
		go func() { served <- s.serve() }()
	}
	e.log.Info("listening", "addr", e.listener.Addr().String(), "database", config.DescribeDatabase(e.cfg.DatabaseURL))

	var failed error
	select {
	case failed = <-served:
	case <-ctx.Done():
	}
	e.log.Info("shutting down", "grace", e.cfg.ShutdownGrace.String())
	graceCtx, cancel := context.WithTimeout(context.Background(), e.cfg.ShutdownGrace)
	defer cancel()
	// The API first: the metrics stay scrapable while its requests drain.
	for _, s := range servers {
		if err := s.srv.Shutdown(graceCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			// The grace is over: cut what is left rather than let handlers
			// run on against a database that is about to close.
			for _, s := range servers {
				_ = s.srv.Close()
			}
			return fmt.Errorf("requests still running after SHUTDOWN_GRACE (%s) were cut off: %w", e.cfg.ShutdownGrace, err)
		}
	}
	if failed != nil {
		return failed
	}
	e.log.Info("stopped")
	return nil
}

// server is one of serve's listeners and what it serves.
type server struct {
	srv *http.Server
	ln  net.Listener
	// setting names the listener's address in an error.
	setting string
}

// serve serves until the server is shut down, and returns any other end.
func (s *server) serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: serving on %s: %w", s.setting, s.ln.Addr(), err)
	}
	return nil
}
