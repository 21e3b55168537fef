package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tokenauth/config"
	"tokenauth/internal/testdb"
	"tokenauth/models"
	"tokenauth/password"
)

// cli runs subcommands against one fresh database, as an operator would.
type cli struct {
	t   *testing.T
	url string
	// env holds more settings of the environment.
	env map[string]string
}

// openDB opens the database at url as another process would, until the
// test ends.
func openDB(t *testing.T, url string) *config.Database {
	t.Helper()
	db, err := config.OpenDatabase(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// lookupIn is an environment that holds exactly env, as os.LookupEnv
// would see it.
func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(key string) (string, bool) {
		v, ok := env[key]
		return v, ok
	}
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, url: testdb.URL(t)}
}

func (c *cli) run(stdin string, args ...string) (stdout, stderr string, err error) {
	c.t.Helper()
	settings := map[string]string{"DATABASE_URL": c.url, "PASSWORD_MIN_LENGTH": "10"}
	for k, v := range c.env {
		settings[k] = v
	}
	env := lookupIn(settings)
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, env, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestCreateUserReadsThePasswordFromStdin(t *testing.T) {
	c := newCLI(t)
	out, _, err := c.run("correct horse battery\n", "createuser", "--username", "alice", "--email", "alice@example.com")
	if err != nil {
		t.Fatalf("createuser: %v", err)
	}
	if !strings.Contains(out, "created user alice") {
		t.Errorf("output: %q", out)
	}
	db := openDB(t, c.url).ORM
	u, err := models.FindUserByUsername(t.Context(), db, "ALICE")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(u.PasswordHash, "horse") {
		t.Errorf("stored hash: %q", u.PasswordHash)
	}
	if u.Email != "alice@example.com" || !u.IsActive {
		t.Errorf("stored user: %+v", u)
	}
}

func TestCommandErrors(t *testing.T) {
	c := newCLI(t)
	if _, _, err := c.run("correct horse battery\n", "createuser", "--username", "alice"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		stdin    string
		args     []string
		wantExit int
		wantText string
	}{
		{"unknown command", "", []string{"frobnicate"}, 2, "unknown command"},
		{"createuser without username", "x\n", []string{"createuser"}, 2, "--username is required"},
		{"createuser without password", "", []string{"createuser", "--username", "bob"}, 1, "no password"},
		{"createuser with a weak password", "short\n", []string{"createuser", "--username", "bob"}, 1, "password"},
		{"createuser with a taken name", "correct horse battery\n", []string{"createuser", "--username", "ALICE"}, 1, "already exists"},
		{"deactivate without user", "", []string{"deactivate"}, 2, "takes 1 argument"},
		{"deactivate unknown user", "", []string{"deactivate", "nobody"}, 1, `no user named "nobody"`},
		{"unknown flag", "", []string{"prune", "--force"}, 2, "flag provided but not defined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := c.run(tc.stdin, tc.args...)
			if err == nil {
				t.Fatalf("no error")
			}
			if got := exitCode(err); got != tc.wantExit {
				t.Errorf("exit code: got %d, want %d (%v)", got, tc.wantExit, err)
			}
			if !strings.Contains(err.Error()+stderr, tc.wantText) {
				t.Errorf("message: got %q / %q, want it to mention %q", err, stderr, tc.wantText)
			}
		})
	}
}

