package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"tokenauth/internal/testdb"
	"tokenauth/models"
)

// A graceful stop writes the last-used times still pending: the service
// runs as in production (the serve command), is used, and is stopped well
// before its first periodic flush.
func TestServeWritesLastUsedOnShutdown(t *testing.T) {
	env := map[string]string{"DATABASE_URL": testdb.URL(t), "ADDR": "127.0.0.1:0", "LOG_FORMAT": "json", "METRICS_ADDR": ""}
	getenv := lookupIn(env)
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
	db := openDB(t, env["DATABASE_URL"])
	tok, err := models.FindTokenByHash(context.Background(), db.ORM, db.Pool, models.HashToken(login.Token))
	if err != nil {
		t.Fatal(err)
	}
	if tok.LastUsedAt == nil {
		t.Fatal("last_used_at of a token used just before a graceful stop was not written")
	}
}
