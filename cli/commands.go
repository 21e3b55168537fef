package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"tokenauth/models"
)

// command is a subcommand: its usage, its flags, and what it does.
type command struct {
	args  string
	help  string
	nargs int
	// setup declares the flags and returns the function to run once they
	// are parsed.
	setup func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

func noFlags(run func(context.Context, *env, []string) error) func(*flag.FlagSet) func(context.Context, *env, []string) error {
	return func(*flag.FlagSet) func(context.Context, *env, []string) error { return run }
}

var commands = map[string]command{
	"serve": {args: "[--usage-flush-interval 5s]", help: "Serve the API on ADDR (the default command).", setup: serveCommand},
	"migrate": {help: "Create or update the database schema, then exit.",
		setup: noFlags(func(_ context.Context, e *env, _ []string) error {
			fmt.Fprintln(e.stdout, "schema is up to date")
			return nil
		})},
	"createuser": {args: "--username NAME [--email ADDRESS]",
		help:  "Create a user. The password is read from the first line of standard input,\nor asked for twice when standard input is a terminal.",
		setup: createUserCommand},
	"deactivate": {args: "USERNAME", nargs: 1,
		help:  "Deactivate a user: their tokens stop working and they cannot log in.",
		setup: noFlags(func(ctx context.Context, e *env, args []string) error { return setActive(ctx, e, args[0], false) })},
	"activate": {args: "USERNAME", nargs: 1, help: "Reactivate a deactivated user.",
		setup: noFlags(func(ctx context.Context, e *env, args []string) error { return setActive(ctx, e, args[0], true) })},
	"revoke-tokens": {args: "USERNAME", nargs: 1, help: "Revoke every token of a user.", setup: noFlags(revokeTokens)},
	"tokens":        {args: "USERNAME", nargs: 1, help: "List a user's live tokens (never their secrets).", setup: noFlags(listTokens)},
	"events":        {args: "USERNAME", nargs: 1, help: "Print a user's security events, newest first.", setup: noFlags(listEvents)},
	"prune": {help: "Delete revoked, expired and idle tokens, security events older than SECURITY_EVENT_RETENTION,\nexpired links, and mail sent or given up before SECURITY_EVENT_RETENTION.",
		setup: noFlags(prune)},
	"mail": {help: "List the mail waiting to be sent and the mail given up (never a link).",
		setup: noFlags(listMail)},
	"sendtestmail": {args: "--to ADDRESS", help: "Send a test mail at once through SMTP_URL and print what the server answered.",
		setup: sendTestMailCommand},
	"setemail": {args: "[--verified] USERNAME ADDRESS", nargs: 2,
		help:  "Set a user's email address at once (unverified unless --verified); a pending change is dropped.",
		setup: setEmailCommand},
	"import-django": {args: "--from DSN [--token-kind apitoken|authtoken] [--token-table NAME] [--dry-run] [...]",
		help:  "Import users and tokens from a Django database, in one transaction; running it again changes nothing.\nSee docs/DJANGO.md.",
		setup: importDjangoCommand},
}

func printCommands(w io.Writer) {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: tokenauth [command] [flags]\n\ncommands:")
	for _, name := range names {
		first, _, _ := strings.Cut(commands[name].help, "\n")
		fmt.Fprintf(w, "  %-14s %s\n", name, first)
	}
	fmt.Fprintln(w, "\nRun tokenauth COMMAND --help for a command's flags.")
}

func createUserCommand(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	username := fs.String("username", "", "the new user's username (required)")
	email := fs.String("email", "", "the new user's email address")
	return func(ctx context.Context, e *env, _ []string) error {
		if *username == "" {
			fs.Usage()
			return usageError{errors.New("--username is required")}
		}
		password, err := readPassword(e)
		if err != nil {
			return err
		}
		u, err := models.NewUser(ctx, e.passwords, models.PasswordPolicy{MinLength: e.cfg.PasswordMinLength},
			*username, *email, password)
		if err != nil {
			return err
		}
		err = models.CreateUser(ctx, e.db, u)
		if errors.Is(err, models.ErrConflict) {
			return fmt.Errorf("a user named %q already exists", *username)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "created user %s (id %d)\n", u.Username, u.ID)
		return nil
	}
}

// readPassword reads the first line of standard input, or prompts twice
// without echo when it is a terminal. A password never comes from a flag,
// where it would show in the process list and the shell history.
func readPassword(e *env) (string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.stderr, "Password: ")
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprint(e.stderr, "\nPassword (again): ")
		if err != nil {
			return "", err
		}
		second, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		if string(first) != string(second) {
			return "", errors.New("the two passwords differ")
		}
		return string(first), nil
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}

