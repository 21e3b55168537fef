// Command tokenauth is a token-authentication REST API service. Run with no
// arguments (or "serve") it serves the API; other subcommands migrate the
// schema and let an operator manage users and tokens. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"tokenauth/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
