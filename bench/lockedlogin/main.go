// Command lockedlogin times the 429 of a locked username that an account
// has against that of one no account has, over loopback, to see whether
// the time of the answer tells which usernames exist:
//
//	go run ./bench/lockedlogin                          # SQLite, in a temporary folder
//	go run ./bench/lockedlogin -db 'postgres://...'     # PostgreSQL, in a schema of its own, dropped at the end
//
// It builds the service with app.New (as serve does) on a fresh database,
// with LOGIN_USER_FAILURES=1, serves it on 127.0.0.1, makes one account,
// locks its username and an unknown one with one wrong password each, and
// then sends logins for the two in turn (A B B A, so that a drift of the
// machine's speed falls on both alike): -warmup each unmeasured, then -n
// each measured, one at a time on one keep-alive connection. It prints, for
// each, the median and the spread (quartiles, least and most) of the time
// from sending a request to reading its whole answer, in milliseconds.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/app"
	"tokenauth/config"
	"tokenauth/models"
	"tokenauth/password"
	"tokenauth/routes"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lockedlogin:", err)
		os.Exit(1)
	}
}

func run() error {
	dbURL := flag.String("db", "", "a postgres:// URL to measure on PostgreSQL (a schema of its own is made and dropped); empty for SQLite")
	n := flag.Int("n", 40, "measured logins per username")
	warmup := flag.Int("warmup", 10, "unmeasured logins per username first")
	flag.Parse()
	if *n < 4 || *n%2 != 0 || *warmup < 0 {
		return errors.New("-n must be even and at least 4, -warmup at least 0")
	}
	ctx := context.Background()
	databaseURL, drop, err := freshDatabase(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer drop()

	gin.SetMode(gin.ReleaseMode)
	cfg := config.Default()
	cfg.DatabaseURL = databaseURL
	cfg.LoginUserFailures = 1
	cfg.LoginIPPerMinute = 1000000
	database, err := config.OpenDatabase(databaseURL)
	if err != nil {
		return err
	}
	defer database.Close()
	if err := config.Migrate(database.ORM); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.New(ctx, cfg, database, log,
		app.WithPasswordHasher(password.NewHasher(password.DefaultParams, runtime.GOMAXPROCS(0))))
	if err != nil {
		return err
	}
	a.Start(ctx)
	defer a.Shutdown()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	server := routes.NewHTTPServer(cfg, a.Router, nil)
	go func() { _ = server.Serve(listener) }()
	defer server.Close()
	base := "http://" + listener.Addr().String()

	u, err := models.NewUser(ctx, a.Passwords, models.PasswordPolicy{MinLength: 1}, "alice", "alice@example.com", "the right passphrase")
	if err != nil {
		return err
	}
	if err := models.CreateUser(ctx, a.DB, u); err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	names := [2]string{"alice", "nobody-here"}
	for _, name := range names {
		if status, err := login(client, base, name); err != nil || status != http.StatusUnauthorized {
			return fmt.Errorf("locking %s: status %d, %v", name, status, err)
		}
	}
	for range *warmup {
		for _, name := range names {
			if _, err := expectLocked(client, base, name); err != nil {
				return err
			}
		}
	}
	var samples [2][]time.Duration
	order := [4]int{0, 1, 1, 0}
	for i := range 2 * *n {
		side := order[i%4]
		took, err := expectLocked(client, base, names[side])
		if err != nil {
			return err
		}
		samples[side] = append(samples[side], took)
	}
	db := "sqlite"
	if config.IsPostgres(databaseURL) {
		db = "postgres"
	}
	fmt.Printf("database=%s samples=%d (after %d unmeasured each), A B B A\n", db, *n, *warmup)
	for side, label := range [2]string{"locked, account exists", "locked, no account  "} {
		fmt.Printf("%s  %s\n", label, summary(samples[side]))
	}
	fmt.Printf("median difference (exists - none): %+.3f ms\n", ms(median(samples[0])-median(samples[1])))
	return nil
}

// expectLocked sends a login for name and checks that it is the 429 of a
// locked username; it returns how long the answer took.
func expectLocked(client *http.Client, base, name string) (time.Duration, error) {
	start := time.Now()
	status, err := login(client, base, name)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if status != http.StatusTooManyRequests {
		return 0, fmt.Errorf("login for %s: status %d, want 429", name, status)
	}
	return took, nil
}

// login sends a login for name with a wrong password, reads the whole
// answer and returns its status.
func login(client *http.Client, base, name string) (int, error) {
	body := fmt.Sprintf(`{"username":%q,"password":"a wrong guess"}`, name)
	resp, err := client.Post(base+"/api/login/", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// freshDatabase returns the URL of an empty database and how to remove it:
// a SQLite file in a temporary folder, or a new schema on the PostgreSQL
// server of pgURL.
func freshDatabase(ctx context.Context, pgURL string) (string, func(), error) {
	if pgURL == "" {
		dir, err := os.MkdirTemp("", "lockedlogin")
		if err != nil {
			return "", nil, err
		}
		return filepath.Join(dir, "bench.db"), func() { os.RemoveAll(dir) }, nil
	}
	if !config.IsPostgres(pgURL) {
		return "", nil, errors.New("-db must be a postgres:// URL")
	}
	admin, err := config.OpenDatabase(pgURL)
	if err != nil {
		return "", nil, err
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	schema := "bench_lockedlogin_" + hex.EncodeToString(suffix)
	if err := admin.ORM.WithContext(ctx).Exec("CREATE SCHEMA " + schema).Error; err != nil {
		admin.Close()
		return "", nil, err
	}
	drop := func() {
		_ = admin.ORM.Exec("DROP SCHEMA " + schema + " CASCADE").Error
		admin.Close()
	}
	u, err := url.Parse(pgURL)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

func summary(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) float64 { return ms(s[int(p*float64(len(s)-1)+0.5)]) }
	parts := []string{
		fmt.Sprintf("median %.3f ms", ms(median(d))),
		fmt.Sprintf("quartiles %.3f-%.3f", q(0.25), q(0.75)),
		fmt.Sprintf("least %.3f", ms(s[0])),
		fmt.Sprintf("most %.3f", ms(s[len(s)-1])),
	}
	return strings.Join(parts, "  ")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
