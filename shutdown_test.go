package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tokenauth/config"
	"tokenauth/models"
)

// testDatabaseURL returns a SQLite file in the test's folder, or a fresh
// schema on the PostgreSQL server of TEST_DATABASE_URL, dropped afterwards.
func testDatabaseURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		return filepath.Join(t.TempDir(), "test.db")
	}
	admin, err := config.OpenDatabase(base)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "test_" + hex.EncodeToString(b)
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		closeDB(admin)
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// A graceful stop writes the last-used times still pending: the service
// runs as in production (the serve command), is used, and is stopped well
// before its first periodic flush.
func TestServeWritesLastUsedOnShutdown(t *testing.T) {
	env := map[string]string{"DATABASE_URL": testDatabaseURL(t), "ADDR": "127.0.0.1:0", "LOG_FORMAT": "json"}
	getenv := func(k string) string { return env[k] }
	const password = "a sturdy passphrase 42"
	if err := run(t.Context(), []string{"createuser", "--username", "alice"}, getenv,
		strings.NewReader(password+"\n"), io.Discard, io.Discard); err != nil {
		t.Fatalf("createuser: %v", err)
	}

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	logs, logWriter := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"serve"}, getenv, strings.NewReader(""), io.Discard, logWriter)
		logWriter.Close()
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.Addr
			}
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-served:
		t.Fatalf("serve stopped before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start listening")
	}

	resp, err := http.Post(base+"/api/login/", "application/json",
		strings.NewReader(fmt.Sprintf(`{"username":"alice","password":%q}`, password)))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Token string }
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login: status %d, %v", resp.StatusCode, err)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/profile/", nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("profile: status %d", resp.StatusCode)
	}

	stop()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	db, err := config.OpenDatabase(env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(db)
	tok, err := models.FindTokenByHash(context.Background(), db, models.HashToken(login.Token))
	if err != nil {
		t.Fatal(err)
	}
	if tok.LastUsedAt == nil {
		t.Fatal("last_used_at of a token used just before a graceful stop was not written")
	}
}
