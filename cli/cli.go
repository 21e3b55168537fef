// Package cli holds the subcommands of the tokenauth binary: serve (the
// default), migrate, and those with which an operator manages users and
// tokens. Each loads the configuration once, opens the database once and
// hands both to what it runs.
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"

	"gorm.io/gorm"

	"tokenauth/config"
	"tokenauth/password"
)

// Main runs the subcommand that args name (serve when none does) and
// returns the process's exit code: 0 (also for help), 1 for a failure, 2
// for a mistake in the command line. Settings are read through lookupEnv
// (os.LookupEnv). Errors are printed to stderr.
func Main(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) int {
	err := run(ctx, args, lookupEnv, stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "tokenauth:", err)
	return exitCode(err)
}

// usageError is a mistake in the command line; its message has been
// printed with the usage already.
type usageError struct{ error }

func exitCode(err error) int {
	var usage usageError
	if errors.As(err, &usage) {
		return 2
	}
	return 1
}

// env is what every subcommand starts from: the configuration, a logger,
// the database and the password hasher.
type env struct {
	cfg       config.Config
	log       *slog.Logger
	database  *config.Database
	db        *gorm.DB
	passwords *password.Hasher
	// listener is where serve accepts connections, and metricsListener
	// where it serves its metrics (nil when METRICS_ADDR is empty): both
	// bound before the database is opened; nil for the other commands.
	listener, metricsListener net.Listener
	stdin                     io.Reader
	stdout                    io.Writer
	stderr                    io.Writer
}

// run loads the configuration once, opens the database once and hands
// both to the subcommand. Help, asked for with help, -h or --help, goes to
// stdout and needs neither.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) error {
	name := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "help", "-h", "-help", "--help":
			return help(args[1:], stdout, stderr)
		}
		if args[0] != "" && args[0][0] != '-' {
			name, args = args[0], args[1:]
		}
	}
	cmd, ok := commands[name]
	if !ok {
		printCommands(stderr)
		return usageError{fmt.Errorf("unknown command %q", name)}
	}
	fs, runCmd := flagSet(name, cmd)
	// The flag package prints the usage when it meets -h or a bad flag;
	// which of stdout and stderr it belongs on is known only after.
	var parseOut bytes.Buffer
	fs.SetOutput(&parseOut)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		_, werr := stdout.Write(parseOut.Bytes())
		return werr
	}
	_, _ = stderr.Write(parseOut.Bytes())
	fs.SetOutput(stderr)
	if err != nil {
		return usageError{err}
	}
	if cmd.nargs >= 0 && fs.NArg() != cmd.nargs {
		fs.Usage()
		return usageError{fmt.Errorf("%s takes %d argument(s)", name, cmd.nargs)}
	}
	cfg, unknown, err := config.Load(lookupEnv, ".env")
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	for _, u := range unknown {
		attrs := []any{"file", ".env", "key", u.Key}
		if u.Like != "" {
			attrs = append(attrs, "did_you_mean", u.Like)
		}
		log.Warn("not a setting, ignored", attrs...)
	}
	e := &env{cfg: cfg, log: log,
		passwords: password.NewHasher(password.DefaultParams, runtime.GOMAXPROCS(0)),
		stdin:     stdin, stdout: stdout, stderr: stderr}
	// The ports are taken before the database is opened: a port in use
	// stops start-up before a SQLite file or a schema is created.
	if cmd.listens {
		if e.listener, err = listenOn("ADDR", cfg.Addr, ""); err != nil {
			return err
		}
		defer e.listener.Close() // serve closes it first, unless start-up fails
		if cfg.MetricsAddr != "" {
			e.metricsListener, err = listenOn("METRICS_ADDR", cfg.MetricsAddr,
				"each instance on a machine needs a port of its own; empty serves no metrics")
			if err != nil {
				return err
			}
			defer e.metricsListener.Close()
		}
	}
	database, err := config.OpenDatabase(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer database.Close()
	if err := config.Migrate(database.ORM); err != nil {
		return err
	}
	e.database, e.db = database, database.ORM
	return runCmd(ctx, e, fs.Args())
}

// listenOn binds addr, the value of setting; an error names the setting,
// with advice when there is some.
func listenOn(setting, addr, advice string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			err = opErr.Err
		}
		if advice != "" {
			return nil, fmt.Errorf("%s: cannot listen on %s (%s): %w", setting, addr, advice, err)
		}
		return nil, fmt.Errorf("%s: cannot listen on %s: %w", setting, addr, err)
	}
	return ln, nil
}

// flagSet declares a command's flags and returns them with the function
// that runs the command once they are parsed.
func flagSet(name string, cmd command) (*flag.FlagSet, func(context.Context, *env, []string) error) {
	fs := flag.NewFlagSet("tokenauth "+name, flag.ContinueOnError)
	runCmd := cmd.setup(fs)
	fs.Usage = func() { printUsage(fs.Output(), name, cmd, fs) }
	return fs, runCmd
}

// help prints the list of commands, or one command's usage when args name
// it.
func help(args []string, stdout, stderr io.Writer) error {
	switch len(args) {
	case 0:
		printCommands(stdout)
		return nil
	case 1:
		cmd, ok := commands[args[0]]
		if !ok {
			printCommands(stderr)
			return usageError{fmt.Errorf("unknown command %q", args[0])}
		}
		fs, _ := flagSet(args[0], cmd)
		printUsage(stdout, args[0], cmd, fs)
		return nil
	default:
		printCommands(stderr)
		return usageError{errors.New("help takes at most one command")}
	}
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // config.Load allows only valid levels
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
