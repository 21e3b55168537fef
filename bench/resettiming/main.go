// Command resettiming measures how long POST /api/password-reset/ takes
// for an address that has an account and for one that has none, to show
// that the answer's timing tells them apart no better than its body does.
//
//	go run ./bench/resettiming                        # on a SQLite file in a temporary folder
//	go run ./bench/resettiming -db 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//
// The service runs in this process, built by app.New as serve builds it,
// with its outbox running (mail is written to a discarded log, which is
// the work of sending without a mail server), on a loopback port. Each
// existing address belongs to its own account, so that every request for
// one really issues a link and queues a mail. Requests alternate between
// the two kinds, one at a time, -gap apart (the background work of the
// one before is done by then), the kind that goes first changing every
// round; -n of each are timed after -warmup of each. It prints the median,
// the 10th and 90th percentiles of each kind and the difference of the
// medians. On PostgreSQL it works in a schema of its own, dropped at the
// end.
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
		fmt.Fprintln(os.Stderr, "resettiming:", err)
		os.Exit(1)
	}
}

func run() error {
	dbURL := flag.String("db", "", "a postgres:// URL to work in (a schema of its own); empty: a SQLite file in a temporary folder")
	n := flag.Int("n", 30, "requests timed of each kind")
	warmup := flag.Int("warmup", 5, "requests of each kind sent first, not timed")
	gap := flag.Duration("gap", 100*time.Millisecond, "pause after each request")
	flag.Parse()
	if *n < 1 || *n > 1000 || *warmup < 0 || *warmup > 100 || *gap < 0 || *gap > 10*time.Second {
		return errors.New("-n must be from 1 to 1000, -warmup from 0 to 100, -gap from 0 to 10s")
	}
	gin.SetMode(gin.ReleaseMode)
	ctx := context.Background()
	databaseURL, cleanup, err := scratchDatabase(*dbURL)
	if err != nil {
		return err
	}
	defer cleanup()

	cfg := config.Default()
	cfg.DatabaseURL = databaseURL
	cfg.LoginIPPerMinute = 1000000 // the per-IP budget is not what is measured
	database, err := config.OpenDatabase(databaseURL)
	if err != nil {
		return err
	}
	defer database.Close()
	if err := config.Migrate(database.ORM); err != nil {
		return err
	}
	// Cheap hashes: no password is checked by what is measured.
	hasher := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 2)
	accounts := *n + *warmup
	for i := range accounts {
		u, err := models.NewUser(ctx, hasher, models.PasswordPolicy{MinLength: 1}, fmt.Sprintf("reset%d", i),
			fmt.Sprintf("reset%d@bench.example", i), "bench passphrase")
		if err == nil {
			err = models.CreateUser(ctx, database.ORM, u)
		}
		if err != nil {
			return err
		}
	}
	a, err := app.New(ctx, cfg, database, slog.New(slog.NewTextHandler(io.Discard, nil)), app.WithPasswordHasher(hasher))
	if err != nil {
		return err
	}
	a.Start(ctx)
	defer a.Shutdown()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := routes.NewHTTPServer(cfg, a.Router, nil)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	client := &http.Client{Timeout: 10 * time.Second}
	endpoint := "http://" + ln.Addr().String() + "/api/password-reset/"
	var existing, unknown []time.Duration
	for i := range accounts {
		kinds := []bool{true, false}
		if i%2 == 1 {
			kinds = []bool{false, true}
		}
		for _, known := range kinds {
			address := fmt.Sprintf("nobody%d@bench.example", i)
			if known {
				address = fmt.Sprintf("reset%d@bench.example", i)
			}
			took, err := timeRequest(client, endpoint, address)
			if err != nil {
				return err
			}
			if i >= *warmup {
				if known {
					existing = append(existing, took)
				} else {
					unknown = append(unknown, took)
				}
			}
			time.Sleep(*gap)
		}
	}
	sent, err := mailsQueued(ctx, a)
	if err != nil {
		return err
	}
	kind := "sqlite"
	if config.IsPostgres(databaseURL) {
		kind = "postgres"
	}
	em, um := percentile(existing, 50), percentile(unknown, 50)
	fmt.Printf("db=%s n=%d existing_median_ms=%.3f unknown_median_ms=%.3f median_diff_ms=%.3f "+
		"existing_p10_ms=%.3f existing_p90_ms=%.3f unknown_p10_ms=%.3f unknown_p90_ms=%.3f mails_queued=%d\n",
		kind, *n, ms(em), ms(um), ms(em-um), ms(percentile(existing, 10)), ms(percentile(existing, 90)),
		ms(percentile(unknown, 10)), ms(percentile(unknown, 90)), sent)
	return nil
}

// timeRequest sends one reset request for address and returns how long
// the answer took, whole body read.
func timeRequest(client *http.Client, endpoint, address string) (time.Duration, error) {
	body := strings.NewReader(`{"email": "` + address + `"}`)
	start := time.Now()
	resp, err := client.Post(endpoint, "application/json", body)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("%s answered %d", address, resp.StatusCode)
	}
	return took, nil
}

// mailsQueued waits for the outbox to answer every request and returns
// how many mails it holds: one per request for an existing address.
func mailsQueued(ctx context.Context, a *app.App) (int64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resets, err := models.CountDeliveries(ctx, a.DB, models.ResetRequestTable)
		if err != nil {
			return 0, err
		}
		if resets.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, errors.New("the outbox did not answer every request within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var n int64
	err := a.DB.WithContext(ctx).Model(&models.Mail{}).Count(&n).Error
	return n, err
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// scratchDatabase returns the URL of an empty database to work in, and
// what removes it.
func scratchDatabase(base string) (string, func(), error) {
	if base == "" {
		dir, err := os.MkdirTemp("", "resettiming")
		if err != nil {
			return "", nil, err
		}
		return filepath.Join(dir, "bench.db"), func() { os.RemoveAll(dir) }, nil
	}
	if !config.IsPostgres(base) {
		return "", nil, errors.New("-db must be a postgres:// URL")
	}
	admin, err := config.OpenDatabase(base)
	if err != nil {
		return "", nil, err
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "resettiming_" + hex.EncodeToString(b)
	if err := admin.ORM.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		admin.Close()
		return "", nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		admin.Close()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		_ = admin.ORM.Exec("DROP SCHEMA " + schema + " CASCADE").Error
		admin.Close()
	}, nil
}
