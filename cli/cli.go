// Package cli holds the subcommands of the tokenauth binary: serve (the
// default), migrate, and those with which an operator manages users and
// tokens. Each loads the configuration once, opens the database once and
// hands both to what it runs.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"

	"gorm.io/gorm"

	"tokenauth/config"
	"tokenauth/password"
)

// Main runs the subcommand that args name (serve when none does) and
// returns the process's exit code: 0, 1 for a failure, 2 for a mistake in
// the command line. Errors are printed to stderr.
func Main(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := run(ctx, args, getenv, stdin, stdout, stderr)
	if err == nil || errors.Is(err, flag.ErrHelp) {
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
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
}

// run loads the configuration once, opens the database once and hands
// both to the subcommand.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	name := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	cmd, ok := commands[name]
	if !ok {
		printCommands(stderr)
		return usageError{fmt.Errorf("unknown command %q", name)}
	}
	fs := flag.NewFlagSet("tokenauth "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	runCmd := cmd.setup(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tokenauth %s %s\n\n%s\n", name, cmd.args, cmd.help)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() != cmd.nargs {
		fs.Usage()
		return usageError{fmt.Errorf("%s takes %d argument(s)", name, cmd.nargs)}
	}
	cfg, err := config.Load(getenv, ".env")
	if err != nil {
		return err
	}
	database, err := config.OpenDatabase(cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer database.Close()
	if err := config.Migrate(database.ORM); err != nil {
		return err
	}
	e := &env{cfg: cfg, log: newLogger(cfg, stderr), database: database, db: database.ORM,
		passwords: password.NewHasher(password.DefaultParams, runtime.GOMAXPROCS(0)),
		stdin:     stdin, stdout: stdout, stderr: stderr}
	return runCmd(ctx, e, fs.Args())
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
