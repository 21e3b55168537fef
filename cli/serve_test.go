package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tokenauth/internal/testdb"
	"tokenauth/models"
)

const testPassword = "a sturdy passphrase 42"

// service is the tokenauth binary's run, serving on a loopback port of its
// own with a fresh database, as main would run it.
type service struct {
	addr   string
	env    map[string]string
	cancel context.CancelFunc
	done   chan error
	logs   *lockedBuffer
}

func startService(t *testing.T, settings map[string]string) *service {
	t.Helper()
	s := &service{addr: freeAddr(t), logs: &lockedBuffer{}, done: make(chan error, 1)}
	s.env = map[string]string{"DATABASE_URL": testdb.URL(t), "ADDR": s.addr, "LOG_LEVEL": "debug"}
	for k, v := range settings {
		s.env[k] = v
	}
	getenv := func(key string) string { return s.env[key] }
	var out bytes.Buffer
	if err := run(t.Context(), []string{"createuser", "--username", "alice"}, getenv,
		strings.NewReader(testPassword+"\n"), &out, &out); err != nil {
		t.Fatalf("createuser: %v\n%s", err, out.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	t.Cleanup(cancel)
	// A flush interval far beyond the test: last-used times can only reach
	// the database through the flush on shutdown.
	go func() {
		s.done <- run(ctx, []string{"serve", "--usage-flush-interval", "1h"}, getenv, strings.NewReader(""), io.Discard, s.logs)
	}()
	for {
		resp, err := http.Get("http://" + s.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("serve stopped before it was ready: %v\n%s", err, s.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *service) login(t *testing.T) string {
	t.Helper()
	resp, err := http.Post("http://"+s.addr+"/api/login/", "application/json",
		strings.NewReader(`{"username":"alice","password":"`+testPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login: status %d, %v", resp.StatusCode, err)
	}
	return body.Token
}

// startSlowRequest sends the headers of an authenticated POST /api/tokens/
// and returns once the handler is reading the body (the server's
// "100 Continue" says so); the caller sends the body when it likes.
func (s *service) startSlowRequest(t *testing.T, token string, body string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /api/tokens/ HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", token, len(body))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("waiting for 100 Continue: %v %v", resp, err)
	}
	return conn, r
}

func TestServeDrainsInFlightRequestsAndFlushesUsageOnShutdown(t *testing.T) {
	t.Parallel()
	s := startService(t, map[string]string{"SHUTDOWN_GRACE": "1m"})
	token := s.login(t)
	body := `{"name":"made during shutdown"}`
	conn, r := s.startSlowRequest(t, token, body)

	s.cancel() // SIGTERM
	// The listener closes while the request is still in flight.
	for {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	io.WriteString(conn, body)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("the in-flight request got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the in-flight request: status %d, want 201", resp.StatusCode)
	}
	if err := <-s.done; err != nil {
		t.Fatalf("serve returned %v\n%s", err, s.logs.String())
	}

	// run has closed the database; open it again to see what was written.
	db := openDB(t, s.env["DATABASE_URL"]).ORM
	var login models.APIToken
	if err := db.Where("key_hash = ?", models.HashToken(token)).Take(&login).Error; err != nil {
		t.Fatal(err)
	}
	if login.LastUsedAt == nil {
		t.Error("the last use of the token, pending at shutdown, was not written")
	}
	var made int64
	db.Model(&models.APIToken{}).Where("name = ?", "made during shutdown").Count(&made)
	if made != 1 {
		t.Errorf("tokens made by the in-flight request: %d, want 1", made)
	}
	for _, msg := range []string{`"msg":"shutting down"`, `"msg":"stopped"`} {
		if !strings.Contains(s.logs.String(), msg) {
			t.Errorf("no %s log line", msg)
		}
	}
}

func TestServeCutsRequestsThatOutlastTheGrace(t *testing.T) {
	t.Parallel()
	s := startService(t, map[string]string{"SHUTDOWN_GRACE": "100ms"})
	token := s.login(t)
	_, r := s.startSlowRequest(t, token, `{"name":"never finished"}`)
	s.cancel()
	// The body never comes: once the grace is over the server gives up on
	// the request, hangs up, and says so.
	err := <-s.done
	if err == nil || !strings.Contains(err.Error(), "SHUTDOWN_GRACE") {
		t.Fatalf("serve returned %v, want an error about SHUTDOWN_GRACE", err)
	}
	if _, err := r.ReadByte(); err == nil {
		t.Error("the connection of the cut request is still open")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lockedBuffer is a buffer safe for a logger writing from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
