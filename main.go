// Command tokenauth is a token-authentication REST API service. Run with no
// arguments (or "serve") it serves the API; other subcommands migrate the
// schema and let an operator manage users and tokens. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"gorm.io/gorm"

	"tokenauth/config"
	"tokenauth/models"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "tokenauth:", err)
		os.Exit(exitCode(err))
	}
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
	db        *gorm.DB
	passwords *models.PasswordHasher
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
}

// run is the composition root: it loads the configuration once, opens the
// database once and hands both to the subcommand.
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
	db, err := config.OpenDatabase(cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer closeDB(db)
	if err := config.Migrate(db); err != nil {
		return err
	}
	e := &env{cfg: cfg, log: newLogger(cfg, stderr), db: db,
		passwords: models.NewPasswordHasher(models.DefaultPasswordParams, runtime.GOMAXPROCS(0)),
		stdin:     stdin, stdout: stdout, stderr: stderr}
	return runCmd(ctx, e, fs.Args())
}

func closeDB(db *gorm.DB) {
	if sqlDB, err := db.DB(); err == nil {
		_ = sqlDB.Close()
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
