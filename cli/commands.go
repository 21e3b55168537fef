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

	"tokenauth/expiry"
	"tokenauth/keyring"
	"tokenauth/mail"
	"tokenauth/models"
)

// command is a subcommand: its usage, its flags, and what it does.
type command struct {
	args string
	// listens says the command serves on ADDR.
	listens bool
	// summary is one sentence for the list of commands; help, when set,
	// says more in the command's own usage.
	summary string
	help    string
	nargs   int
	// subcommands says the command takes a subcommand and checks its
	// arguments itself (nargs is not checked).
	subcommands bool
	// setup declares the flags and returns the function to run once they
	// are parsed.
	setup func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

func noFlags(run func(context.Context, *env, []string) error) func(*flag.FlagSet) func(context.Context, *env, []string) error {
	return func(*flag.FlagSet) func(context.Context, *env, []string) error { return run }
}

var commands = map[string]command{
	"serve": {args: "[--usage-flush-interval 5s]", listens: true, summary: "Serve the API on ADDR (the default command).",
		help:  "Stops on SIGINT or SIGTERM: in-flight requests may finish within SHUTDOWN_GRACE.",
		setup: serveCommand},
	"migrate": {summary: "Create or update the database schema, then exit.",
		setup: noFlags(func(_ context.Context, e *env, _ []string) error {
			fmt.Fprintln(e.stdout, "schema is up to date")
			return nil
		})},
	"createuser": {args: "--username NAME [--email ADDRESS]", summary: "Create a user.",
		help:  "The password is read from the first line of standard input,\nor asked for twice when standard input is a terminal.",
		setup: createUserCommand},
	"deactivate": {args: "USERNAME", nargs: 1,
		summary: "Deactivate a user: their tokens stop working and they cannot log in.",
		setup:   noFlags(func(ctx context.Context, e *env, args []string) error { return setActive(ctx, e, args[0], false) })},
	"activate": {args: "USERNAME", nargs: 1, summary: "Reactivate a deactivated user.",
		setup: noFlags(func(ctx context.Context, e *env, args []string) error { return setActive(ctx, e, args[0], true) })},
	"mfa-reset": {args: "USERNAME", nargs: 1,
		summary: "Turn a user's second factor off and revoke every token of the user, for a lost device.",
		help:    "Recorded as an mfa_disabled event (reason operator); the user is mailed a notice.\nCheck who is asking before you run it: it leaves the account behind its password alone.",
		setup:   noFlags(mfaReset)},
	"revoke-tokens": {args: "USERNAME", nargs: 1, summary: "Revoke every token of a user.", setup: noFlags(revokeTokens)},
	"tokens":        {args: "USERNAME", nargs: 1, summary: "List a user's live tokens (never their secrets).", setup: noFlags(listTokens)},
	"events": {args: "USERNAME", nargs: 1, summary: "Print a user's security events, newest first.",
		help: "For a username no account has, the events of the logins refused for it.", setup: noFlags(listEvents)},
	"prune": {summary: "Delete revoked, expired and idle tokens, old security events, expired links, old mail and webhook deliveries.",
		help: "Security events older than SECURITY_EVENT_RETENTION are deleted, with expired links and\n" +
			"mail and webhook deliveries made or given up before SECURITY_EVENT_RETENTION.",
		setup: noFlags(prune)},
	"mail": {summary: "List the mail waiting to be sent and the mail given up (never a link).",
		setup: noFlags(listMail)},
	"sendtestmail": {args: "--to ADDRESS", summary: "Send a test mail at once through SMTP_URL and print what the server answered.",
		setup: sendTestMailCommand},
	"setemail": {args: "[--verified] USERNAME ADDRESS", nargs: 2,
		summary: "Set a user's email address at once (unverified unless --verified).",
		help:    "A pending change of address is dropped.",
		setup:   setEmailCommand},
	"client": {args: "create NAME | list | revoke CLIENT_ID", subcommands: true,
		summary: "Manage the resource-server clients that may introspect and revoke tokens (OAuth).",
		help: "create prints the new client's id and secret, once: only the secret's SHA-256 is kept.\n" +
			"revoke stops a client from authenticating at once. See docs/GATEWAY.md.",
		setup: noFlags(clientCommand)},
	"webhook": {args: "add URL [--events a,b] | list | deliveries ID | remove ID | test ID", subcommands: true,
		summary: "Manage the endpoints told of security events (signed webhooks).",
		help: "add prints the endpoint's signing secret, once. list shows each endpoint with its deliveries\n" +
			"waiting, made and given up; deliveries lists those waiting and given up. test sends a signed\n" +
			"webhook_test event at once. See docs/WEBHOOKS.md.",
		setup: noFlags(webhookCommand)},
	"import-django": {args: "--from DSN [--token-kind apitoken|authtoken] [--token-table NAME] [--dry-run] [...]",
		summary: "Import users and tokens from a Django database.",
		help:    "One transaction; running it again changes nothing. See docs/DJANGO.md.",
		setup:   importDjangoCommand},
}

// printCommands prints the list of commands, one sentence each.
func printCommands(w io.Writer) {
	summaries := map[string]string{"help": "Print this list, or with a command's name, its usage and flags."}
	names := []string{"help"}
	for name, cmd := range commands {
		names = append(names, name)
		summaries[name] = cmd.summary
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: tokenauth [command] [flags] [arguments]\n\ncommands:")
	for _, name := range names {
		fmt.Fprintf(w, "  %-14s %s\n", name, summaries[name])
	}
	fmt.Fprintln(w, "\nWith no command, tokenauth serves. Settings come from the environment or a .env file\n"+
		"(see .env.example). Run tokenauth help COMMAND for a command's flags.")
}

// printUsage prints a command's usage line, what it does and its flags.
func printUsage(w io.Writer, name string, cmd command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.TrimSpace("tokenauth "+name+" "+cmd.args), cmd.summary)
	if cmd.help != "" {
		fmt.Fprintln(w, cmd.help)
	}
	var flags strings.Builder
	out := fs.Output()
	fs.SetOutput(&flags)
	fs.PrintDefaults()
	fs.SetOutput(out)
	if flags.Len() > 0 {
		fmt.Fprintf(w, "\nflags:\n%s", flags.String())
	}
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

// mfaReset turns a user's second factor off for an operator (a lost
// device and no recovery code), revoking every token of the user in the
// same transaction: whoever held a session may be the reason.
func mfaReset(ctx context.Context, e *env, args []string) error {
	u, err := findUser(ctx, e, args[0])
	if err != nil {
		return err
	}
	keys, err := keyring.Load(ctx, e.db, e.cfg.SecretKey)
	if err != nil {
		return err
	}
	notice, err := mail.NewComposer(keys, e.cfg.PublicURL).MFANotice(u, models.MailMFADisabled, models.Now(e.db))
	if err != nil {
		return err
	}
	err = models.DisableMFA(ctx, e.db, u.ID, models.RevokedByOperator, true, notice)
	if errors.Is(err, models.ErrMFANotEnabled) {
		return fmt.Errorf("%s has no second factor to reset", u.Username)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "turned the second factor of %s off and revoked their tokens\n", u.Username)
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
	fmt.Fprintln(w, "ID\tNAME\tKIND\tPREFIX\tSCOPES\tCREATED\tLAST USED\tLAST FROM\tEXPIRES\tSTATE\tALLOWED IPS\tRATE LIMIT")
	for _, t := range tokens {
		state, from, allowed, limit := "enabled", "-", "any", "-"
		if t.PausedAt != nil {
			state = "paused"
		}
		if t.LastIP != "" {
			from = t.LastIP
		}
		if len(t.AllowedIPs) > 0 {
			allowed = strings.Join(t.AllowedIPs.Strings(), ",")
		}
		if l := t.RateLimit(); !l.IsZero() {
			limit = l.String()
		}
		fmt.Fprintf(w, "%d\t%q\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Kind, t.Prefix, strings.Join(t.Scopes, " "),
			t.CreatedAt.UTC().Format(time.RFC3339), formatTime(t.LastUsedAt), from, formatTime(t.ExpiresAt), state, allowed, limit)
	}
	return w.Flush()
}

// eventPage reads a page of events, newest first, and how many there are.
type eventPage func(offset, limit int) ([]models.SecurityEvent, int64, error)

// eventPages returns how to read the events of username: its account's,
// or, when no account has that name, those of the logins refused for it,
// kept under its keyed hash (which takes the server's secret key to find).
func eventPages(ctx context.Context, e *env, username string) (eventPage, error) {
	u, err := models.FindUserByUsername(ctx, e.db, username)
	if err == nil {
		return func(offset, limit int) ([]models.SecurityEvent, int64, error) {
			return models.ListEvents(ctx, e.db, u.ID, offset, limit)
		}, nil
	}
	if !errors.Is(err, models.ErrNotFound) {
		return nil, err
	}
	keys, err := keyring.Load(ctx, e.db, e.cfg.SecretKey)
	if err != nil {
		return nil, err
	}
	digest := models.UsernameDigest(keys.HMAC, username)
	page := func(offset, limit int) ([]models.SecurityEvent, int64, error) {
		return models.ListUsernameEvents(ctx, e.db, digest, offset, limit)
	}
	_, total, err := page(0, 1)
	if err != nil {
		return nil, err
	}
	if total == 0 {
		return nil, fmt.Errorf("no user named %q, and no events for that name", username)
	}
	fmt.Fprintf(e.stderr, "no user named %q; the events of the logins refused for that name:\n", username)
	return page, nil
}

// listEvents prints a user's events, or, for a username that no account
// has, the events of the logins refused for it: those are kept under the
// keyed hash of the name (models.UsernameDigest), so the server's secret
// key is needed to find them.
func listEvents(ctx context.Context, e *env, args []string) error {
	page, err := eventPages(ctx, e, args[0])
	if err != nil {
		return err
	}
	const pageSize = 500
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tTYPE\tREASON\tTOKEN\tIP\tNEW CLIENT\tUSER AGENT")
	for offset := 0; ; offset += pageSize {
		events, _, err := page(offset, pageSize)
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
	// The notices due are recorded first: an expired token leaves its
	// token_expired event before it is deleted.
	var composer *mail.Composer
	if e.cfg.SMTPURL != "" {
		kr, err := keyring.Load(ctx, e.db, e.cfg.SecretKey)
		if err != nil {
			return err
		}
		composer = mail.NewComposer(kr, e.cfg.PublicURL)
	}
	notices, err := expiry.NewNotifier(e.db, composer, e.log).RecordDue(ctx)
	if err != nil {
		return err
	}
	if notices > 0 {
		fmt.Fprintf(e.stdout, "recorded %d notice(s) of token expiry\n", notices)
	}
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
	hooks, err := models.PruneWebhookDeliveries(ctx, e.db, time.Now().Add(-e.cfg.SecurityEventRetention))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted %d expired link(s), %d old mail(s) and %d old webhook delivery(ies)\n", links, mails, hooks)
	challenges, err := models.PruneMFAChallenges(ctx, e.db, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted %d expired sign-in(s) waiting for a second factor\n", challenges)
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
