package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
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

// startHashWorker starts the process that serve hashes passwords in (a
// copy of this binary at a lower CPU priority, password.Worker) and
// returns the hasher that uses it, with the settings' bounds.
//
// The worker's memory is bounded unless GOMEMLIMIT or GOGC say otherwise.
// argon2id allocates its whole memory cost (19 MiB) afresh for every hash:
// left to the default GOGC of 100, the garbage of finished hashes lets the
// heap grow to twice what is live before a collection, and a burst of
// logins costs more than twice the memory the hashes need, most of it
// spent faulting in fresh pages. So the worker collects at GOGC 50, and
// under a soft limit of twice the memory of the hashes that may run at
// once plus a little for the rest: its pages are reused. The blocks of a
// hash hold no pointers, so a collection costs little.
// docs/BENCHMARKS.md has the measurements behind each choice.
func startHashWorker(cfg config.Config) (*password.Hasher, *password.Worker, error) {
	bounds := password.NewHasher(password.DefaultParams, cfg.PasswordHashConcurrency)
	var env []string
	// The runtime reads GOGC and GOMEMLIMIT from the environment, which
	// the worker inherits: an operator's choice stands.
	if _, set := os.LookupEnv("GOGC"); !set {
		env = append(env, "GOGC=50")
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		env = append(env, fmt.Sprintf("GOMEMLIMIT=%d", workerMemoryBase+2*bounds.Memory()))
	}
	worker, err := password.SelfWorker(env)
	if err == nil {
		err = worker.Start()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("starting the password-hash worker: %w", err)
	}
	return password.NewHasher(password.DefaultParams, cfg.PasswordHashConcurrency,
		password.WithQueueTimeout(cfg.HashQueueTimeout), password.WithEngine(worker)), worker, nil
}

// workerMemoryBase is the memory the hash worker needs besides its hashes:
// the runtime, buffers, a request or two.
const workerMemoryBase = 8 << 20

// serve runs the API until ctx ends (SIGINT or SIGTERM), then stops
// accepting, lets in-flight requests finish within SHUTDOWN_GRACE, writes
// pending token usage, and returns (run closes the database). The metrics
// are served on a listener of their own (METRICS_ADDR), started and
// stopped with the API's.
func serve(ctx context.Context, e *env, flushEvery time.Duration) error {
	passwords, worker, err := startHashWorker(e.cfg)
	if err != nil {
		return err
	}
	// Last: the requests that hash have drained by then.
	defer worker.Close()
	gin.SetMode(gin.ReleaseMode)
	a, err := app.New(ctx, e.cfg, e.database, e.log,
		app.WithPasswordHasher(passwords), app.WithUsageFlushInterval(flushEvery))
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
	// Said before serving: the listener is bound already, and a client that
	// gets an answer can then count on the line being in the log.
	e.log.Info("listening", "addr", e.listener.Addr().String(), "database", config.DescribeDatabase(e.cfg.DatabaseURL))
	served := make(chan error, len(servers))
	for _, s := range servers {
		go func() { served <- s.serve() }()
	}

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
