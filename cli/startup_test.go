package cli

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tokenauth/config"
	"tokenauth/internal/testdb"
)

// TestStartupErrorsNameTheSettingAndCreateNothing starts serve with one
// bad setting at a time: the error names the setting and what is wrong
// with it, and the database is left as it was, not even created.
func TestStartupErrorsNameTheSettingAndCreateNothing(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	cases := []struct {
		name     string
		settings map[string]string
		// sqliteOnly cases name a database of their own.
		sqliteOnly bool
		wantText   []string
	}{
		{name: "an address without a port", settings: map[string]string{"ADDR": "19202"},
			wantText: []string{"ADDR:", `"19202"`, "missing port"}},
		{name: "a port in use", settings: map[string]string{"ADDR": taken.Addr().String()},
			wantText: []string{"ADDR:", taken.Addr().String(), "address already in use"}},
		{name: "a request timeout past the write timeout", settings: map[string]string{"REQUEST_TIMEOUT": "30s"},
			wantText: []string{"REQUEST_TIMEOUT:", "write timeout"}},
		{name: "a misspelt scheme", settings: map[string]string{"DATABASE_URL": "postgress://app:hunter2@127.0.0.1/app"},
			sqliteOnly: true, wantText: []string{"DATABASE_URL:", "postgress://", "postgres://"}},
		{name: "a SQLite file in a missing folder", settings: map[string]string{"DATABASE_URL": "missing/folder/tokenauth.db"},
			sqliteOnly: true, wantText: []string{"DATABASE_URL:", "missing/folder", "does not exist"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.sqliteOnly && os.Getenv("TEST_DATABASE_URL") != "" {
				// These settings name their own database: the run on
				// SQLite covers them, and this run has nothing else to add.
				return
			}
			dir := t.TempDir()
			env := map[string]string{"DATABASE_URL": testdb.URL(t), "ADDR": "127.0.0.1:0"}
			for k, v := range tc.settings {
				env[k] = v
			}
			if tc.sqliteOnly && !strings.Contains(env["DATABASE_URL"], "://") {
				env["DATABASE_URL"] = filepath.Join(dir, env["DATABASE_URL"])
			}
			// Cancelled before it starts: a serve whose settings wrongly
			// pass fails at its first use of the context, where it would
			// otherwise serve until the test times out.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			var out, errOut strings.Builder
			err := run(ctx, []string{"serve"}, lookupIn(env), strings.NewReader(""), &out, &errOut)
			if err == nil {
				t.Fatal("serve started")
			}
			if got := exitCode(err); got != 1 {
				t.Errorf("exit code %d, want 1", got)
			}
			for _, want := range tc.wantText {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if strings.Contains(err.Error()+errOut.String(), "hunter2") {
				t.Errorf("the error shows the database password: %v", err)
			}
			if tc.sqliteOnly {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("start-up created %s", entries[0].Name())
				}
				return
			}
			expectNoTables(t, env["DATABASE_URL"])
		})
	}
}

// expectNoTables checks that nothing was created in the database at url:
// a SQLite file that does not exist, or a PostgreSQL schema with no table.
func expectNoTables(t *testing.T, url string) {
	t.Helper()
	if !config.IsPostgres(url) {
		if _, err := os.Stat(url); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the SQLite file %s was created (%v)", url, err)
		}
		return
	}
	var tables int64
	if err := openDB(t, url).ORM.Raw("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()").
		Scan(&tables).Error; err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("start-up created %d table(s)", tables)
	}
}

// TestServeSaysWhatItUses starts serve as a newcomer would, from a folder
// with a .env holding a misspelt setting: the log warns of it, and names
// the database (without its password) and the address it serves on.
func TestServeSaysWhatItUses(t *testing.T) {
	t.Chdir(t.TempDir()) // the .env is read from the working folder
	if err := os.WriteFile(".env", []byte("TOKEN_TTTL=1h\nLISTEN_ADDRESS=:9000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	databaseURL, secret := testdb.URL(t), ""
	if config.IsPostgres(databaseURL) {
		// The test server trusts local connections, so a password in the
		// URL is sent and ignored; the log must not show it either way.
		u, err := url.Parse(databaseURL)
		if err != nil {
			t.Fatal(err)
		}
		var ok bool
		if secret, ok = u.User.Password(); !ok {
			secret = "hunter2-not-a-real-password"
			u.User = url.UserPassword(u.User.Username(), secret)
		}
		databaseURL = u.String()
	}
	s := startService(t, map[string]string{"DATABASE_URL": databaseURL, "LOG_FORMAT": "text"})
	logs := s.logs.String()
	for _, want := range []string{
		`msg="not a setting, ignored" file=.env key=TOKEN_TTTL did_you_mean=TOKEN_TTL`,
		"msg=\"not a setting, ignored\" file=.env key=LISTEN_ADDRESS\n", // like no setting
		"msg=listening addr=" + s.addr,
		`database="` + config.DescribeDatabase(databaseURL) + `"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not say %s:\n%s", want, logs)
		}
	}
	if config.IsPostgres(databaseURL) {
		if !strings.Contains(logs, "database=\"PostgreSQL postgres://") || strings.Contains(logs, secret) {
			t.Errorf("the log does not name PostgreSQL, or shows its password:\n%s", logs)
		}
	} else if !strings.Contains(logs, `database="SQLite `+databaseURL+`"`) {
		t.Errorf("the log does not name the SQLite file %s:\n%s", databaseURL, logs)
	}
}
