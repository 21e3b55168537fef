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
	// No metrics listener unless a test asks for one: tests run in
	// parallel, and METRICS_ADDR's default is one port for all.
	s.env = map[string]string{"DATABASE_URL": testdb.URL(t), "ADDR": s.addr, "LOG_LEVEL": "debug", "METRICS_ADDR": ""}
	for k, v := range settings {
		s.env[k] = v
	}
	getenv := lookupIn(s.env)
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

// serveOutcome runs serve with the settings until it either stops or
// says it is listening, and returns the error it stopped with (nil when
// it listened; it is then stopped) and what it logged until then.
func serveOutcome(t *testing.T, settings map[string]string, args ...string) (string, error) {
	t.Helper()
	env := map[string]string{"DATABASE_URL": testdb.URL(t), "ADDR": "127.0.0.1:0", "LOG_FORMAT": "json", "METRICS_ADDR": ""}
	for k, v := range settings {
		env[k] = v
	}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	logs, logWriter := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, append([]string{"serve"}, args...), lookupIn(env), strings.NewReader(""), io.Discard, logWriter)
		logWriter.Close()
	}()
	var seen lockedBuffer
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			seen.Write(append(sc.Bytes(), '\n'))
			var line struct{ Msg string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				close(listening)
				break
			}
		}
		io.Copy(io.Discard, logs)
	}()
	select {
	case err := <-served:
		return seen.String(), err
	case <-listening:
		stop()
		if err := <-served; err != nil {
			t.Errorf("serve, stopped: %v", err)
		}
		return seen.String(), nil
	}
}

// An idle timeout too short for the writes behind the requests to keep
// stops serve before it listens, with a message naming the setting.
func TestServeRefusesAnIdleTimeoutTooShortToHonour(t *testing.T) {
	t.Parallel()
	_, err := serveOutcome(t, map[string]string{"TOKEN_IDLE_TIMEOUT": "3s"})
	if err == nil || !strings.Contains(err.Error(), "TOKEN_IDLE_TIMEOUT: 3s is too short") ||
		!strings.Contains(err.Error(), "at least 10s") {
		t.Fatalf("serve with TOKEN_IDLE_TIMEOUT=3s: got %v, want a refusal naming TOKEN_IDLE_TIMEOUT and 10s", err)
	}
	// A flush every second keeps a 3 s timeout.
	if _, err := serveOutcome(t, map[string]string{"TOKEN_IDLE_TIMEOUT": "3s"}, "--usage-flush-interval", "1s"); err != nil {
		t.Fatalf("serve with TOKEN_IDLE_TIMEOUT=3s and a flush every second: %v", err)
	}
}

// The metrics are served on METRICS_ADDR, never on ADDR, and their
// listener stops with the API's.
func TestServeServesMetricsOnTheirOwnListener(t *testing.T) {
	t.Parallel()
	metricsAddr := freeAddr(t)
	s := startService(t, map[string]string{"METRICS_ADDR": metricsAddr})
	token := s.login(t)
	get := func(url string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	status, body := get("http://" + metricsAddr + "/metrics")
	if status != http.StatusOK || !strings.Contains(body, `tokenauth_logins_total{outcome="succeeded"} 1`) {
		t.Fatalf("GET /metrics on METRICS_ADDR: %d\n%.300s", status, body)
	}
	if status, body := get("http://" + s.addr + "/metrics"); status != http.StatusNotFound {
		t.Errorf("GET /metrics on ADDR: %d, want 404\n%.300s", status, body)
	}
	if !strings.Contains(s.logs.String(), `"msg":"serving metrics","addr":"`+metricsAddr+`"`) {
		t.Errorf("no start-up line names the metrics address:\n%s", s.logs.String())
	}
	s.cancel()
	if err := <-s.done; err != nil {
		t.Fatalf("serve returned %v\n%s", err, s.logs.String())
	}
	if conn, err := net.Dial("tcp", metricsAddr); err == nil {
		conn.Close()
		t.Error("the metrics listener is still open after serve returned")
	}
}

// A METRICS_ADDR that cannot be bound stops start-up with a message naming
// it, and leaves no listener behind; empty serves no metrics at all.
func TestServeMetricsAddr(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := freeAddr(t)
	_, err = serveOutcome(t, map[string]string{"ADDR": addr, "METRICS_ADDR": taken.Addr().String()})
	if err == nil || !strings.HasPrefix(err.Error(), "METRICS_ADDR: cannot listen on "+taken.Addr().String()) {
		t.Fatalf("serve with METRICS_ADDR on a port in use: got %v, want an error naming METRICS_ADDR", err)
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Error("ADDR is still bound after start-up failed")
	}

	logs, err := serveOutcome(t, map[string]string{"METRICS_ADDR": ""})
	if err != nil {
		t.Fatalf("serve with METRICS_ADDR empty: %v", err)
	}
	if !strings.Contains(logs, "metrics not served: METRICS_ADDR is empty") || strings.Contains(logs, "serving metrics") {
		t.Errorf("start-up with METRICS_ADDR empty logged:\n%s", logs)
	}
}