// TestHelp asks for help every way a newcomer would: each answers on
// stdout, exits 0, and opens no database.
func TestHelp(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "help.db")
	getenv := lookupIn(map[string]string{"DATABASE_URL": dbPath})
	main := func(args ...string) (code int, stdout, stderr string) {
		var out, errOut bytes.Buffer
		code = Main(t.Context(), args, getenv, strings.NewReader(""), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	type helpCase struct {
		args     []string
		wantExit int
		// wantOut is in stdout when the exit is 0, else in stderr.
		wantOut []string
	}
	cases := []helpCase{
		{[]string{"help"}, 0, []string{"commands:", "createuser", "help"}},
		{[]string{"--help"}, 0, []string{"commands:", "createuser"}},
		{[]string{"-help"}, 0, []string{"commands:"}},
		{[]string{"-h"}, 0, []string{"commands:"}},
		{[]string{"help", "serve"}, 0, []string{"usage: tokenauth serve", "-usage-flush-interval"}},
		{[]string{"serve", "--help"}, 0, []string{"usage: tokenauth serve", "-usage-flush-interval"}},
		{[]string{"createuser", "-h"}, 0, []string{"usage: tokenauth createuser", "-username", "standard input"}},
		{[]string{"help", "frobnicate"}, 2, []string{`unknown command "frobnicate"`, "commands:"}},
		{[]string{"help", "serve", "prune"}, 2, []string{"at most one command"}},
	}
	for name := range commands {
		cases = append(cases, helpCase{[]string{"help", name}, 0, []string{"usage: tokenauth " + name}})
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := main(tc.args...)
			if code != tc.wantExit {
				t.Fatalf("exit code: got %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantExit, stdout, stderr)
			}
			out := stdout
			if tc.wantExit != 0 {
				out = stderr
			} else if stderr != "" {
				t.Errorf("help wrote to stderr: %q", stderr)
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("got %q, want it to mention %q", out, want)
				}
			}
		})
	}
	if _, err := os.Stat(dbPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("asking for help created the database (%v)", err)
	}

	// Each command's line in the list is a whole sentence.
	_, list, _ := main("help")
	_, commandsPart, _ := strings.Cut(list, "commands:\n")
	commandLines, _, _ := strings.Cut(commandsPart, "\n\n")
	lines := strings.Split(commandLines, "\n")
	if len(lines) != len(commands)+1 {
		t.Errorf("the list has %d commands, want %d:\n%s", len(lines), len(commands)+1, list)
	}
	for _, line := range lines {
		if !strings.HasSuffix(line, ".") {
			t.Errorf("a command's line stops mid-sentence: %q", line)
		}
	}
}

func TestOperatorCommands(t *testing.T) {
	c := newCLI(t)
	if _, _, err := c.run("correct horse battery\n", "createuser", "--username", "alice"); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, c.url).ORM
	u, err := models.FindUserByUsername(t.Context(), db, "alice")
	if err != nil {
		t.Fatal(err)
	}
	policy := models.TokenPolicy{MaxPerUser: 10}
	nets, err := models.ParseIPNets([]string{"203.0.113.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := models.IssueToken(t.Context(), db, u.ID, models.TokenSpec{Name: "laptop", Kind: models.KindPersonal, Scopes: models.Scopes{"*"},
		AllowedIPs: nets, RateLimit: models.RateLimit{Requests: 100, Period: time.Minute}}, policy, false)
	if err != nil {
		t.Fatal(err)
	}

	out, _, err := c.run("", "tokens", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "laptop") || !strings.Contains(out, tok.Prefix) || strings.Contains(out, tok.Secret) || strings.Contains(out, tok.KeyHash) ||
		!strings.Contains(out, "203.0.113.0/24") || !strings.Contains(out, "100/1m") || !strings.Contains(out, "enabled") {
		t.Errorf("tokens output: %q", out)
	}

	if out, _, err = c.run("", "deactivate", "alice"); err != nil || !strings.Contains(out, "deactivated alice") {
		t.Fatalf("deactivate: %v %q", err, out)
	}
	if _, _, err := models.Authenticate(t.Context(), db, password.NewHasher(password.DefaultParams, 1), "alice", "correct horse battery"); !errors.Is(err, models.ErrAccountDisabled) {
		t.Errorf("login after deactivate: got %v, want ErrAccountDisabled", err)
	}
	if out, _, err = c.run("", "activate", "alice"); err != nil || !strings.Contains(out, "activated alice") {
		t.Fatalf("activate: %v %q", err, out)
	}

	if out, _, err = c.run("", "revoke-tokens", "alice"); err != nil || !strings.Contains(out, "revoked 1 token(s)") {
		t.Fatalf("revoke-tokens: %v %q", err, out)
	}
	var reason string
	db.Model(&models.APIToken{}).Where("id = ?", tok.ID).Pluck("revoked_reason", &reason)
	if reason != models.RevokedByOperator {
		t.Errorf("revoked_reason: got %q", reason)
	}
	if out, _, err = c.run("", "events", "alice"); err != nil || !strings.Contains(out, "token_revoked") ||
		!strings.Contains(out, "operator") || !strings.Contains(out, "account_deactivated") ||
		!strings.Contains(out, "account_activated") {
		t.Fatalf("events: %v %q", err, out)
	}
	if out, _, err = c.run("", "prune"); err != nil || !strings.Contains(out, "deleted 1 token(s) and 0 security event(s)") {
		t.Fatalf("prune: %v %q", err, out)
	}
	if out, _, err = c.run("", "migrate"); err != nil || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate: %v %q", err, out)
	}
}