func findUser(ctx context.Context, e *env, username string) (*models.User, error) {
	u, err := models.FindUserByUsername(ctx, e.db, username)
	if errors.Is(err, models.ErrNotFound) {
		return nil, fmt.Errorf("no user named %q", username)
	}
	return u, err
}

func setActive(ctx context.Context, e *env, username string, active bool) error {
	u, err := findUser(ctx, e, username)
	if err != nil {
		return err
	}
	if err := models.SetActive(ctx, e.db, u, active); err != nil {
		return err
	}
	state := "deactivated"
	if active {
		state = "activated"
	}
	fmt.Fprintf(e.stdout, "%s %s\n", state, u.Username)
	return nil
}

func revokeTokens(ctx context.Context, e *env, args []string) error {
	u, err := findUser(ctx, e, args[0])
	if err != nil {
		return err
	}
	ids, err := models.RevokeTokens(ctx, e.db, models.RevokeQuery{UserID: u.ID, Reason: models.RevokedByOperator})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked %d token(s) of %s\n", len(ids), u.Username)
	return nil
}

func listTokens(ctx context.Context, e *env, args []string) error {
	u, err := findUser(ctx, e, args[0])
	if err != nil {
		return err
	}
	tokens, err := models.ListTokens(ctx, e.db, u.ID, e.cfg.TokenIdleTimeout)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tKIND\tPREFIX\tSCOPES\tCREATED\tLAST USED\tEXPIRES")
	for _, t := range tokens {
		fmt.Fprintf(w, "%d\t%q\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Kind, t.Prefix, strings.Join(t.Scopes, " "),
			t.CreatedAt.UTC().Format(time.RFC3339), formatTime(t.LastUsedAt), formatTime(t.ExpiresAt))
	}
	return w.Flush()
}

func listEvents(ctx context.Context, e *env, args []string) error {
	u, err := findUser(ctx, e, args[0])
	if err != nil {
		return err
	}
	const pageSize = 500
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tTYPE\tREASON\tTOKEN\tIP\tNEW CLIENT\tUSER AGENT")
	for offset := 0; ; offset += pageSize {
		events, _, err := models.ListEvents(ctx, e.db, u.ID, offset, pageSize)
		if err != nil {
			return err
		}
		for _, ev := range events {
			token := "-"
			if ev.TokenID != nil {
				token = fmt.Sprint(*ev.TokenID)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%t\t%q\n", ev.CreatedAt.UTC().Format(time.RFC3339), ev.Type,
				orDash(ev.Reason), token, orDash(ev.IP), ev.NewClient, ev.UserAgent)
		}
		if len(events) < pageSize {
			return w.Flush()
		}
	}
}

func prune(ctx context.Context, e *env, _ []string) error {
	n, err := models.PruneTokens(ctx, e.db, e.cfg.TokenIdleTimeout)
	if err != nil {
		return err
	}
	events, err := models.PruneEvents(ctx, e.db, time.Now().Add(-e.cfg.SecurityEventRetention))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted %d token(s) and %d security event(s)\n", n, events)
	links, err := models.PruneLinkTokens(ctx, e.db)
	if err != nil {
		return err
	}
	mails, err := models.PruneMail(ctx, e.db, time.Now().Add(-e.cfg.SecurityEventRetention))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted %d expired link(s) and %d old mail(s)\n", links, mails)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
